#!/usr/bin/env node
// A three-person meeting through the web client, against a running server, checking what
// each person sees. One headless Chromium, one context (own permissions, own storage) per
// person, fake camera (1280x720) and microphone. Steps, in order:
//
//   join        Ann, Ben and Cleo join one room by deep link (`/?room=R&name=Ann`). Each
//               page shows the meeting screen, `#connection-state` connected, and exactly two
//               remote camera tiles (`.tile[data-source=camera]:not(.local)`), one per other
//               person, named in `.tile-name`, whose <video> plays (videoWidth > 0, not paused,
//               currentTime and shown frames (getVideoPlaybackQuality) advancing: currentTime
//               alone runs on for a MediaStream that gets no frames); the test hook agrees
//               (`state().remote`: videoWidth, currentTime advancing), the other two's audio
//               arrives (inbound-rtp bytes of their audio mids rising) and plays
//               (`audioPlaying`; where Chrome blocked autoplay the client shows #audio-unlock,
//               which is clicked as a user would, and reported) and #participant-count reads 3.
//   screenshots Ann's 1280x800 view saved as `--screenshot` (target/screenshots/screenshot.png);
//               Ben's window set to a phone's 390x844, his tiles still play and fit, the Leave
//               button is on screen; saved as `--phone-screenshot`
//               (target/screenshots/screenshot-phone.png). refresh-screenshots.sh copies them
//               to docs/.
//   chat        Ann opens the chat (#chat-button), types (#chat-input) and presses Enter: the
//               message appears in Ann's #chat-log; Ben and Cleo (chat closed) show the unread
//               badge #chat-unread "1" and have the text in #chat-log; Ben opens his chat and
//               sees it, with Ann's name, and the badge goes away; Escape closes Ann's panel.
//   stats       Ann clicks #stats-button: both remote tiles' `.tile-stats` show, with the
//               video's size (as its <video> has it, e.g. 640×360) and a bitrate in kbps; a
//               second click hides them.
//   resolution  Ann (1280x800, two remote tiles) receives Ben's camera at >= 640 wide (inbound-rtp
//               frameWidth of his tile's mid); her window shrunk to 360x240, the received width
//               drops to <= 320 (the `low` layer) while frames keep coming; enlarged again, it
//               rises back to >= 640. The shrink must come from the client asking for `low`
//               (state().remote[].quality). Before each large phase, apart
//               (--publisher-timeout-ms), Ben must be sending a layer >= 640 at all: a
//               publisher's Chrome sometimes stays near its 300 kbps start estimate for 10-25 s
//               and sends only `q` (reported as `publisher_wait_ms`). The server
//               switches layers at keyframes: each switch may take up to --switch-timeout-ms.
//               The 1280 layer is reported, not required: on 2 cores with 3 encoders Chrome may
//               not send it, and a 1280x800 window's tiles ask for `medium`.
//   mute        Ben mutes with #mic-button: Ann and Cleo show his tile with class
//               `audio-muted` and a visible `.tile-muted`; unmuting clears both. Then the same
//               with Ctrl+D twice. Muted, Ben's microphone track is disabled (or ended) and the
//               audio bytes Ann receives from him stop (stand still for 1.2 s, within 4 s); after
//               the unmute they flow again.
//   camera      Ben turns his camera off (#camera-button): Ann and Cleo show his tile with class
//               `video-muted`, Ann's stops showing new frames (none for 1 s, within 4 s); his
//               capture stops (no live video track: the light goes off); turned on again, his
//               tile plays again at both.
//   screen      Cleo shares her screen (#screen-button): Ann and Ben get an extra
//               `.tile[data-source=screen]` of Cleo's that plays; her camera tile stays; a
//               second click stops it and the tile goes away.
//               Headless Chromium with `--use-fake-device-for-media-stream` and
//               `--use-fake-ui-for-media-stream` (lib.mjs) answers getDisplayMedia with a fake
//               1280x720 "screen:-3:0" source; the --auto-select-desktop-capture-source /
//               --auto-accept-this-tab-capture / --enable-usermedia-screen-capturing flags are
//               not needed (tried: no difference). No stub: the real client path runs.
//   leave       Cleo clicks #leave-button: she sees #ended-screen saying she left; her tiles
//               disappear at Ann and Ben, who keep playing each other; their count reads 2.
//
// A failing step is recorded and the next ones still run (except after a failed join).
//
// stdout: one JSON line `{"ok":bool,"room":…,"participants":{…},"steps":{"join":{"ok":…,"ms":…,
// …},…}}`; `ok` is true when every step passed (exit 0, else 1). Per step `error` says what
// failed. stderr: progress and the pages' console errors.

import { fileURLToPath } from 'node:url';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import {
  runStep, runStepScript, openPage, readState, readTiles,
  waitForPlayingTiles, visibleText, recordSignaling, summarize, waitFor, optionsOrExit, meetingUrl,
} from './lib.mjs';
import {
  REMOTE_CAMERAS, cameraTileOf, waitForAudio, waitForAudioPlaying, waitForHookPlaying, waitForCount,
  audioBytesFrom, waitForStill, followsTileSize,
} from './checks.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const USAGE = `usage: node meeting.mjs --url http://localhost:PORT [--room R] [--timeout-ms 40000]
       [--switch-timeout-ms 15000] [--publisher-timeout-ms 40000] [--screenshot target/screenshots/screenshot.png]
       [--phone-screenshot target/screenshots/screenshot-phone.png] [--steps all|join,chat,…]`;
const NAMES = ['Ann', 'Ben', 'Cleo'];
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const TINY = { width: 360, height: 240 };

/** Playwright options bounding an action by `deadline` (epoch ms). */
const left = (deadline) => ({ timeout: Math.max(1, deadline - Date.now()) });

function log(message) {
  process.stderr.write(`[meeting ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
}

/** Waits until `selector`'s text contains `text`; returns it. */
async function waitForText(page, selector, text, deadline, what) {
  let last = null;
  return waitFor(what, async () => {
    last = await page.evaluate((sel) => document.querySelector(sel)?.textContent ?? null, selector);
    return last?.includes(text) ? last : null;
  }, { deadline, describe: () => `${selector} text: ${JSON.stringify(last)}` });
}

async function run(options, browser, result) {
  const { steps } = result;
  const pages = [];
  const ids = [];
  const signaling = {};
  const clock = Date.now();
  /** `name`'s recorded protocol messages of `type` (sent and received), short. */
  const messages = (name, type) => (signaling[name] ?? []).filter((m) => m.message.type === type)
    .map((m) => `${m.dir} ${JSON.stringify(m.message)}`);

  /** Runs one step; records `{ok, ms, ...details}` or `{ok:false, ms, error}`. */
  async function step(name, budgetMs, body, { restore } = {}) {
    if (name !== 'join' && options.steps !== 'all' && !options.steps.split(',').includes(name)) return true;
    if (await runStep(steps, name, budgetMs, body, log)) return true;
    // Put things back as the next steps expect them, as far as it goes.
    if (restore) {
      await restore(Date.now() + 10000).catch((e) => log(`${name}: restoring failed too: ${summarize(e)}`));
    }
    return false;
  }
  /** Turns Ben's microphone or camera (`micOn`/`cameraOn`, its button) back on if it is off. */
  const turnBackOn = (key, button) => async (deadline) => {
    if ((await readState(pages[1]))[key] !== false) return;
    await pages[1].click(button, left(deadline));
    await waitFor(`Ben's ${key} to be true again`, async () => (await readState(pages[1]))[key], { deadline });
  };

  // --- join ---
  const joined = await step('join', options.timeoutMs, async (deadline) => {
    pages.push(...await Promise.all(NAMES.map((name) => openPage(browser,
      meetingUrl(options.url, { room: options.room, name }), {
        viewport: DESKTOP,
        onConsoleError: (text) => process.stderr.write(`[${name}] ${text}\n`),
        timeoutMs: deadline - Date.now(),
        // For failure messages: which side of a mute or chat went missing.
        beforeGoto: (page) => { signaling[name] = recordSignaling(page, ['mute', 'track_muted', 'published', 'publisher_layers', 'set_quality', 'chat', 'error']); },
      }))));
    for (const [i, page] of pages.entries()) {
      let s = null;
      await waitFor(`${NAMES[i]} to be in the meeting`, async () => {
        s = await readState(page);
        if (s?.screen === 'ended') throw new Error(`${NAMES[i]} got the ended screen: ${JSON.stringify(s.ended)}`);
        return s?.screen === 'meeting' && s.participantId && await page.isVisible('#meeting-screen')
          && !(await page.isVisible('#join-screen')) && !(await page.isVisible('#ended-screen'));
      }, { deadline, describe: () => `state: ${JSON.stringify(s)}` });
      ids.push(s.participantId);
    }
    result.participants = Object.fromEntries(NAMES.map((n, i) => [n, ids[i]]));
    log(`joined: ${JSON.stringify(result.participants)}`);

    const seen = {};
    const unlocked = {};
    for (const [i, page] of pages.entries()) {
      const others = ids.filter((_, j) => j !== i);
      const tiles = await waitForPlayingTiles(page, REMOTE_CAMERAS, others, {
        deadline, what: `${NAMES[i]} to show 2 remote camera tiles that play`,
      });
      for (const [j, id] of ids.entries()) {
        if (j === i) continue;
        const tile = tiles.find((t) => t.participantId === id);
        if (!tile.name?.includes(NAMES[j])) {
          throw new Error(`${NAMES[i]} shows ${NAMES[j]}'s tile named ${JSON.stringify(tile.name)}`);
        }
      }
      await waitForHookPlaying(page, others, deadline, NAMES[i]);
      await waitForAudio(page, others, deadline, NAMES[i]);
      unlocked[NAMES[i]] = await waitForAudioPlaying(page, others, deadline, NAMES[i], log);
      await waitFor(`${NAMES[i]}'s #connection-state to be connected`,
        () => page.$eval('#connection-state', (e) => e.dataset.state === 'connected'), { deadline });
      await waitForCount(page, NAMES[i], '3', deadline);
      seen[NAMES[i]] = tiles.map((t) => ({ name: t.name, video: `${t.video.width}x${t.video.height}`, tile: `${t.box.width}x${t.box.height}` }));
    }
    return { since_start_ms: Date.now() - clock, tiles: seen, audio_unlock_clicked: unlocked };
  });
  if (!joined) return;
  const [ann, ben, cleo] = pages;
  const [annId, benId, cleoId] = ids;

  // --- screenshots ---
  await step('screenshots', 30000, async (deadline) => {
    await mkdir(path.dirname(options.screenshot), { recursive: true });
    await waitForPlayingTiles(ann, REMOTE_CAMERAS, [benId, cleoId], { deadline });
    await ann.screenshot({ path: options.screenshot });
    await ben.setViewportSize(PHONE);
    const tiles = await waitForPlayingTiles(ben, REMOTE_CAMERAS, [annId, cleoId], {
      deadline, what: "Ben's tiles to play at 390x844",
    });
    const wide = tiles.filter((t) => t.box.width > PHONE.width);
    if (wide.length) throw new Error(`at 390x844 tiles are wider than the window: ${JSON.stringify(wide)}`);
    const leave = await ben.$('#leave-button');
    const box = await leave?.boundingBox();
    if (!box || !(await leave.isVisible()) || box.x < 0 || box.y < 0
      || box.x + box.width > PHONE.width || box.y + box.height > PHONE.height) {
      throw new Error(`at 390x844 the Leave button is not on screen: ${JSON.stringify(box)}`);
    }
    await mkdir(path.dirname(options.phoneScreenshot), { recursive: true });
    await ben.screenshot({ path: options.phoneScreenshot });
    await ben.setViewportSize(DESKTOP);
    return {
      desktop: path.relative(REPO, options.screenshot),
      phone: path.relative(REPO, options.phoneScreenshot),
      phone_tiles: tiles.map((t) => `${t.box.width}x${t.box.height}`),
    };
  }, { restore: () => ben.setViewportSize(DESKTOP) });

  // --- chat ---
  await step('chat', 20000, async (deadline) => {
    // The text does not name its sender: the log must.
    const text = `Hello everyone! Can you all see and hear me? ${Date.now().toString(36)}`;
    await ann.click('#chat-button', left(deadline));
    await waitFor('Ann\'s #chat-input to be visible', () => ann.isVisible('#chat-input'), { deadline });
    await ann.fill('#chat-input', text, left(deadline));
    await ann.press('#chat-input', 'Enter', left(deadline));
    const sent = Date.now();
    await waitFor('Ann\'s own message in her visible #chat-log',
      async () => (await visibleText(ann, '#chat-log'))?.includes(text), { deadline });
    const input = await ann.inputValue('#chat-input', left(deadline));
    if (input !== '') throw new Error(`Ann's #chat-input still holds ${JSON.stringify(input)} after Enter`);
    const delivered = {};
    for (const [name, page] of [['Ben', ben], ['Cleo', cleo]]) {
      if (await page.isVisible('#chat-panel')) throw new Error(`${name}'s chat panel is open before the test opened it`);
      let badge = null;
      await waitFor(`${name}'s #chat-unread badge to show 1`, async () => {
        badge = await visibleText(page, '#chat-unread');
        return badge === '1';
      }, { deadline, describe: () => `badge: ${JSON.stringify(badge)}` });
      await waitForText(page, '#chat-log', text, deadline, `the message in ${name}'s #chat-log`);
      const s = await readState(page);
      if (!s.chat.some((m) => m.text === text && m.participantId === annId && m.name === 'Ann')) {
        throw new Error(`${name}'s state().chat lacks the message: ${JSON.stringify(s.chat)}`);
      }
      delivered[name] = Date.now() - sent;
    }
    await ben.click('#chat-button', left(deadline));
    const chatLog = await waitFor('Ben\'s opened #chat-log to show the message',
      async () => { const t = await visibleText(ben, '#chat-log'); return t?.includes(text) ? t : null; }, { deadline });
    // The log's entry (or group of entries) holding the message names its sender.
    const entry = await ben.evaluate((t) => [...document.querySelector('#chat-log').children]
      .find((e) => e.textContent.includes(t))?.innerText ?? null, text);
    if (!entry?.includes('Ann')) throw new Error(`Ben's chat log does not name the sender Ann: ${JSON.stringify(entry ?? chatLog)}`);
    await waitFor('Ben\'s unread badge to go away once his chat is open',
      async () => { const b = await visibleText(ben, '#chat-unread'); return b === null || b === '0'; }, { deadline });
    await ann.press('#chat-input', 'Escape', left(deadline));
    await waitFor('Escape to close Ann\'s chat panel', async () => !(await ann.isVisible('#chat-panel')), { deadline });
    await ben.click('#chat-button', left(deadline));
    await waitFor('a second click to close Ben\'s chat panel', async () => !(await ben.isVisible('#chat-panel')), { deadline });
    return { delivered_ms: delivered, entry: entry.replace(/\s+/g, ' ') };
  }, {
    restore: async (deadline) => {
      for (const page of pages) {
        if (await page.isVisible('#chat-panel')) await page.click('#chat-button', left(deadline));
      }
    },
  });

  // --- stats overlay ---
  await step('stats', 20000, async (deadline) => {
    await ann.click('#stats-button', left(deadline));
    let last = null;
    const shown = await waitFor('Ann\'s remote tiles to show stats with their video size and a bitrate', async () => {
      last = await ann.evaluate((sel) => [...document.querySelectorAll(sel)].map((tile) => {
        const overlay = tile.querySelector('.tile-stats');
        const video = tile.querySelector('video');
        return {
          participantId: tile.dataset.participantId,
          visible: Boolean(overlay?.checkVisibility()),
          text: overlay?.innerText.replace(/\s+/g, ' ').trim() ?? null,
          size: video ? [video.videoWidth, video.videoHeight] : null,
        };
      }), REMOTE_CAMERAS);
      const good = last.length === 2 && last.every((t) => t.visible && t.size
        && new RegExp(`\\b${t.size[0]}\\s*[x×]\\s*${t.size[1]}\\b`).test(t.text) && /\b[1-9]\d*\s*kbps/.test(t.text));
      return good ? last : null;
    }, { deadline, intervalMs: 500, describe: () => JSON.stringify(last) });
    await ann.click('#stats-button', left(deadline));
    await waitFor('a second click to hide the stats', async () => !(await ann.evaluate((sel) =>
      [...document.querySelectorAll(sel)].some((o) => o.checkVisibility()), `${REMOTE_CAMERAS} .tile-stats`)), { deadline });
    return { overlays: shown.map((t) => t.text.slice(0, 80)) };
  }, {
    restore: async (deadline) => {
      if ((await ann.getAttribute('#stats-button', 'aria-pressed')) === 'true') await ann.click('#stats-button', left(deadline));
    },
  });

  // --- resolution follows the tile size ---
  await step('resolution', options.publisherTimeoutMs * 2 + options.switchTimeoutMs * 3 + 10000, async (deadline) => {
    const describePublisher = async () => {
      const available = await ben.evaluate(async () => {
        const stats = [...(await window.roomcast.pc().getStats()).values()];
        const pair = stats.find((r) => r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded');
        return pair?.availableOutgoingBitrate ?? null;
      }).catch(() => null);
      return ` with availableOutgoingBitrate ${available}; Ben's last publisher_layers `
        + `${JSON.stringify(messages('Ben', 'publisher_layers').slice(-2).map((m) => m.replace(/^\w+ /, '')))}`;
    };
    const widths = await followsTileSize({
      viewer: ann, publisher: ben, publisherId: benId, large: DESKTOP, small: TINY, deadline,
      switchTimeoutMs: options.switchTimeoutMs, publisherTimeoutMs: options.publisherTimeoutMs,
      describePublisher,
    });
    // What Ben sends and Chrome's send estimate, also when the step passes.
    return {
      ...widths, remotes: (await readTiles(ann, REMOTE_CAMERAS)).length,
      publisher: await describePublisher(),
    };
  }, { restore: () => ann.setViewportSize(DESKTOP) });

  // --- mute ---
  await step('mute', 30000, async (deadline) => {
    const shown = async (page, muted) => {
      const [tile] = await readTiles(page, cameraTileOf(benId));
      return tile && tile.classes.includes('audio-muted') === muted && tile.mutedIconVisible === muted;
    };
    const expect = async (muted, how) => {
      const started = Date.now();
      const times = {};
      for (const [name, page] of [['Ann', ann], ['Cleo', cleo]]) {
        let tile = null;
        await waitFor(`${name} to show Ben ${muted ? 'muted' : 'unmuted'} after ${how}`, async () => {
          [tile] = await readTiles(page, cameraTileOf(benId));
          return shown(page, muted);
        }, {
          deadline,
          describe: () => `Ben's tile: ${JSON.stringify(tile)}; Ben's mute messages: ${JSON.stringify(messages('Ben', 'mute'))}; `
            + `${name}'s track_muted messages: ${JSON.stringify(messages(name, 'track_muted'))}; `
            + `Ben's published messages: ${JSON.stringify(messages('Ben', 'published'))}`,
        });
        const s = await readState(page);
        const entry = s.remote.find((r) => r.participantId === benId && r.source === 'camera');
        if (entry?.audioMuted !== muted) throw new Error(`${name}'s state() has Ben audioMuted=${entry?.audioMuted}`);
        times[name] = Date.now() - started;
      }
      const s = await readState(ben);
      if (s.micOn !== !muted) throw new Error(`Ben's state().micOn is ${s.micOn} after ${how}`);
      // At Ben's end too: a muted microphone captures nothing (its track disabled or ended).
      const hot = await ben.evaluate(() => (window.roomcast.meeting().localStream?.getAudioTracks() ?? [])
        .filter((t) => t.readyState === 'live' && t.enabled).length);
      if (muted ? hot !== 0 : hot === 0) {
        throw new Error(`after ${how} Ben has ${hot} enabled live microphone tracks`);
      }
      return times;
    };
    const pressedBefore = await ben.getAttribute('#mic-button', 'aria-pressed', left(deadline));
    await ben.click('#mic-button', left(deadline));
    const clickMute = await expect(true, 'a click on #mic-button');
    const pressedMuted = await ben.getAttribute('#mic-button', 'aria-pressed', left(deadline));
    if (pressedMuted === pressedBefore) {
      throw new Error(`#mic-button's aria-pressed stayed ${JSON.stringify(pressedBefore)} when muted`);
    }
    // Muted means silent: the server drops a muted track's packets, so the audio bytes Ann
    // receives from Ben stand still (for 1.2 s, within 4 s of the muted tile), and rise again
    // after the unmute.
    if ((await audioBytesFrom(ann, benId)) === null) throw new Error('Ann has no audio track of Ben\'s');
    const silence = await waitForStill('the audio bytes Ann receives from muted Ben',
      () => audioBytesFrom(ann, benId), { stillMs: 1200, withinMs: 4000 });
    const mutedTo = await audioBytesFrom(ann, benId);
    await ben.click('#mic-button', left(deadline));
    const clickUnmute = await expect(false, 'a second click on #mic-button');
    let resumed = null;
    await waitFor('Ben\'s audio to reach Ann again after the unmute', async () => {
      resumed = await audioBytesFrom(ann, benId);
      return resumed > mutedTo;
    }, { deadline, describe: () => `bytes ${mutedTo} -> ${resumed}` });
    await ben.evaluate(() => document.activeElement?.blur());
    await ben.keyboard.press('Control+KeyD');
    const keyMute = await expect(true, 'Ctrl+D');
    await ben.keyboard.press('Control+KeyD');
    const keyUnmute = await expect(false, 'a second Ctrl+D');
    return {
      click_mute_ms: clickMute, click_unmute_ms: clickUnmute, key_mute_ms: keyMute, key_unmute_ms: keyUnmute,
      audio_bytes_after_muted: silence.tail, audio_stopped_after_ms: silence.settledMs,
    };
  }, { restore: turnBackOn('micOn', '#mic-button') });

  // --- camera off and on ---
  await step('camera', 30000, async (deadline) => {
    const started = Date.now();
    await ben.click('#camera-button', left(deadline));
    const off = {};
    for (const [name, page] of [['Ann', ann], ['Cleo', cleo]]) {
      let tile = null;
      await waitFor(`${name} to show Ben's camera off (class video-muted)`, async () => {
        [tile] = await readTiles(page, cameraTileOf(benId));
        return tile?.visible && tile.classes.includes('video-muted');
      }, {
        deadline,
        describe: () => `Ben's tile: ${JSON.stringify(tile)}; Ben's mute messages: ${JSON.stringify(messages('Ben', 'mute'))}; `
          + `Ben's published messages: ${JSON.stringify(messages('Ben', 'published'))}`,
      });
      off[name] = Date.now() - started;
    }
    // Off means no picture: the frames Ann's tile of Ben shows stand still (for 1 s, within
    // 4 s of the tile showing the camera off).
    const framesOf = async () => (await readTiles(ann, cameraTileOf(benId)))[0]?.video?.frames ?? 0;
    const still = await waitForStill('the frames Ann\'s tile shows of Ben with his camera off', framesOf,
      { stillMs: 1000, withinMs: 4000 });
    const own = await readState(ben);
    if (own.cameraOn !== false) throw new Error(`Ben's state().cameraOn is ${own.cameraOn} after turning it off`);
    const live = await ben.evaluate(() => (window.roomcast.meeting().localStream?.getVideoTracks() ?? [])
      .filter((t) => t.readyState === 'live').length);
    if (live) throw new Error(`Ben's camera is still capturing (${live} live video tracks): the light stays on`);
    const restarted = Date.now();
    await ben.click('#camera-button', left(deadline));
    for (const [name, page, others] of [['Ann', ann, [benId, cleoId]], ['Cleo', cleo, [annId, benId]]]) {
      await waitForPlayingTiles(page, REMOTE_CAMERAS, others, { deadline, what: `${name} to play Ben's camera again` });
      const [tile] = await readTiles(page, cameraTileOf(benId));
      if (tile.classes.includes('video-muted')) throw new Error(`${name} still shows Ben's camera off`);
    }
    return { off_shown_ms: off, frames_after_off: still.tail, frames_stopped_after_ms: still.settledMs, back_ms: Date.now() - restarted };
  }, { restore: turnBackOn('cameraOn', '#camera-button') });

  // --- screen share ---
  await step('screen', 40000, async (deadline) => {
    const screenTile = `.tile[data-source="screen"]:not(.local)`;
    await cleo.click('#screen-button', left(deadline));
    const started = Date.now();
    let s = null;
    await waitFor('Cleo to be sharing', async () => { s = await readState(cleo); return s?.screenSharing; },
      { deadline, describe: () => `errors: ${JSON.stringify(s?.errors)}, banner: ${JSON.stringify(s?.banner)}` });
    const shown = {};
    for (const [name, page] of [['Ann', ann], ['Ben', ben]]) {
      const [tile] = await waitForPlayingTiles(page, screenTile, [cleoId], {
        deadline, what: `${name} to show Cleo's screen tile playing`,
      });
      await waitForPlayingTiles(page, REMOTE_CAMERAS, ids.filter((id) => id !== ids[NAMES.indexOf(name)]), {
        deadline, what: `${name} to keep both camera tiles while the screen is shared`,
      });
      const hook = (await readState(page)).remote.filter((r) => r.source === 'screen');
      if (hook.length !== 1 || hook[0].participantId !== cleoId) {
        throw new Error(`${name}'s state().remote screen entries: ${JSON.stringify(hook)}`);
      }
      shown[name] = { ms: Date.now() - started, video: `${tile.video.width}x${tile.video.height}`, tile: `${tile.box.width}x${tile.box.height}` };
    }
    await cleo.click('#screen-button', left(deadline));
    const stopped = Date.now();
    const gone = {};
    for (const [name, page] of [['Ann', ann], ['Ben', ben]]) {
      let last = null;
      await waitFor(`Cleo's screen tile to disappear at ${name}`, async () => {
        last = await readTiles(page, '.tile[data-source="screen"]');
        const hook = (await readState(page)).remote.filter((r) => r.source === 'screen');
        return last.length === 0 && hook.length === 0;
      }, { deadline, describe: () => `screen tiles: ${JSON.stringify(last)}` });
      gone[name] = Date.now() - stopped;
    }
    if ((await readState(cleo)).screenSharing) throw new Error('Cleo\'s state().screenSharing stays true after stopping');
    return { shown, gone_ms: gone };
  });

  // --- leave ---
  await step('leave', 20000, async (deadline) => {
    await cleo.click('#leave-button', left(deadline));
    const started = Date.now();
    await waitFor('Cleo to see #ended-screen', async () => await cleo.isVisible('#ended-screen')
      && !(await cleo.isVisible('#meeting-screen')), { deadline });
    const gone = {};
    for (const [name, page, other] of [['Ann', ann, benId], ['Ben', ben, annId]]) {
      let last = null;
      await waitFor(`Cleo's tile to disappear at ${name}`, async () => {
        last = await readTiles(page, `.tile[data-participant-id="${cleoId}"]`);
        const hook = (await readState(page)).remote.filter((r) => r.participantId === cleoId);
        return last.length === 0 && hook.length === 0;
      }, { deadline, describe: () => `Cleo's tiles: ${JSON.stringify(last)}` });
      gone[name] = Date.now() - started;
      await waitForPlayingTiles(page, REMOTE_CAMERAS, [other], { deadline, what: `${name} to keep playing the other one` });
    }
    const ended = (await visibleText(cleo, '#ended-screen')) ?? '';
    if (!/\bleft\b/i.test(ended)) throw new Error(`Cleo's ended screen does not say she left: ${JSON.stringify(ended)}`);
    await waitForCount(ann, 'Ann', '2', deadline);
    await waitForCount(ben, 'Ben', '2', deadline);
    return { gone_ms: gone, ended_screen: ended.replace(/\s+/g, ' ').slice(0, 120) };
  });

  result.signaling_recorded = Object.fromEntries(Object.entries(signaling).map(([n, m]) => [n, m.length]));
}

async function main() {
  const options = optionsOrExit({
    room: `meeting-${Date.now().toString(36)}`,
    timeoutMs: 40000,
    switchTimeoutMs: 15000,
    publisherTimeoutMs: 40000,
    steps: 'all',
    screenshot: path.join(REPO, 'target', 'screenshots', 'screenshot.png'),
    phoneScreenshot: path.join(REPO, 'target', 'screenshots', 'screenshot-phone.png'),
  }, USAGE);
  options.screenshot = path.resolve(options.screenshot);
  options.phoneScreenshot = path.resolve(options.phoneScreenshot);
  await runStepScript({
    options,
    run,
    result: { ok: false, room: options.room, participants: {}, steps: {} },
    expectedSteps: options.steps === 'all' ? 9 : new Set(['join', ...options.steps.split(',')]).size,
  });
}

main().catch((error) => {
  process.stdout.write(`${JSON.stringify({ ok: false, error: String(error?.stack ?? error) })}\n`);
  process.exit(1);
});
