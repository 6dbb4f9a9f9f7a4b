// Checks of what a meeting page shows and receives, shared by the meeting scripts. Each takes a
// page with Playwright's `evaluate`, `isVisible` and `click` (a Chromium page, or a Firefox page
// from firefox.mjs) and throws with what it saw when its deadline (epoch ms) passes.

import {
  readState, readRtpStats, readTiles, readInboundVideo, readOutboundVideo, visibleText, waitFor, waitForPlayingTiles,
} from './lib.mjs';

/** The remote camera tiles a page shows. */
export const REMOTE_CAMERAS = '.tile[data-source="camera"]:not(.local)';

/** The camera tile of participant `id`. */
export const cameraTileOf = (id) => `.tile[data-source="camera"][data-participant-id="${id}"]`;

/** Waits until `page` hears audio from each of `ids`: inbound-rtp bytes on their audio mids rise. */
export async function waitForAudio(page, ids, deadline, who) {
  let before = null;
  let last = null;
  await waitFor(`${who} to receive audio from ${ids.length} others`, async () => {
    const state = await readState(page);
    const bytes = [];
    for (const id of ids) {
      const mids = (state?.remote ?? []).filter((r) => r.participantId === id)
        .flatMap((r) => r.tracks).filter((t) => t.kind === 'audio' && t.mid != null).map((t) => t.mid);
      if (!mids.length) return false;
      const stats = await readRtpStats(page, { mids: [...new Set(mids)] });
      bytes.push(stats?.inbound.audio.bytes ?? 0);
    }
    last = bytes;
    const rising = before && bytes.every((b, i) => b > 0 && b > before[i]);
    before = bytes;
    return rising;
  }, { deadline, intervalMs: 400, describe: () => `audio bytes per participant: ${JSON.stringify(last)}` }).catch(async (error) => {
    throw new Error(`${error.message}; ${await audioReport(page)}`);
  });
}

/**
 * Waits until the page plays every other participant's audio (`state().remote[].audioPlaying`).
 * When the browser blocked autoplay the client offers #audio-unlock ("Enable audio"): a user
 * clicks it, so does this. Returns whether it had to.
 */
export async function waitForAudioPlaying(page, ids, deadline, who, log = () => {}) {
  let clicked = false;
  let last = null;
  await waitFor(`${who} to play the others' audio`, async () => {
    last = (await readState(page))?.remote.filter((r) => r.source === 'camera') ?? [];
    if (ids.every((id) => last.some((r) => r.participantId === id && r.audioPlaying))) return true;
    if (!clicked && await page.isVisible('#audio-unlock')) {
      log(`${who}: autoplay was blocked; clicking #audio-unlock`);
      await page.click('#audio-unlock', { timeout: Math.max(1, deadline - Date.now()) });
      clicked = true;
    }
    return false;
  }, {
    deadline,
    describe: () => `audioPlaying: ${JSON.stringify(last?.map((r) => [r.name, r.audioPlaying]))}; `
      + `#audio-unlock ${clicked ? 'was clicked' : 'was never shown'}`,
  });
  return clicked;
}

/** For failure messages: the page's remote audio tracks (hook) and its inbound audio and transceivers. */
async function audioReport(page) {
  const state = await readState(page);
  const hook = (state?.remote ?? []).map((r) => `${r.name}/${r.source}: ${r.tracks.filter((t) => t.kind === 'audio')
    .map((t) => `${t.trackId} mid ${t.mid}${t.muted ? ' muted' : ''}`).join(', ') || 'no audio track'} audioPlaying=${r.audioPlaying}`);
  const pc = await page.evaluate(async () => {
    const pc = window.roomcast?.pc();
    if (!pc) return null;
    const inbound = [...(await pc.getStats()).values()].filter((r) => r.type === 'inbound-rtp' && r.kind === 'audio')
      .map((r) => `mid ${r.mid} ssrc ${r.ssrc} ${r.bytesReceived} B`);
    const transceivers = pc.getTransceivers().filter((t) => t.receiver.track.kind === 'audio')
      .map((t) => `mid ${t.mid} ${t.currentDirection ?? t.direction}${t.stopped ? ' stopped' : ''}`);
    return { inbound, transceivers };
  });
  return `hook audio: [${hook.join('; ')}]; inbound audio: [${pc?.inbound.join('; ')}]; audio transceivers: [${pc?.transceivers.join('; ')}]`;
}

/** Waits until the test hook shows a camera entry per id with a width and currentTime advancing. */
export async function waitForHookPlaying(page, ids, deadline, who) {
  let last = null;
  let previous = new Map();
  await waitFor(`${who}'s state().remote to show ${ids.length} cameras playing`, async () => {
    last = await readState(page);
    const cams = (last?.remote ?? []).filter((r) => r.source === 'camera');
    const ok = cams.length === ids.length && ids.every((id) => {
      const r = cams.find((c) => c.participantId === id);
      return r && r.videoWidth > 0 && r.currentTime > (previous.get(id) ?? Infinity);
    });
    previous = new Map(cams.map((c) => [c.participantId, c.currentTime]));
    return ok;
  }, { deadline, describe: () => `remote: ${JSON.stringify(last?.remote)}` });
}

/** Waits until the participants badge (#participant-count, self included) reads `count`. */
export async function waitForCount(page, who, count, deadline) {
  let last = null;
  await waitFor(`${who}'s #participant-count to read ${count}`, async () => {
    last = await visibleText(page, '#participant-count');
    return last === count;
  }, { deadline, describe: () => `it reads ${JSON.stringify(last)}` });
}

/** Inbound audio bytes of `publisherId`'s audio track(s) at `page`. */
export async function audioBytesFrom(page, publisherId) {
  const state = await readState(page);
  const mids = [...new Set((state?.remote ?? []).filter((r) => r.participantId === publisherId)
    .flatMap((r) => r.tracks).filter((t) => t.kind === 'audio' && t.mid != null).map((t) => t.mid))];
  if (!mids.length) return null;
  return (await readRtpStats(page, { mids }))?.inbound.audio.bytes ?? null;
}

/**
 * Waits (at most `withinMs`) until `probe()` (a number) stays the same for `stillMs`: what
 * stopped must stay stopped; a short tail (things in flight, a decoder running late) is
 * allowed and reported. Returns `{ tail, settledMs }`: how much it still grew, and when it
 * last changed (ms after the start).
 */
export async function waitForStill(what, probe, { stillMs, withinMs }) {
  const started = Date.now();
  const first = await probe();
  let value = first;
  let changed = started;
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    const now = await probe();
    if (now !== value) {
      value = now;
      changed = Date.now();
    }
    if (Date.now() - changed >= stillMs) return { tail: value - first, settledMs: changed - started };
    if (Date.now() - started > withinMs) {
      throw new Error(`${what}: still changing ${withinMs} ms later (${first} -> ${value})`);
    }
  }
}

/**
 * Simulcast following the tile's size: `viewer` receives `publisherId`'s camera (sent from
 * the page `publisher`) at >= 640 wide in its `large` window, at <= 320 once shrunk to `small`
 * (having asked for `low`), and at >= 640 again when large. Before each large phase the
 * publisher must be sending a layer >= 640 at all (timed apart, within `publisherTimeoutMs`:
 * on 2 busy cores a browser's bandwidth estimate may allow only the lowest layer for a while,
 * which is not the switch's doing). Each switch has `switchTimeoutMs` (the server switches at
 * keyframes). `describePublisher()` adds facts to failure messages. Returns the widths
 * (`large_width` is the best seen within 3 s: the 1280 layer is reported, not required) and
 * each phase's timings.
 */
export async function followsTileSize({
  viewer, publisher, publisherId, large, small, deadline, switchTimeoutMs, publisherTimeoutMs,
  describePublisher = async () => '',
}) {
  await viewer.setViewportSize(large);
  const tile = cameraTileOf(publisherId);
  const [shown] = await waitForPlayingTiles(viewer, tile, [publisherId], { deadline });
  const entry = (await readState(viewer)).remote.find((r) => r.participantId === publisherId && r.source === 'camera');
  const mid = entry?.tracks.find((t) => t.trackId === shown.trackId)?.mid
    ?? entry?.tracks.find((t) => t.kind === 'video')?.mid;
  if (mid == null) throw new Error(`no mid for the camera tile of ${publisherId} (track ${shown.trackId}): ${JSON.stringify(entry)}`);
  const quality = async () => (await readState(viewer)).remote
    .find((r) => r.participantId === publisherId && r.source === 'camera')?.quality ?? null;
  const publisherFacts = async () => {
    const layers = await readOutboundVideo(publisher);
    // [rid, frameWidth, bytesSent, active, framesEncoded, keyFramesEncoded, pliCount]
    return `the publisher sends ${JSON.stringify(layers.map((l) => [l.rid, l.frameWidth, l.bytesSent, l.active,
      l.framesEncoded, l.keyFramesEncoded, l.pliCount]))}`
      + `${await describePublisher()}`;
  };
  const phases = [];
  const phase = async (name, viewport, ok, want, { needs640 = false, wantQuality = null } = {}) => {
    await viewer.setViewportSize(viewport);
    const started = Date.now();
    let publisherMs = null;
    if (needs640) {
      let layers = [];
      let sent = new Map();
      await waitFor(`the publisher to send a simulcast layer >= 640 wide (${name})`, async () => {
        layers = await readOutboundVideo(publisher);
        // frameWidth is the last encoded frame's: the layer must also be sending now.
        const sending = layers.some((l) => l.frameWidth >= 640 && l.active !== false
          && l.bytesSent > (sent.get(l.rid) ?? Infinity));
        sent = new Map(layers.map((l) => [l.rid, l.bytesSent]));
        return sending;
      }, {
        intervalMs: 300,
        deadline: Math.min(deadline, Date.now() + publisherTimeoutMs),
        describe: () => `it sends ${JSON.stringify(layers.map((l) => [l.rid, l.frameWidth, l.bytesSent, l.qualityLimitationReason]))}`,
      }).catch(async (error) => { throw new Error(`${error.message}; ${await publisherFacts()}`); });
      publisherMs = Date.now() - started;
    }
    let stats = null;
    let first = null;
    let asked = null;
    try {
      await waitFor(`the camera ${want} at ${viewport.width}x${viewport.height}`
        + `${wantQuality ? ` having asked for ${wantQuality}` : ''}`, async () => {
        stats = await readInboundVideo(viewer, mid);
        first ??= stats;
        asked = await quality();
        return stats && ok(stats.frameWidth) && stats.framesDecoded > first.framesDecoded
          && (!wantQuality || asked === wantQuality);
      }, { deadline: Math.min(deadline, Date.now() + switchTimeoutMs), describe: () => `inbound: ${JSON.stringify(stats)}` });
    } catch (error) {
      const [t] = await readTiles(viewer, tile);
      throw new Error(`${error.message}; tile ${t?.box.width}x${t?.box.height}, quality asked ${JSON.stringify(asked)}, `
        + `${await publisherFacts()}; phases so far ${JSON.stringify(phases)}`);
    }
    const [t] = await readTiles(viewer, tile);
    phases.push({
      phase: name, viewport: `${viewport.width}x${viewport.height}`, width: stats.frameWidth,
      tile: `${t?.box.width}x${t?.box.height}`, quality: asked, ms: Date.now() - started,
      publisher_wait_ms: publisherMs,
    });
    return stats.frameWidth;
  };
  const first = await phase('large', large, (w) => w >= 640, 'at >= 640 wide', { needs640: true });
  let best = first;
  const until = Math.min(Date.now() + 3000, deadline);
  while (best < 1280 && Date.now() < until) {
    best = Math.max(best, (await readInboundVideo(viewer, mid))?.frameWidth ?? 0);
    await new Promise((r) => setTimeout(r, 250));
  }
  phases[0].width = best;
  // Smaller: the client must ask for `low` (or the width could fall for the publisher's own
  // reasons) and get it.
  const smallWidth = await phase('small', small, (w) => w > 0 && w <= 320, 'at <= 320 wide', { wantQuality: 'low' });
  const again = await phase('large_again', large, (w) => w >= 640, 'at >= 640 wide again', { needs640: true });
  return { large_width: best, small_width: smallWidth, large_again_width: again, phases };
}
