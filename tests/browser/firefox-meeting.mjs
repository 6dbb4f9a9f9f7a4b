#!/usr/bin/env node
// Firefox in a meeting with Chromium (and, with `--bot-name`, a bot the caller adds once the
// browsers are in), through the web client, checking what each one sees. Firefox is Debian's firefox-esr
// (firefox.mjs), Chromium as in lib.mjs; both with fake camera (1280x720) and microphone,
// joining by deep link. Steps, in order:
//
//   join        Fox (Firefox) joins the empty room, so its own offer comes first; then Cam
//               (Chromium). Each browser shows the other's camera tile, whose <video> plays (a
//               width, currentTime and shown frames advancing), hears its audio (inbound bytes
//               rising, `audioPlaying`) and reads the right count.
//   simulcast   Firefox's camera layers at Cam, the two browsers alone in the room: Cam's
//               window large, the inbound frameWidth of Fox's camera is >= 640; shrunk to
//               360x240 (the client asks `low`), <= 320; large again, >= 640. Firefox must
//               first be sending a layer >= 640 at all.
//   receive     The same seen from Firefox: Fox's window shrunk, Firefox asks `low` for Cam's
//               camera and decodes <= 320; large again, >= 640.
//   meet        Prints `{"event":"joined","participants":{"Fox":…,"Cam":…}}`: the caller adds
//               its bot now (named `--bot-name`) and checks it receives both browsers. Each
//               browser then plays the other two's cameras and audio, as in `join`.
//   mute        Fox mutes the microphone (#mic-button, then Ctrl+D, which Firefox would take
//               for "bookmark"): Cam shows Fox's tile `audio-muted`; unmuted, it clears. Fox turns the camera off (#camera-button): `video-muted`
//               at Cam; back on, Cam plays Fox's camera again.
//   screen      Fox shares the screen (#screen-button; headless Firefox shares its own tab,
//               see firefox.mjs): Cam shows a playing `data-source=screen` tile of Fox's; a
//               second click stops it and the tile goes.
//   resume      Fox's WebSocket is closed under the client: #connection-state goes
//               `reconnecting`, then `connected` as the same participant; Cam never loses
//               Fox's tile and both play each other afterwards.
//   rejoin      Fox reloads the page and joins again from the join screen (name remembered,
//               camera preview playing): a new participant in a room where the others already
//               publish, so the server offers first and Firefox's first description is an
//               answer. The reload left the room at once (Cam has dropped the Fox before by
//               the time Fox is back in, well inside the server's 20 s resume grace). Both play
//               each other again and Cam hears Fox.
//   codec       Prints `{"event":"add_h264_publisher"}`: the caller adds a publisher that
//               sends only H.264, named `--h264-name` (Safari's shape). Chromium plays it;
//               Debian's Firefox, which has no H.264, shows its tile `video-unsupported` with
//               a sentence naming H.264 (the server's `track_unsupported`), not a black box.
//
// A failing step is recorded and the next ones still run (except after a failed join or meet).
// stdout: the `joined` event line, then one JSON line `{"ok":bool,"participants":{…},
// "steps":{…}}` (exit 0 when every step passed). stderr: progress and console errors.

import {
  launch, runStep, openPage, readState, readTiles, readOutboundVideo, waitForPlayingTiles, summarize, waitFor,
  optionsOrExit, meetingUrl,
} from './lib.mjs';
import {
  REMOTE_CAMERAS, cameraTileOf, waitForAudio, waitForAudioPlaying, waitForCount, followsTileSize,
} from './checks.mjs';
import { launchFirefox, openFirefoxPage, withTabAsScreen } from './firefox.mjs';

const USAGE = `usage: node firefox-meeting.mjs --url http://localhost:PORT [--room R] [--bot-name NAME] [--h264-name NAME]
       [--timeout-ms 60000] [--switch-timeout-ms 20000] [--publisher-timeout-ms 40000] [--steps all|join,mute,…]`;
const STEPS = ['join', 'simulcast', 'receive', 'meet', 'mute', 'screen', 'resume', 'rejoin', 'codec'];
const DESKTOP = { width: 1280, height: 800 };
const TINY = { width: 360, height: 240 };

function log(message) {
  process.stderr.write(`[firefox ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
}

/** Init script: keeps every WebSocket the page opens, so the test can drop one. */
function keepSockets() {
  window.__sockets = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      window.__sockets.push(this);
    }
  };
}

/** Waits until `page` is in the meeting with its media connected; its participant id. */
async function inMeeting(name, page, deadline) {
  let s = null;
  await waitFor(`${name} to be in the meeting, media connected`, async () => {
    s = await readState(page);
    if (s?.screen === 'ended') throw new Error(`${name} got the ended screen: ${JSON.stringify(s.ended)}`);
    return s?.screen === 'meeting' && s.participantId && s.connectionState === 'connected';
  }, { deadline, describe: () => `state: ${JSON.stringify(s)}` });
  return s.participantId;
}

/** The id of the participant `page` shows under `name` (a tile's name). */
async function participantNamed(page, name, deadline) {
  let remote = null;
  const found = await waitFor(`a participant named ${name}`, async () => {
    remote = (await readState(page))?.remote ?? [];
    return remote.find((r) => r.name === name)?.participantId;
  }, { deadline, describe: () => `remote: ${JSON.stringify(remote?.map((r) => r.name))}` });
  return found;
}

async function run(options, result) {
  const { steps } = result;
  const browsers = [];
  const pages = {};
  const ids = {};
  const wanted = (name) => ['join', 'meet'].includes(name) || options.steps === 'all' || options.steps.split(',').includes(name);
  const step = (name, budgetMs, body) => (wanted(name) ? runStep(steps, name, budgetMs, body, log) : true);
  /** Each page plays every other participant's camera and audio and counts everyone. */
  const playEachOther = async (deadline) => {
    const seen = {};
    for (const [name, page] of Object.entries(pages)) {
      const others = Object.values(ids).filter((id) => id !== ids[name]);
      const tiles = await waitForPlayingTiles(page, REMOTE_CAMERAS, others, {
        deadline, what: `${name} to show ${others.length} remote camera tiles that play`,
      });
      await waitForAudio(page, others, deadline, name);
      await waitForAudioPlaying(page, others, deadline, name, log);
      await waitForCount(page, name, String(others.length + 1), deadline);
      seen[name] = tiles.map((t) => ({ name: t.name, video: `${t.video.width}x${t.video.height}` }));
    }
    return seen;
  };
  try {
    const joined = await step('join', options.timeoutMs, async (deadline) => {
      const [firefox, chromium] = await Promise.all([launchFirefox(), launch()]);
      browsers.push(firefox, chromium);
      const open = (name) => ({
        viewport: DESKTOP,
        timeoutMs: deadline - Date.now(),
        onConsoleError: (text) => process.stderr.write(`[${name}] ${text}\n`),
      });
      // Firefox first, into the empty room: its own offer comes first (every m-line after the
      // first with port 0 and a=bundle-only). Chromium next; the `rejoin` step has Firefox
      // join a room where the others publish.
      pages.Fox = await openFirefoxPage(firefox, meetingUrl(options.url, { room: options.room, name: 'Fox' }), {
        ...open('Fox'),
        initScripts: [keepSockets, withTabAsScreen],
      });
      ids.Fox = await inMeeting('Fox', pages.Fox, deadline);
      pages.Cam = await openPage(chromium, meetingUrl(options.url, { room: options.room, name: 'Cam' }), open('Cam'));
      ids.Cam = await inMeeting('Cam', pages.Cam, deadline);
      result.participants = { ...ids };
      return { tiles: await playEachOther(deadline) };
    });
    if (!joined) return;
    const { Fox: fox, Cam: cam } = pages;

    // Simulcast by tile size: Firefox's camera at Chromium, then Chromium's at Firefox.
    for (const [name, viewer, publisher, publisherId] of [
      ['simulcast', cam, fox, ids.Fox], ['receive', fox, cam, ids.Cam],
    ]) {
      await step(name, options.publisherTimeoutMs * 2 + options.switchTimeoutMs * 3, async (deadline) => {
        try {
          return await followsTileSize({
            viewer, publisher, publisherId, large: DESKTOP, small: TINY, deadline,
            switchTimeoutMs: options.switchTimeoutMs, publisherTimeoutMs: options.publisherTimeoutMs,
          });
        } finally {
          await viewer.setViewportSize(DESKTOP);
        }
      });
    }

    // The caller's bot joins only now: three publishers (Firefox encoding every layer for
    // someone) are more than the two simulcast steps above can time reliably on a loaded
    // 2-core machine (see tests/browser_firefox.rs).
    const met = await step('meet', options.timeoutMs, async (deadline) => {
      process.stdout.write(`${JSON.stringify({ event: 'joined', participants: { Fox: ids.Fox, Cam: ids.Cam } })}\n`);
      if (options.botName) ids.Bot = await participantNamed(pages.Cam, options.botName, deadline);
      result.participants = { ...ids };
      return { tiles: await playEachOther(deadline) };
    });
    if (!met) return;

    await step('mute', options.timeoutMs, async (deadline) => {
      const started = Date.now();
      const tileAtCam = async (has, what) => {
        let tile = null;
        await waitFor(`Cam to show Fox's tile ${what}`, async () => {
          [tile] = await readTiles(cam, cameraTileOf(ids.Fox));
          return tile?.visible && has(tile);
        }, { deadline, describe: () => `Fox's tile: ${JSON.stringify(tile)}` });
        return Date.now() - started;
      };
      await fox.click('#mic-button');
      const muted = await tileAtCam((t) => t.classes.includes('audio-muted') && t.mutedIconVisible, 'audio-muted');
      await fox.click('#mic-button');
      const unmuted = await tileAtCam((t) => !t.classes.includes('audio-muted') && !t.mutedIconVisible, 'unmuted');
      // Ctrl+D is Firefox's "bookmark this page": the client takes it for the microphone.
      await fox.evaluate(() => document.activeElement?.blur());
      await fox.press('Control+KeyD');
      const keyMuted = await tileAtCam((t) => t.classes.includes('audio-muted'), 'audio-muted after Ctrl+D');
      await fox.press('Control+KeyD');
      const keyUnmuted = await tileAtCam((t) => !t.classes.includes('audio-muted'), 'unmuted after a second Ctrl+D');
      await fox.click('#camera-button');
      const cameraOff = await tileAtCam((t) => t.classes.includes('video-muted'), 'video-muted');
      const live = await fox.evaluate(() => (window.roomcast.meeting().localStream?.getVideoTracks() ?? [])
        .filter((t) => t.readyState === 'live').length);
      if (live) throw new Error(`Fox's camera still captures (${live} live video tracks) while off`);
      await fox.click('#camera-button');
      const others = Object.values(ids).filter((id) => id !== ids.Cam);
      await waitForPlayingTiles(cam, REMOTE_CAMERAS, others, { deadline, what: 'Cam to play Fox\'s camera again' });
      const [tile] = await readTiles(cam, cameraTileOf(ids.Fox));
      if (tile.classes.includes('video-muted')) throw new Error('Cam still shows Fox\'s camera off');
      return {
        muted_ms: muted, unmuted_ms: unmuted, key_muted_ms: keyMuted, key_unmuted_ms: keyUnmuted,
        camera_off_ms: cameraOff, camera_back_ms: Date.now() - started,
      };
    });

    await step('screen', options.timeoutMs, async (deadline) => {
      const screenTile = '.tile[data-source="screen"]:not(.local)';
      await fox.click('#screen-button');
      const started = Date.now();
      let s = null;
      await waitFor('Fox to be sharing', async () => { s = await readState(fox); return s?.screenSharing; },
        { deadline, describe: () => `errors: ${JSON.stringify(s?.errors)}, banner: ${JSON.stringify(s?.banner)}` });
      const [tile] = await waitForPlayingTiles(cam, screenTile, [ids.Fox], {
        deadline, what: 'Cam to show Fox\'s screen tile playing',
      });
      const shown = { ms: Date.now() - started, video: `${tile.video.width}x${tile.video.height}` };
      await fox.click('#screen-button');
      let last = null;
      await waitFor('Fox\'s screen tile to go at Cam', async () => {
        last = await readTiles(cam, '.tile[data-source="screen"]');
        return last.length === 0;
      }, { deadline, describe: () => `screen tiles: ${JSON.stringify(last)}` });
      return { shown, gone_ms: Date.now() - started - shown.ms };
    });

    await step('resume', options.timeoutMs, async (deadline) => {
      await cam.evaluate((id) => {
        window.__foxTileGone = false;
        new MutationObserver(() => {
          if (!document.querySelector(`.tile[data-participant-id="${id}"]`)) window.__foxTileGone = true;
        }).observe(document.body, { childList: true, subtree: true });
      }, ids.Fox);
      await fox.evaluate(() => {
        const label = document.getElementById('connection-state');
        window.__states = [label.dataset.state];
        new MutationObserver(() => window.__states.push(label.dataset.state))
          .observe(label, { attributes: true, attributeFilter: ['data-state'] });
        window.__sockets.at(-1).close(4000, 'dropped by the test');
      });
      const dropped = Date.now();
      let s = null;
      await waitFor('Fox to show reconnecting, then connected on a new WebSocket', async () => {
        s = await readState(fox);
        const states = await fox.evaluate(() => window.__states);
        return states.includes('reconnecting') && states.at(-1) === 'connected' && s.signalingState === 'open';
      }, { deadline, describe: () => `state: ${JSON.stringify(s)}` });
      const reconnected = Date.now() - dropped;
      if (s.participantId !== ids.Fox) throw new Error(`Fox came back as ${s.participantId}: re-joined, not resumed`);
      await waitForPlayingTiles(fox, cameraTileOf(ids.Cam), [ids.Cam], { deadline, what: 'Fox to play Cam after the resume' });
      await waitForPlayingTiles(cam, cameraTileOf(ids.Fox), [ids.Fox], { deadline, what: 'Cam to play Fox after the resume' });
      if (await cam.evaluate(() => window.__foxTileGone)) throw new Error('Fox\'s tile went away at Cam during the resume');
      return { states: await fox.evaluate(() => window.__states), reconnected_ms: reconnected };
    });

    await step('rejoin', options.timeoutMs, async (deadline) => {
      const started = Date.now();
      await fox.reload({ timeout: Math.max(1, deadline - Date.now()) });
      // The address bar now holds the room only: the join screen, its preview capturing in
      // Firefox, with the name remembered; joining is one click.
      let name = null;
      await waitFor('Fox\'s join screen with the name filled in and its camera preview playing', async () => {
        name = await fox.evaluate(() => document.getElementById('join-name')?.value ?? null);
        const preview = await fox.evaluate(() => document.getElementById('preview-video')?.videoWidth ?? 0);
        return name === 'Fox' && preview > 0 && await fox.isVisible('#join-button');
      }, { deadline, describe: () => `name ${JSON.stringify(name)}` });
      await fox.click('#join-button');
      const before = ids.Fox;
      ids.Fox = await inMeeting('Fox', fox, deadline);
      result.participants.FoxAgain = ids.Fox;
      if (ids.Fox === before) throw new Error('Fox kept its participant id across a reload');
      // The reload said `leave` (Firefox closes the socket before `pagehide`, so the client
      // sends it at `beforeunload`): the Fox before is gone at Cam already, not kept for the
      // server's 20 s resume grace as a dropped connection would be.
      let camSees = [];
      await waitFor('Cam to have dropped the Fox before the reload', async () => {
        camSees = (await readState(cam)).remote.map((r) => r.participantId);
        return !camSees.includes(before);
      }, { deadline: Math.min(deadline, Date.now() + 5000), describe: () => `Cam sees ${JSON.stringify(camSees)}` });
      const others = (self) => Object.values(ids).filter((id) => id !== self);
      await waitForPlayingTiles(fox, REMOTE_CAMERAS, others(ids.Fox), { deadline, what: 'Fox to play the others again' });
      const camTiles = await waitForPlayingTiles(cam, REMOTE_CAMERAS, others(ids.Cam), {
        deadline, what: 'Cam to play the camera of Fox back in the room (and no tile of the Fox before)',
      });
      await waitForAudio(cam, [ids.Fox], deadline, 'Cam');
      const layers = await readOutboundVideo(fox);
      return {
        ms: Date.now() - started,
        fox_at_cam: camTiles.find((t) => t.participantId === ids.Fox)?.video,
        fox_sends: layers.map((l) => `${l.rid}:${l.frameWidth}`),
      };
    });

    await step('codec', options.timeoutMs, async (deadline) => {
      // The caller adds a publisher that sends H.264 only (the shape of Safari's offer).
      process.stdout.write(`${JSON.stringify({ event: 'add_h264_publisher' })}\n`);
      const id = await participantNamed(cam, options.h264Name, deadline);
      const started = Date.now();
      // Chromium decodes H.264: the tile plays.
      const [atCam] = await waitForPlayingTiles(cam, cameraTileOf(id), [id], {
        deadline, what: `Cam to play ${options.h264Name}'s H.264 camera`,
      });
      // Debian's Firefox has no H.264: the server says so and the tile shows it, not a black box.
      let tile = null;
      let entry = null;
      await waitFor(`Fox's tile of ${options.h264Name} to say it cannot play H.264`, async () => {
        [tile] = await readTiles(fox, cameraTileOf(id));
        entry = (await readState(fox)).remote.find((r) => r.participantId === id && r.source === 'camera');
        const notice = await fox.evaluate((sel) => {
          const el = document.querySelector(`${sel} .tile-unsupported`);
          return el?.checkVisibility() ? el.textContent : null;
        }, cameraTileOf(id));
        return tile?.classes.includes('video-unsupported') && /H\.264/.test(notice ?? '')
          && entry?.videoUnsupported === 'video/H264' ? notice : null;
      }, { deadline, describe: () => `tile ${JSON.stringify(tile)}, state ${JSON.stringify(entry)}` });
      return {
        ms: Date.now() - started,
        at_cam: `${atCam.video.width}x${atCam.video.height}`,
        at_fox: await fox.evaluate((sel) => document.querySelector(`${sel} .tile-unsupported`).textContent, cameraTileOf(id)),
      };
    });
  } finally {
    await Promise.all(browsers.map((b) => b.close().catch(() => {})));
  }
}

async function main() {
  const options = optionsOrExit({
    room: `firefox-${Date.now().toString(36)}`,
    botName: '',
    h264Name: 'Safari',
    timeoutMs: 60000,
    switchTimeoutMs: 20000,
    publisherTimeoutMs: 40000,
    steps: 'all',
  }, USAGE);
  const started = Date.now();
  const result = { ok: false, room: options.room, participants: {}, steps: {} };
  try {
    await run(options, result);
    const ran = Object.entries(result.steps);
    const expected = options.steps === 'all' ? STEPS.length : new Set(['join', 'meet', ...options.steps.split(',')]).size;
    result.ok = ran.length === expected && ran.every(([, s]) => s.ok);
    const failed = ran.filter(([, s]) => !s.ok).map(([n, s]) => `${n}: ${s.error}`);
    if (failed.length) result.error = failed.join(' | ');
  } catch (error) {
    result.error = summarize(error);
  }
  result.total_ms = Date.now() - started;
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(result.ok ? 0 : 1);
}

main();
