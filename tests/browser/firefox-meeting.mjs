#!/usr/bin/env node
// Firefox in a meeting with Chromium (and, when `--bot` names one, a bot already in the room),
// through the web client, checking what each one sees. Firefox is Debian's firefox-esr
// (firefox.mjs), Chromium as in lib.mjs; both with fake camera (1280x720) and microphone,
// joining by deep link. Steps, in order:
//
//   join        Fox (Firefox) and Cam (Chromium) join. Each shows a remote camera tile per
//               other participant (the other browser and the bot) whose <video> plays (a
//               width, currentTime and shown frames advancing), hears their audio (inbound
//               bytes rising, `audioPlaying`) and reads the right count. Prints
//               `{"event":"joined","participants":{"Fox":…,"Cam":…}}` first, so the caller can
//               check the bot receives both browsers meanwhile.
//   simulcast   Firefox's camera layers at Cam: Cam's window large, the inbound frameWidth of
//               Fox's camera is >= 640; shrunk to 360x240 (the client asks `low`), <= 320;
//               large again, >= 640. Firefox must first be sending a layer >= 640 at all.
//   receive     The same seen from Firefox: Fox's window shrunk, Firefox asks `low` for Cam's
//               camera and decodes <= 320; large again, >= 640.
//   mute        Fox mutes the microphone (#mic-button): Cam shows Fox's tile `audio-muted`;
//               unmuted, it clears. Fox turns the camera off (#camera-button): `video-muted`
//               at Cam; back on, Cam plays Fox's camera again.
//   screen      Fox shares the screen (#screen-button; headless Firefox shares its own tab,
//               see firefox.mjs): Cam shows a playing `data-source=screen` tile of Fox's; a
//               second click stops it and the tile goes.
//   resume      Fox's WebSocket is closed under the client: #connection-state goes
//               `reconnecting`, then `connected` as the same participant; Cam never loses
//               Fox's tile and both play each other afterwards.
//
// A failing step is recorded and the next ones still run (except after a failed join).
// stdout: the `joined` event line, then one JSON line `{"ok":bool,"participants":{…},
// "steps":{…}}` (exit 0 when every step passed). stderr: progress and console errors.

import {
  launch, runStep, openPage, readState, readTiles, readInboundVideo, readOutboundVideo, waitForPlayingTiles,
  summarize, waitFor, optionsOrExit, meetingUrl,
} from './lib.mjs';
import {
  REMOTE_CAMERAS, cameraTileOf, waitForAudio, waitForAudioPlaying, waitForCount, followsTileSize,
} from './checks.mjs';
import { launchFirefox, openFirefoxPage, withTabAsScreen } from './firefox.mjs';

const USAGE = `usage: node firefox-meeting.mjs --url http://localhost:PORT [--room R] [--bot PARTICIPANT_ID]
       [--timeout-ms 60000] [--switch-timeout-ms 20000] [--publisher-timeout-ms 40000] [--steps all|join,mute,…]`;
const STEPS = ['join', 'simulcast', 'receive', 'mute', 'screen', 'resume'];
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

async function run(options, result) {
  const { steps } = result;
  const browsers = [];
  const pages = {};
  const ids = {};
  const wanted = (name) => name === 'join' || options.steps === 'all' || options.steps.split(',').includes(name);
  const step = (name, budgetMs, body) => (wanted(name) ? runStep(steps, name, budgetMs, body, log) : true);
  try {
    const joined = await step('join', options.timeoutMs, async (deadline) => {
      const [firefox, chromium] = await Promise.all([launchFirefox(), launch()]);
      browsers.push(firefox, chromium);
      const open = (name) => ({
        viewport: DESKTOP,
        timeoutMs: deadline - Date.now(),
        onConsoleError: (text) => process.stderr.write(`[${name}] ${text}\n`),
      });
      [pages.Fox, pages.Cam] = await Promise.all([
        openFirefoxPage(firefox, meetingUrl(options.url, { room: options.room, name: 'Fox' }), {
          ...open('Fox'),
          initScripts: [keepSockets, withTabAsScreen],
        }),
        openPage(chromium, meetingUrl(options.url, { room: options.room, name: 'Cam' }), open('Cam')),
      ]);
      for (const [name, page] of Object.entries(pages)) {
        let s = null;
        await waitFor(`${name} to be in the meeting`, async () => {
          s = await readState(page);
          if (s?.screen === 'ended') throw new Error(`${name} got the ended screen: ${JSON.stringify(s.ended)}`);
          return s?.screen === 'meeting' && s.participantId;
        }, { deadline, describe: () => `state: ${JSON.stringify(s)}` });
        ids[name] = s.participantId;
      }
      result.participants = { ...ids };
      process.stdout.write(`${JSON.stringify({ event: 'joined', participants: ids })}\n`);
      const bot = options.bot ? [options.bot] : [];
      const seen = {};
      for (const [name, page] of Object.entries(pages)) {
        const others = [...Object.values(ids).filter((id) => id !== ids[name]), ...bot];
        const tiles = await waitForPlayingTiles(page, REMOTE_CAMERAS, others, {
          deadline, what: `${name} to show ${others.length} remote camera tiles that play`,
        });
        await waitForAudio(page, others, deadline, name);
        await waitForAudioPlaying(page, others, deadline, name, log);
        await waitForCount(page, name, String(others.length + 1), deadline);
        seen[name] = tiles.map((t) => ({ name: t.name, video: `${t.video.width}x${t.video.height}` }));
      }
      return { tiles: seen };
    });
    if (!joined) return;
    const { Fox: fox, Cam: cam } = pages;

    await step('simulcast', options.publisherTimeoutMs * 2 + options.switchTimeoutMs * 3, async (deadline) => {
      try {
        return await followsTileSize({
          viewer: cam, publisher: fox, publisherId: ids.Fox, large: DESKTOP, small: TINY, deadline,
          switchTimeoutMs: options.switchTimeoutMs, publisherTimeoutMs: options.publisherTimeoutMs,
        });
      } finally {
        await cam.setViewportSize(DESKTOP);
      }
    });

    await step('receive', options.publisherTimeoutMs * 2 + options.switchTimeoutMs * 3, async (deadline) => {
      try {
        return await followsTileSize({
          viewer: fox, publisher: cam, publisherId: ids.Cam, large: DESKTOP, small: TINY, deadline,
          switchTimeoutMs: options.switchTimeoutMs, publisherTimeoutMs: options.publisherTimeoutMs,
        });
      } finally {
        await fox.setViewportSize(DESKTOP);
      }
    });

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
      await fox.click('#camera-button');
      const cameraOff = await tileAtCam((t) => t.classes.includes('video-muted'), 'video-muted');
      const live = await fox.evaluate(() => (window.roomcast.meeting().localStream?.getVideoTracks() ?? [])
        .filter((t) => t.readyState === 'live').length);
      if (live) throw new Error(`Fox's camera still captures (${live} live video tracks) while off`);
      await fox.click('#camera-button');
      const others = [ids.Fox, ...(options.bot ? [options.bot] : [])];
      await waitForPlayingTiles(cam, REMOTE_CAMERAS, others, { deadline, what: 'Cam to play Fox\'s camera again' });
      const [tile] = await readTiles(cam, cameraTileOf(ids.Fox));
      if (tile.classes.includes('video-muted')) throw new Error('Cam still shows Fox\'s camera off');
      return { muted_ms: muted, unmuted_ms: unmuted, camera_off_ms: cameraOff, camera_back_ms: Date.now() - started };
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
  } finally {
    await Promise.all(browsers.map((b) => b.close().catch(() => {})));
  }
}

async function main() {
  const options = optionsOrExit({
    room: `firefox-${Date.now().toString(36)}`,
    bot: '',
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
    const expected = options.steps === 'all' ? STEPS.length : new Set(['join', ...options.steps.split(',')]).size;
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
