#!/usr/bin/env node
// The web client's edges, against a running server, checking what the user sees. One headless
// Chromium launched WITHOUT `--use-fake-ui-for-media-stream` (fake devices still on): a
// context granted camera and microphone gets the fake devices, a context without the
// permission gets a real `NotAllowedError` (headless denies instead of prompting). Steps:
//
//   audience   A host opens `/?room=R&role=host`, types its name, ticks #join-webinar (when the
//              client offers it) and joins: a webinar; its own camera plays. A viewer joins
//              with `&role=audience` in a context WITHOUT the camera and microphone
//              permission, its `navigator.mediaDevices.getUserMedia` wrapped (init script) to
//              count calls: the viewer is in the meeting as `audience`, shows the host's camera
//              tile playing (videoWidth > 0, currentTime and shown frames advancing), no
//              camera/microphone complaint in #banner or #join-error, no local video tile, and
//              getUserMedia was never called; the host's #audience-count shows 1.
//   denied     A context without the permission opens the join screen (`/?room=R`, no name):
//              #join-error shows a message about the camera/microphone being blocked/denied.
//              Another such context follows a deep link (`&name=Dee`): #banner shows it.
//   notfound   A context whose getUserMedia is stubbed to reject with
//              DOMException('…', 'NotFoundError') opens the join screen: #join-error says no
//              camera/microphone was found, and not that access was blocked.
//   kick       A host and Eve meet (deep links); the host opens #participants-button, clicks
//              Eve's row's `[data-action=kick]` and confirms (the same button turned "Confirm
//              remove" is clicked again; a window.confirm would be accepted, an in-page
//              dialog's confirming button clicked): Eve sees #ended-screen saying a host
//              removed her (state().ended.reason `kicked`); her row leaves the host's list.
//   locked     The host opens #host-button and clicks #lock-button: #locked-indicator shows.
//              Fay then follows a deep link: she sees (in #ended-screen or #banner) that the
//              room is locked.
//   resume     Gus and Hal meet; Gus's WebSocket is closed under the client (as a network
//              drop would): his #connection-state goes `reconnecting`, then `connected` on a
//              new WebSocket; he is the same participant (resumed, not re-joined), both play
//              each other's camera afterwards, and Gus's tile never left Hal's screen. A chat
//              message he typed while the network was still down reaches Hal once he is back.
//
// A failing step is recorded and the next ones still run.
//
// stdout: one JSON line `{"ok":bool,"steps":{"audience":{"ok":…,"ms":…,…},…}}` (exit 0 when
// every step passed, else 1); per step `error` says what failed. stderr: progress and the
// pages' console errors.

import {
  runStep, runStepScript, openPage, readState, readTiles, waitForPlayingTiles, visibleText, waitFor,
  optionsOrExit, meetingUrl,
} from './lib.mjs';

const USAGE = `usage: node app-edge.mjs --url http://localhost:PORT [--room-prefix edge] [--timeout-ms 30000]`;
const REMOTE_CAMERAS = '.tile[data-source="camera"]:not(.local)';
/** A message about access to the camera/microphone being refused. */
const BLOCKED = /block|denied|deny|not allowed|permission/i;
const DEVICE = /camera|microphone|mic\b|webcam/i;
/** A message about there being no camera/microphone. */
const NOT_FOUND = /\bno (camera|microphone|mic|webcam|device|media device)|not found|could ?n[o'’]?t find|can(no|'|’)?t find|(camera|microphone|device)s? (is |are |was |were )?(missing|unavailable|not available|not connected)/i;

/** Playwright options bounding an action by `deadline` (epoch ms). */
const left = (deadline) => ({ timeout: Math.max(1, deadline - Date.now()) });

function log(message) {
  process.stderr.write(`[edge ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
}

/** Init script: counts getUserMedia calls in `window.__gumCalls`, then calls the real one. */
function countGetUserMedia() {
  window.__gumCalls = 0;
  const md = navigator.mediaDevices;
  if (!md) return;
  const original = md.getUserMedia.bind(md);
  md.getUserMedia = (constraints) => {
    window.__gumCalls += 1;
    return original(constraints);
  };
}

/**
 * Init script: keeps every WebSocket the page opens in `window.__sockets`, to drop one, and
 * fails new ones while `window.__blockSockets` is set (the network is still down).
 */
function keepSockets() {
  window.__sockets = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(url, ...rest) {
      // While `__blockSockets` is set, new connections go to a closed port and fail at once.
      super(window.__blockSockets ? 'ws://127.0.0.1:9/' : url, ...rest);
      window.__sockets.push(this);
    }
  };
}

/** Init script: getUserMedia rejects the way Chrome does when there is no such device. */
function noDevices() {
  window.__gumCalls = 0;
  navigator.mediaDevices.getUserMedia = async () => {
    window.__gumCalls += 1;
    throw new DOMException('Requested device not found', 'NotFoundError');
  };
}

/** Waits until `page` is in the meeting; returns its state. Throws early on an ended screen. */
async function waitInMeeting(page, who, deadline) {
  let s = null;
  await waitFor(`${who} to be in the meeting`, async () => {
    s = await readState(page);
    if (s?.screen === 'ended') throw new Error(`${who} got the ended screen: ${JSON.stringify(s.ended)}`);
    return s?.screen === 'meeting' && s.participantId && await page.isVisible('#meeting-screen');
  }, { deadline, describe: () => `state: ${JSON.stringify(s)}` });
  return s;
}

/** The visible text of the first of `selectors` whose text matches `pattern`, else null. */
async function firstVisibleText(page, selectors, pattern) {
  for (const selector of selectors) {
    const text = await visibleText(page, selector, pattern);
    if (text) return { selector, text: text.replace(/\s+/g, ' ') };
  }
  return null;
}

async function run(options, browser, result) {
  const { steps } = result;
  const contexts = [];
  // Pages are taken once their DOM is parsed; whether the `load` event came (it does not
  // while a <video> waits for a stream's metadata, e.g. a preview of an empty MediaStream)
  // is reported (`join_page_loaded`), not required: the user sees the page either way.
  const open = async (who, params, { permissions, initScript, deadline } = {}) => {
    const page = await openPage(browser, meetingUrl(options.url, params), {
      onConsoleError: (text) => process.stderr.write(`[${who}] ${text}\n`),
      timeoutMs: deadline - Date.now(),
      permissions,
      initScript,
      waitUntil: 'domcontentloaded',
    });
    contexts.push(page.context());
    return page;
  };
  const loaded = (page) => page.evaluate(() => document.readyState === 'complete');
  const closeAll = async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close().catch(() => {})));
  };

  async function step(name, budgetMs, body, { close = true } = {}) {
    const ok = await runStep(steps, name, budgetMs, body, log);
    if (close) await closeAll();
    return ok;
  }

  // --- 7: an audience member never captures, and watches the host ---
  await step('audience', options.timeoutMs, async (deadline) => {
    const room = `${options.roomPrefix}-webinar`;
    // The host creates the room as a webinar through the join form (`/?room=W&role=host`
    // fills the room and role; the name is typed) with #join-webinar checked when the client
    // offers it (not in the DOM contract); else it is a plain room, where `role=audience`
    // still makes the viewer audience.
    const host = await open('Host', { room, role: 'host' }, { deadline });
    await waitFor('the host\'s join screen', () => host.isVisible('#join-form'), { deadline });
    await host.fill('#join-name', 'Host', left(deadline));
    const webinar = await host.isVisible('#join-webinar');
    if (webinar) await host.check('#join-webinar', left(deadline));
    await host.click('#join-button', left(deadline));
    const hostState = await waitInMeeting(host, 'Host', deadline);
    if (hostState.role !== 'host') throw new Error(`the host's state().role is ${hostState.role}`);
    await waitForPlayingTiles(host, '.tile.local', [hostState.participantId], {
      deadline, what: 'the host to show its own camera playing',
    });
    const viewer = await open('Viewer', { room, name: 'Viewer', role: 'audience' }, {
      permissions: [], initScript: countGetUserMedia, deadline,
    });
    const viewerState = await waitInMeeting(viewer, 'Viewer', deadline);
    if (viewerState.role !== 'audience') throw new Error(`the viewer's state().role is ${viewerState.role}`);
    const [tile] = await waitForPlayingTiles(viewer, REMOTE_CAMERAS, [hostState.participantId], {
      deadline, what: 'the viewer to show the host\'s camera tile playing',
    });
    const hook = (await readState(viewer)).remote.find((r) => r.participantId === hostState.participantId);
    if (!(hook?.videoWidth > 0)) throw new Error(`the viewer's state().remote lacks the host's video: ${JSON.stringify(hook)}`);
    const calls = await viewer.evaluate(() => window.__gumCalls);
    if (calls !== 0) throw new Error(`the viewer called getUserMedia ${calls} times`);
    const complaint = await firstVisibleText(viewer, ['#banner', '#join-error'], DEVICE);
    if (complaint) throw new Error(`the viewer is told about devices: ${complaint.selector} ${JSON.stringify(complaint.text)}`);
    const local = (await readTiles(viewer, '.tile.local')).filter((t) => t.visible && t.video?.width > 0);
    if (local.length) throw new Error(`the viewer shows a local video tile: ${JSON.stringify(local)}`);
    let count = null;
    if (webinar) {
      await waitFor('the host to show an audience of 1 (#audience-count)', async () => {
        count = await visibleText(host, '#audience-count');
        return count && /\b1\b/.test(count);
      }, { deadline, describe: () => `#audience-count: ${JSON.stringify(count)}` });
      if (!(await readState(viewer)).remote.every((r) => r.participantId === hostState.participantId)) {
        throw new Error('the viewer shows someone besides the host');
      }
    }
    return {
      webinar,
      get_user_media_calls: calls,
      video: `${tile.video.width}x${tile.video.height}`,
      host_audience_count: count,
    };
  });

  // --- 8: a denied camera ---
  await step('denied', options.timeoutMs, async (deadline) => {
    const room = `${options.roomPrefix}-denied`;
    const page = await open('Denied', { room }, { permissions: [], initScript: countGetUserMedia, deadline });
    await waitFor('the join screen', () => page.isVisible('#join-screen'), { deadline });
    let seen = null;
    const joinError = await waitFor('#join-error to say camera/microphone access is blocked', async () => {
      seen = await visibleText(page, '#join-error');
      return seen && BLOCKED.test(seen) && DEVICE.test(seen) ? seen : null;
    }, { deadline, describe: () => `#join-error: ${JSON.stringify(seen)}` });
    const calls = await page.evaluate(() => window.__gumCalls);

    const deep = await open('DeniedDeepLink', { room, name: 'Dee' }, { permissions: [], deadline });
    let banner = null;
    await waitFor('#banner to say camera/microphone access is blocked after a deep-link join', async () => {
      banner = await visibleText(deep, '#banner');
      return banner && BLOCKED.test(banner) && DEVICE.test(banner);
    }, { deadline, describe: () => `#banner: ${JSON.stringify(banner)}` });
    const s = await readState(deep);
    return {
      join_error: joinError.replace(/\s+/g, ' '),
      join_page_loaded: await loaded(page),
      get_user_media_calls: calls,
      banner: banner.replace(/\s+/g, ' '),
      deep_link_screen: s?.screen ?? null,
    };
  });

  // --- 8b: no camera ---
  await step('notfound', options.timeoutMs, async (deadline) => {
    const room = `${options.roomPrefix}-nodevice`;
    const page = await open('NoDevice', { room }, { initScript: noDevices, deadline });
    await waitFor('the join screen', () => page.isVisible('#join-screen'), { deadline });
    let seen = null;
    const joinError = await waitFor('#join-error to say no camera/microphone was found', async () => {
      seen = await visibleText(page, '#join-error');
      return seen && NOT_FOUND.test(seen) ? seen : null;
    }, { deadline, describe: () => `#join-error: ${JSON.stringify(seen)}` });
    if (BLOCKED.test(joinError)) throw new Error(`a missing device is reported as blocked: ${JSON.stringify(joinError)}`);
    return { join_error: joinError.replace(/\s+/g, ' '), join_page_loaded: await loaded(page) };
  });

  // --- 9: kicked, then locked ---
  const room = `${options.roomPrefix}-moderated`;
  let host = null;
  await step('kick', options.timeoutMs, async (deadline) => {
    host = await open('Host2', { room, name: 'Host', role: 'host' }, { deadline });
    const hostState = await waitInMeeting(host, 'Host', deadline);
    if (hostState.role !== 'host') throw new Error(`the host's state().role is ${hostState.role}`);
    const eve = await open('Eve', { room, name: 'Eve' }, { deadline });
    const eveId = (await waitInMeeting(eve, 'Eve', deadline)).participantId;
    host.on('dialog', (dialog) => dialog.accept().catch(() => {}));
    await host.click('#participants-button', left(deadline));
    const row = `#participants-panel .participant-row[data-participant-id="${eveId}"]`;
    await waitFor('Eve\'s row in the host\'s participants panel', () => host.isVisible(row), { deadline });
    const rowText = (await host.innerText(row, left(deadline))).replace(/\s+/g, ' ');
    if (!rowText.includes('Eve')) throw new Error(`Eve's row reads ${JSON.stringify(rowText)}`);
    await host.click(`${row} [data-action="kick"]`, left(deadline));
    const kickedAt = Date.now();
    let ended = null;
    let confirmed = 'window.confirm or none';
    await waitFor('Eve to see #ended-screen saying she was removed by the host', async () => {
      ended = await visibleText(eve, '#ended-screen');
      if (ended) return /removed|kicked/i.test(ended) && /host/i.test(ended);
      // Confirming in the page: the kick button turned into a "confirm" one, or a dialog.
      const again = host.locator(`${row} [data-action="kick"]`).filter({ hasText: /confirm|sure|really/i });
      const dialog = host.locator('dialog[open] button, [role="dialog"] button, [role="alertdialog"] button')
        .filter({ hasText: /kick|remove|confirm|yes|ok/i });
      for (const button of [again.first(), dialog.first()]) {
        if (confirmed === 'window.confirm or none' && await button.isVisible().catch(() => false)) {
          confirmed = `in-page: ${(await button.innerText()).trim()}`;
          await button.click({ timeout: 2000 }).catch(() => {});
        }
      }
      return false;
    }, { deadline, describe: () => `Eve's #ended-screen: ${JSON.stringify(ended)}` });
    const eveState = await readState(eve);
    if (eveState.ended?.reason !== 'kicked') throw new Error(`Eve's state().ended: ${JSON.stringify(eveState.ended)}`);
    await waitFor('Eve\'s row to leave the host\'s list', async () => !(await host.$(row)), { deadline });
    await eve.context().close();
    return { ended_screen: ended.replace(/\s+/g, ' ').slice(0, 160), confirm: confirmed, ms_to_kicked: Date.now() - kickedAt };
  }, { close: false });
  await step('locked', options.timeoutMs, async (deadline) => {
    if (!host) throw new Error('no host page (the kick step failed before it joined)');
    if (await host.isVisible('#participants-panel')) await host.keyboard.press('Escape');
    await host.click('#host-button', left(deadline));
    await waitFor('#lock-button in the host menu', () => host.isVisible('#lock-button'), { deadline });
    await host.click('#lock-button', left(deadline));
    await waitFor('the host to show #locked-indicator', () => host.isVisible('#locked-indicator'), { deadline });
    if (!(await readState(host)).roomLocked) throw new Error('the host\'s state().roomLocked is not true');
    const fay = await open('Fay', { room, name: 'Fay' }, { deadline });
    let shown = null;
    await waitFor('Fay to be told the room is locked', async () => {
      shown = await firstVisibleText(fay, ['#ended-screen', '#banner', '#join-error'], /locked/i);
      return shown;
    }, {
      deadline,
      describe: () => `Fay's screens: ${JSON.stringify(shown)}`,
    });
    const s = await readState(fay);
    if (s.screen === 'meeting') throw new Error(`Fay is in the meeting screen of a locked room: ${JSON.stringify(s)}`);
    return { fay_sees: shown, fay_screen: s.screen, fay_ended: s.ended };
  });
  await step('resume', options.timeoutMs, async (deadline) => {
    const resumeRoom = `${options.roomPrefix}-resume`;
    const gus = await open('Gus', { room: resumeRoom, name: 'Gus' }, { deadline, initScript: keepSockets });
    const gusId = (await waitInMeeting(gus, 'Gus', deadline)).participantId;
    const hal = await open('Hal', { room: resumeRoom, name: 'Hal' }, { deadline });
    const halId = (await waitInMeeting(hal, 'Hal', deadline)).participantId;
    await waitForPlayingTiles(gus, REMOTE_CAMERAS, [halId], { deadline, what: 'Gus to play Hal' });
    await waitForPlayingTiles(hal, REMOTE_CAMERAS, [gusId], { deadline, what: 'Hal to play Gus' });
    // Hal must never lose Gus's tile, and Gus's #connection-state is watched for every state.
    await hal.evaluate((id) => {
      window.__gusTileGone = false;
      new MutationObserver(() => {
        if (!document.querySelector(`.tile[data-participant-id="${id}"]`)) window.__gusTileGone = true;
      }).observe(document.body, { childList: true, subtree: true });
    }, gusId);
    await gus.evaluate(() => {
      const label = document.getElementById('connection-state');
      window.__states = [label.dataset.state];
      new MutationObserver(() => window.__states.push(label.dataset.state))
        .observe(label, { attributes: true, attributeFilter: ['data-state'] });
    });
    // The network drops Gus's WebSocket (closed under the client, not by it) and stays down
    // while he types a chat message, which must reach Hal once he is back.
    const droppedAt = Date.now();
    await gus.evaluate(() => {
      window.__blockSockets = true;
      window.__sockets.at(-1).close(4000, 'dropped by the test');
    });
    await waitFor('Gus to show reconnecting', () => gus.evaluate(() => window.__states.includes('reconnecting')), { deadline });
    const text = `Typed while offline ${Date.now().toString(36)}`;
    await gus.click('#chat-button', left(deadline));
    await gus.fill('#chat-input', text, left(deadline));
    await gus.press('#chat-input', 'Enter', left(deadline));
    // At least one reconnect attempt fails before the network comes back.
    await waitFor('a failed reconnect attempt', () => gus.evaluate(() => window.__sockets.length >= 2), { deadline });
    const failedAttempts = await gus.evaluate(() => window.__sockets.length - 1);
    await gus.evaluate(() => { window.__blockSockets = false; });
    let s = null;
    await waitFor('Gus to show reconnecting, then connected again on a new WebSocket', async () => {
      s = await readState(gus);
      const states = await gus.evaluate(() => window.__states);
      const sockets = await gus.evaluate(() => window.__sockets.length);
      return states.includes('reconnecting') && states.at(-1) === 'connected' && sockets >= 2
        && s.signalingState === 'open';
    }, { deadline, describe: () => `state: ${JSON.stringify(s)}` });
    const reconnectedMs = Date.now() - droppedAt;
    // Resumed, not re-joined: the same participant, still playing, and Hal saw no leave.
    if (s.participantId !== gusId) throw new Error(`Gus came back as ${s.participantId}, not ${gusId}: re-joined, not resumed`);
    await waitForPlayingTiles(gus, REMOTE_CAMERAS, [halId], { deadline, what: 'Gus to play Hal after the resume' });
    await waitForPlayingTiles(hal, REMOTE_CAMERAS, [gusId], { deadline, what: 'Hal to play Gus after the resume' });
    if (await hal.evaluate(() => window.__gusTileGone)) throw new Error('Gus\'s tile disappeared at Hal during the resume');
    await waitFor('Gus\'s offline chat message in Hal\'s #chat-log', () => hal.evaluate(
      (t) => document.getElementById('chat-log').textContent.includes(t),
      text,
    ), { deadline });
    return {
      states: await gus.evaluate(() => window.__states),
      reconnected_ms: reconnectedMs,
      failed_attempts: failedAttempts,
    };
  });
}

async function main() {
  const options = optionsOrExit({ roomPrefix: `edge-${Date.now().toString(36)}`, timeoutMs: 30000 }, USAGE);
  await runStepScript({
    options,
    launchOptions: { fakeUi: false },
    run,
    result: { ok: false, steps: {} },
    expectedSteps: 6,
  });
}

main().catch((error) => {
  process.stdout.write(`${JSON.stringify({ ok: false, error: String(error?.stack ?? error) })}\n`);
  process.exit(1);
});
