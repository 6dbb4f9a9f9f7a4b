#!/usr/bin/env node
// Browser ↔ server interop check, run by the Rust test suite against a live server.
//
// Joins `--room` as `--name` in headless Chromium (fake camera and microphone) and waits
// until the browser both receives `--expect-remote`'s video (frames decoded and growing,
// a video element with a width) and audio (bytes received), and sends its own audio and
// video. Then it stays `--hold-ms` longer so the other side can measure what it got.
//
// stdout: `{"event":"joined","participant_id":"…"}` as soon as the browser has joined,
// then one result line: `{"ok":true,"participant_id":…,"frames_decoded":…,"frame_width":…,
// "frame_height":…,"audio_bytes_received":…}` (exit 0) or `{"ok":false,"error":"…"}` (exit 1).
// stderr: the page's console errors, for debugging.

import { launch, openPage, readState, summarize, readRtpStats, waitFor, sleep, parseArgs, meetingUrl } from './lib.mjs';

const USAGE = `usage: node interop.mjs --url http://localhost:PORT --room R [--name Browser]
       --expect-remote PARTICIPANT_ID [--timeout-ms 30000] [--hold-ms 3000]`;

function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

async function run(options, browser) {
  const deadline = Date.now() + options.timeoutMs;
  const page = await openPage(browser, meetingUrl(options.url, { room: options.room, name: options.name }), {
    onConsoleError: (text) => process.stderr.write(`[page] ${text}\n`),
    timeoutMs: deadline - Date.now(),
  });

  let state = null;
  const joined = await waitFor('the join', async () => {
    state = await readState(page);
    if (state?.participantId) return state;
    if (state?.errors.length) throw new Error(`join refused: ${state.errors.map((e) => `${e.code}: ${e.message}`).join('; ')}`);
    return null;
  }, { deadline, describe: () => JSON.stringify(state) });
  const participantId = joined.participantId;
  emit({ event: 'joined', participant_id: participantId });

  let stats = null;
  let previousFrames = -1;
  let framesGrowing = false;
  let remote = null;
  const ready = () => {
    const inbound = stats?.inbound;
    const outbound = stats?.outbound;
    return Boolean(
      remote && remote.videoWidth > 0 && framesGrowing
        && inbound.video.frames > 0 && inbound.audio.bytes > 0
        && outbound.audio.bytes > 0 && outbound.video.bytes > 0,
    );
  };
  await waitFor(`media to and from ${options.expectRemote}`, async () => {
    state = await readState(page);
    remote = state?.remote.find((r) => r.participantId === options.expectRemote) ?? null;
    stats = await readRtpStats(page, { mids: remote ? remote.tracks.map((t) => t.mid) : [] });
    if (!stats) return false;
    const frames = stats.inbound.video.frames;
    framesGrowing = previousFrames >= 0 && frames > previousFrames && previousFrames > 0;
    previousFrames = frames;
    return ready();
  }, {
    deadline,
    describe: () => `remote: ${JSON.stringify(remote)}, stats: ${JSON.stringify(stats)}, errors: ${JSON.stringify(state?.errors ?? [])}, known remotes: ${JSON.stringify(state?.remote.map((r) => r.participantId) ?? [])}`,
  });

  await sleep(options.holdMs);

  state = await readState(page);
  remote = state.remote.find((r) => r.participantId === options.expectRemote) ?? remote;
  stats = await readRtpStats(page, { mids: remote.tracks.map((t) => t.mid) });
  return {
    ok: true,
    participant_id: participantId,
    frames_decoded: stats.inbound.video.frames,
    frame_width: stats.inbound.video.frameWidth || remote.videoWidth,
    frame_height: stats.inbound.video.frameHeight || remote.videoHeight,
    audio_bytes_received: stats.inbound.audio.bytes,
  };
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2), {
      url: '', room: '', name: 'Browser', expectRemote: '', timeoutMs: 30000, holdMs: 3000,
    }, USAGE);
    if (!options.url || !options.room || !options.expectRemote) throw new Error(`missing option\n${USAGE}`);
  } catch (error) {
    emit({ ok: false, error: error.message });
    process.exit(1);
  }

  const browser = await launch();
  const stop = async (signal) => {
    await browser.close().catch(() => {});
    emit({ ok: false, error: `interrupted by ${signal}` });
    process.exit(1);
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));

  let result;
  try {
    result = await run(options, browser);
  } catch (error) {
    result = { ok: false, error: summarize(error) };
  }
  await browser.close().catch(() => {});
  emit(result);
  process.exit(result.ok ? 0 : 1);
}

main().catch((error) => {
  emit({ ok: false, error: String(error?.stack ?? error) });
  process.exit(1);
});
