// Shared helpers for the browser checks: launch Debian's Chromium headless with fake
// camera/microphone, open pages, read the client's test hook and WebRTC stats.

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/**
 * Launches headless Chromium; close it with `browser.close()`. `fakeUi: false` leaves out
 * `--use-fake-ui-for-media-stream`: then a context without the camera/microphone permission
 * gets `NotAllowedError` from `getUserMedia` (headless denies instead of prompting), while a
 * context granted them still gets the fake devices.
 */
export function launch({ extraArgs = [], fakeUi = true } = {}) {
  const args = CHROMIUM_ARGS.filter((a) => fakeUi || a !== '--use-fake-ui-for-media-stream');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...args, ...extraArgs] });
}

/**
 * Opens `url` in a fresh context (its own camera permission, storage, …), waiting at most
 * `timeoutMs` for it to load. `onConsoleError(text)` gets the page's console errors and
 * uncaught exceptions. `permissions` (default camera and microphone) are granted to the
 * context; `initScript` (a function or `{ content }`) runs in the page before its own scripts;
 * `waitUntil` is Playwright's (`load`, `domcontentloaded`, …); `beforeGoto(page)` runs before
 * the navigation (e.g. to watch the page's WebSocket with `recordSignaling`).
 */
export async function openPage(browser, url, {
  viewport = { width: 1280, height: 800 },
  onConsoleError,
  timeoutMs = 30000,
  permissions = ['camera', 'microphone'],
  initScript,
  waitUntil = 'load',
  beforeGoto,
} = {}) {
  const context = await browser.newContext({ viewport, permissions });
  const page = await context.newPage();
  if (initScript) await page.addInitScript(initScript);
  if (onConsoleError) {
    page.on('console', (message) => {
      if (message.type() === 'error') onConsoleError(message.text());
    });
    page.on('pageerror', (error) => onConsoleError(`uncaught: ${error.stack ?? error.message}`));
  }
  if (beforeGoto) await beforeGoto(page);
  await page.goto(url, { waitUntil, timeout: Math.max(1, timeoutMs) });
  return page;
}

/** The page's `window.roomcast.state()`, or null before the client has loaded. */
export function readState(page) {
  return page.evaluate(() => window.roomcast?.state() ?? null);
}

/**
 * Sums the PeerConnection's RTP stats per direction and kind:
 * `{ inbound: { audio, video }, outbound: { audio, video } }`, each with `bytes`, `packets`,
 * `frames` (video: decoded inbound, encoded outbound), `frameWidth`, `frameHeight` and
 * `count` (how many RTP streams were summed). With `mids`, inbound stats count only those
 * receivers (a remote participant's `tracks[].mid` in `readState`).
 */
export function readRtpStats(page, { mids } = {}) {
  return page.evaluate(async (wanted) => {
    const pc = window.roomcast?.pc();
    if (!pc) return null;
    const empty = () => ({ bytes: 0, packets: 0, frames: 0, frameWidth: 0, frameHeight: 0, count: 0 });
    const result = {
      inbound: { audio: empty(), video: empty() },
      outbound: { audio: empty(), video: empty() },
    };
    const midOfTrack = new Map(pc.getTransceivers().map((t) => [t.receiver.track.id, t.mid]));
    for (const report of (await pc.getStats()).values()) {
      const inbound = report.type === 'inbound-rtp';
      if (!inbound && report.type !== 'outbound-rtp') continue;
      if (inbound && wanted && !wanted.includes(report.mid ?? midOfTrack.get(report.trackIdentifier))) continue;
      const bucket = result[inbound ? 'inbound' : 'outbound'][report.kind];
      if (!bucket) continue;
      bucket.count += 1;
      bucket.bytes += (inbound ? report.bytesReceived : report.bytesSent) ?? 0;
      bucket.packets += (inbound ? report.packetsReceived : report.packetsSent) ?? 0;
      bucket.frames += (inbound ? report.framesDecoded : report.framesEncoded) ?? 0;
      bucket.frameWidth = Math.max(bucket.frameWidth, report.frameWidth ?? 0);
      bucket.frameHeight = Math.max(bucket.frameHeight, report.frameHeight ?? 0);
    }
    return result;
  }, mids ?? null);
}

/**
 * Calls `probe()` every `intervalMs` until it returns a truthy value (returned) or
 * `deadline` (epoch ms) passes (throws `what` plus the last value seen by `describe`).
 */
export async function waitFor(what, probe, { deadline, intervalMs = 250, describe = () => '' }) {
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() >= deadline) {
      const detail = describe();
      throw new Error(`timed out waiting for ${what}${detail ? ` (${detail})` : ''}`);
    }
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
}

/** The first line of an error's message, for one-line JSON results (the rest goes to stderr). */
export function summarize(error) {
  const text = String(error?.message ?? error);
  const [first, ...rest] = text.split('\n');
  if (rest.length) process.stderr.write(`${text}\n`);
  return first;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `--name value` command-line options, with defaults; `--help` lists them. */
export function parseArgs(argv, defaults, usage) {
  const options = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match) throw new Error(`unexpected argument ${arg}\n${usage}`);
    const key = match[1].replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in defaults)) throw new Error(`unknown option --${match[1]}\n${usage}`);
    const value = match[2] ?? argv[++i];
    if (value === undefined) throw new Error(`option --${match[1]} needs a value`);
    options[key] = typeof defaults[key] === 'number' ? Number(value) : value;
    if (Number.isNaN(options[key])) throw new Error(`option --${match[1]} needs a number`);
  }
  return options;
}

/** `url` + `/?room=…&name=…` (+ more query parameters). */
export function meetingUrl(base, params) {
  const url = new URL(base);
  url.pathname = '/';
  url.search = new URLSearchParams(params).toString();
  return url.toString();
}

/**
 * What the user sees of the tiles matching `selector` (default every `.tile`): per tile
 * `{ participantId, source, trackId, classes, visible, name, mutedIconVisible, video:
 * { width, height, currentTime, frames, paused, readyState } | null, box: { width, height } }`.
 */
export function readTiles(page, selector = '.tile') {
  return page.evaluate((sel) => [...document.querySelectorAll(sel)].map((tile) => {
    const video = tile.querySelector('video');
    const icon = tile.querySelector('.tile-muted');
    const box = tile.getBoundingClientRect();
    return {
      participantId: tile.dataset.participantId ?? null,
      source: tile.dataset.source ?? null,
      trackId: tile.dataset.trackId ?? null,
      classes: [...tile.classList],
      visible: tile.checkVisibility() && box.width > 0 && box.height > 0,
      name: tile.querySelector('.tile-name')?.textContent.trim() ?? null,
      mutedIconVisible: icon ? icon.checkVisibility() && icon.getBoundingClientRect().width > 0 : false,
      video: video ? {
        width: video.videoWidth,
        height: video.videoHeight,
        currentTime: video.currentTime,
        // Frames actually shown: a MediaStream's currentTime runs on while no frames come.
        // Firefox counts none in getVideoPlaybackQuality for a MediaStream, only in its own
        // mozPaintedFrames.
        frames: video.getVideoPlaybackQuality?.().totalVideoFrames || video.mozPaintedFrames || 0,
        paused: video.paused,
        readyState: video.readyState,
      } : null,
      box: { width: Math.round(box.width), height: Math.round(box.height) },
    };
  }), selector);
}

/**
 * Waits until the visible tiles matching `selector` are exactly one per participant in
 * `expectedIds` and each one's <video> plays: it has a videoWidth, is not paused, and both
 * its currentTime and its count of shown frames (getVideoPlaybackQuality) advanced between
 * two looks. Returns the tiles.
 */
export async function waitForPlayingTiles(page, selector, expectedIds, { deadline, what }) {
  let tiles = null;
  let previous = new Map();
  await waitFor(what ?? `${expectedIds.length} playing tiles (${selector})`, async () => {
    tiles = await readTiles(page, selector);
    const playing = tiles.filter((t) => {
      const before = previous.get(t.participantId);
      return t.visible && t.video && t.video.width > 0 && !t.video.paused && before
        && t.video.currentTime > before.currentTime && t.video.frames > before.frames;
    });
    previous = new Map(tiles.filter((t) => t.video).map((t) => [t.participantId, t.video]));
    return tiles.length === expectedIds.length
      && expectedIds.every((id) => playing.some((t) => t.participantId === id));
  }, { deadline, describe: () => `tiles: ${JSON.stringify(tiles)}` });
  return tiles;
}

/** Whether the element `selector` is visible and its text matches `pattern`: its text, or null. */
export async function visibleText(page, selector, pattern) {
  const element = await page.$(selector);
  if (!element || !(await element.isVisible())) return null;
  const text = (await element.innerText()).trim();
  return !pattern || pattern.test(text) ? text : null;
}

/**
 * The inbound video RTP stats of the receiver with transceiver `mid` (from the test hook's
 * `remote[].tracks[].mid`): `{ frameWidth, frameHeight, framesDecoded, bytesReceived }`, or
 * null when there is none yet.
 */
export function readInboundVideo(page, mid) {
  return page.evaluate(async (wanted) => {
    const pc = window.roomcast?.pc();
    if (!pc) return null;
    const midOfTrack = new Map(pc.getTransceivers().map((t) => [t.receiver.track.id, t.mid]));
    for (const r of (await pc.getStats()).values()) {
      if (r.type !== 'inbound-rtp' || r.kind !== 'video') continue;
      if ((r.mid ?? midOfTrack.get(r.trackIdentifier)) !== wanted) continue;
      return {
        frameWidth: r.frameWidth ?? 0,
        frameHeight: r.frameHeight ?? 0,
        framesDecoded: r.framesDecoded ?? 0,
        bytesReceived: r.bytesReceived ?? 0,
      };
    }
    return null;
  }, mid);
}

/**
 * The page's outbound video RTP streams (its simulcast layers): `[{ rid, frameWidth,
 * frameHeight, framesPerSecond, bytesSent, framesEncoded, keyFramesEncoded, pliCount, active,
 * qualityLimitationReason }]` (a field the browser does not report is null).
 */
export function readOutboundVideo(page) {
  return page.evaluate(async () => {
    const pc = window.roomcast?.pc();
    if (!pc) return [];
    const out = [];
    for (const r of (await pc.getStats()).values()) {
      if (r.type !== 'outbound-rtp' || r.kind !== 'video') continue;
      out.push({
        rid: r.rid ?? null,
        mid: r.mid ?? null,
        frameWidth: r.frameWidth ?? 0,
        frameHeight: r.frameHeight ?? 0,
        framesPerSecond: r.framesPerSecond ?? 0,
        bytesSent: r.bytesSent ?? 0,
        framesEncoded: r.framesEncoded ?? null,
        keyFramesEncoded: r.keyFramesEncoded ?? null,
        pliCount: r.pliCount ?? null,
        active: r.active ?? null,
        qualityLimitationReason: r.qualityLimitationReason ?? null,
      });
    }
    return out;
  });
}

/**
 * Records the protocol messages of `page`'s WebSockets whose `type` is in `types`, both ways,
 * into the returned array as `{ t, dir: 'sent' | 'received', message }`. Attach it before the
 * page opens its WebSocket (`openPage`'s `beforeGoto`).
 */
export function recordSignaling(page, types) {
  const seen = [];
  const wanted = new Set(types);
  const note = (dir) => (frame) => {
    let message;
    try {
      message = JSON.parse(frame.payload);
    } catch {
      return;
    }
    if (wanted.has(message?.type)) seen.push({ t: Date.now(), dir, message });
  };
  page.on('websocket', (ws) => {
    ws.on('framesent', note('sent'));
    ws.on('framereceived', note('received'));
  });
  return seen;
}

/**
 * The end of a step script: launches Chromium (`launchOptions`), runs
 * `run(options, browser, result)` (which fills `result.steps[name] = { ok, ms, error?, … }`),
 * closes the browser and prints `result` as the one JSON line on stdout, `ok` when
 * `expectedSteps` steps ran and all passed. Exits 0 when ok, else 1.
 */
export async function runStepScript({ options, launchOptions, run, result, expectedSteps }) {
  const started = Date.now();
  const browser = await launch(launchOptions);
  try {
    await run(options, browser, result);
    const steps = Object.entries(result.steps);
    result.ok = steps.length === expectedSteps && steps.every(([, s]) => s.ok);
    const failed = steps.filter(([, s]) => !s.ok).map(([n, s]) => `${n}: ${s.error}`);
    if (failed.length) result.error = failed.join(' | ');
  } catch (error) {
    result.ok = false;
    result.error = summarize(error);
  }
  await browser.close().catch(() => {});
  result.total_ms = Date.now() - started;
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(result.ok ? 0 : 1);
}

/**
 * Runs one step of a step script: `body(deadline)` has `budgetMs`; records
 * `steps[name] = { ok: true, ms, ...details }` or `{ ok: false, ms, error }` and logs it
 * with `log`. Returns whether it passed.
 */
export async function runStep(steps, name, budgetMs, body, log) {
  const started = Date.now();
  log(`${name}: start`);
  try {
    const details = await body(started + budgetMs);
    steps[name] = { ok: true, ms: Date.now() - started, ...details };
    log(`${name}: ok in ${steps[name].ms} ms ${JSON.stringify(details ?? {})}`);
  } catch (error) {
    steps[name] = { ok: false, ms: Date.now() - started, error: summarize(error) };
    log(`${name}: FAILED after ${steps[name].ms} ms: ${steps[name].error}`);
  }
  return steps[name].ok;
}

/**
 * A script's options from the command line (see `parseArgs`), `--url` required. On a usage
 * error, prints `{"ok":false,"error":…}` and exits 1.
 */
export function optionsOrExit(defaults, usage) {
  try {
    const options = parseArgs(process.argv.slice(2), { url: '', ...defaults }, usage);
    if (!options.url) throw new Error(`missing --url\n${usage}`);
    return options;
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: error.message })}\n`);
    process.exit(1);
  }
}
