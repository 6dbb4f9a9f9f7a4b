#!/usr/bin/env node
// A browser whose node drains or dies: the web client, behind a load balancer, must follow
// the server's `reconnect` (or its lost connection) to another node and get its meeting
// back by itself.
//
// Joins `--room` as `--name` in headless Chromium (fake camera and microphone) through
// `--url` (the balancer) and waits until the tile of the participant named `--remote-name`
// plays (a video width, frames shown and advancing). Then it says so and waits, without
// touching the page, until the client has joined again under a new participant id and that
// participant's tile (named the same, which rejoins too) plays again, within
// `--back-timeout-ms` (default `--timeout-ms`).
//
// stdout: `{"event":"playing","participant_id":"…"}` once the first tile plays (the caller
// drains the node now), then one result line: `{"ok":true,"participant_id":…,
// "rejoined_ms":…,"media_back_ms":…}` (exit 0), times counted from the first line, or
// `{"ok":false,"error":"…"}` (exit 1). stderr: the page's console errors.

import { launch, openPage, readState, readTiles, waitFor, summarize, parseArgs, meetingUrl } from './lib.mjs';

const USAGE = `usage: node reconnect.mjs --url http://localhost:PORT --room R --remote-name NAME
       [--name Chromium] [--timeout-ms 40000] [--back-timeout-ms MS]`;

function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

/** Waits until the visible tile named `name` plays: its video has a width and both its
 * currentTime and its shown frames advanced between two looks. */
async function waitForPlaying(page, name, deadline, what) {
  let tiles = null;
  let previous = new Map();
  await waitFor(what, async () => {
    tiles = await readTiles(page);
    const playing = tiles.some((t) => {
      const before = previous.get(t.participantId);
      return t.name === name && t.visible && t.video && t.video.width > 0 && !t.video.paused && before
        && t.video.currentTime > before.currentTime && t.video.frames > before.frames;
    });
    previous = new Map(tiles.filter((t) => t.video).map((t) => [t.participantId, t.video]));
    return playing;
  }, { deadline, describe: () => `tiles: ${JSON.stringify(tiles)}` });
}

async function run(options, browser) {
  let deadline = Date.now() + options.timeoutMs;
  const page = await openPage(browser, meetingUrl(options.url, { room: options.room, name: options.name }), {
    onConsoleError: (text) => process.stderr.write(`[page] ${text}\n`),
    timeoutMs: deadline - Date.now(),
  });
  let state = null;
  const describe = () => JSON.stringify(state);
  const first = await waitFor('the join', async () => {
    state = await readState(page);
    if (state?.errors.length) throw new Error(`join refused: ${state.errors.map((e) => e.code).join('; ')}`);
    return state?.participantId ?? null;
  }, { deadline, describe });
  await waitForPlaying(page, options.remoteName, deadline, `${options.remoteName}'s tile playing`);
  emit({ event: 'playing', participant_id: first });

  const told = Date.now();
  deadline = told + options.backTimeoutMs;
  const again = await waitFor('a fresh join on another node', async () => {
    state = await readState(page);
    return state?.participantId && state.participantId !== first ? state.participantId : null;
  }, { deadline, describe });
  const rejoinedMs = Date.now() - told;
  await waitForPlaying(page, options.remoteName, deadline, `${options.remoteName}'s tile playing again`);
  return { ok: true, participant_id: again, rejoined_ms: rejoinedMs, media_back_ms: Date.now() - told };
}

const options = parseArgs(process.argv.slice(2), { url: '', room: '', remoteName: '', name: 'Chromium', timeoutMs: 40000, backTimeoutMs: 0 }, USAGE);
if (!options.url || !options.room || !options.remoteName) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}
options.timeoutMs = Number(options.timeoutMs);
options.backTimeoutMs = Number(options.backTimeoutMs) || options.timeoutMs;
const browser = await launch();
let result;
try {
  result = await run(options, browser);
} catch (error) {
  result = { ok: false, error: summarize(error) };
} finally {
  await browser.close().catch(() => {});
}
emit(result);
process.exit(result.ok ? 0 : 1);
