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

/** Launches headless Chromium; close it with `browser.close()`. */
export function launch({ extraArgs = [] } = {}) {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/**
 * Opens `url` in a fresh context (its own camera permission, storage, …), waiting at most
 * `timeoutMs` for it to load. `onConsoleError(text)` gets the page's console errors and
 * uncaught exceptions.
 */
export async function openPage(browser, url, { viewport = { width: 1280, height: 800 }, onConsoleError, timeoutMs = 30000 } = {}) {
  const context = await browser.newContext({ viewport, permissions: ['camera', 'microphone'] });
  const page = await context.newPage();
  if (onConsoleError) {
    page.on('console', (message) => {
      if (message.type() === 'error') onConsoleError(message.text());
    });
    page.on('pageerror', (error) => onConsoleError(`uncaught: ${error.stack ?? error.message}`));
  }
  await page.goto(url, { waitUntil: 'load', timeout: Math.max(1, timeoutMs) });
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
