#!/usr/bin/env node
// Three-person meeting through the web client, against a running server:
// three pages join one room by deep link, each must see the other two playing video;
// a chat message from one reaches the other two; one leaves and its tile disappears at
// the others. Saves a screenshot of the meeting (1280x800) along the way.
//
// stdout: one JSON line, `{"ok":true,...}` (exit 0) or `{"ok":false,"error":"…"}` (exit 1).
// stderr: progress and the pages' console errors.

import { fileURLToPath } from 'node:url';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { launch, openPage, readState, summarize, waitFor, sleep, parseArgs, meetingUrl } from './lib.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const USAGE = `usage: node meeting.mjs --url http://localhost:PORT [--room R] [--timeout-ms 60000]
       [--screenshot ${path.join('docs', 'screenshot.png')}]`;
const NAMES = ['Ann', 'Ben', 'Cleo'];

function log(message) {
  process.stderr.write(`[meeting] ${message}\n`);
}

/** Waits until `page` plays video from every participant in `expectedIds` and from no one else. */
async function waitForRemotes(page, name, expectedIds, deadline) {
  let last = null;
  let previous = new Map();
  await waitFor(`${name} to play video from ${expectedIds.length} others`, async () => {
    last = await readState(page);
    const remote = last?.remote ?? [];
    const advancing = remote.filter((r) => r.videoWidth > 0 && r.currentTime > (previous.get(r.participantId) ?? Infinity));
    previous = new Map(remote.map((r) => [r.participantId, r.currentTime]));
    return remote.length === expectedIds.length
      && expectedIds.every((id) => advancing.some((r) => r.participantId === id));
  }, { deadline, describe: () => JSON.stringify(last) });
  return last;
}

async function run(options, browser) {
  const deadline = Date.now() + options.timeoutMs;
  const pages = [];
  for (const name of NAMES) {
    const page = await openPage(browser, meetingUrl(options.url, { room: options.room, name }), {
      onConsoleError: (text) => process.stderr.write(`[${name}] ${text}\n`),
      timeoutMs: deadline - Date.now(),
    });
    pages.push(page);
  }

  const ids = [];
  for (const [i, page] of pages.entries()) {
    const state = await waitFor(`${NAMES[i]} to join`, async () => {
      const s = await readState(page);
      if (s?.errors.length && !s.participantId) throw new Error(`${NAMES[i]} could not join: ${JSON.stringify(s.errors)}`);
      return s?.participantId ? s : null;
    }, { deadline });
    ids.push(state.participantId);
  }
  log(`joined: ${NAMES.map((n, i) => `${n}=${ids[i]}`).join(', ')}`);

  for (const [i, page] of pages.entries()) {
    const state = await waitForRemotes(page, NAMES[i], ids.filter((_, j) => j !== i), deadline);
    const names = state.remote.map((r) => r.name).sort();
    const expected = NAMES.filter((_, j) => j !== i).sort();
    if (JSON.stringify(names) !== JSON.stringify(expected)) {
      throw new Error(`${NAMES[i]} shows names ${JSON.stringify(names)}, expected ${JSON.stringify(expected)}`);
    }
  }
  log('every page plays video from the other two');

  // Chat through the UI, from Ann.
  const text = `Hello from ${NAMES[0]}! Can everyone see and hear me?`;
  await pages[0].click('#chat-button');
  await pages[0].fill('#chat-input', text);
  await pages[0].press('#chat-input', 'Enter');
  for (const [i, page] of pages.entries()) {
    await waitFor(`${NAMES[i]} to show the chat message`, async () => {
      const s = await readState(page);
      return s.chat.some((m) => m.text === text && m.name === NAMES[0] && m.participantId === ids[0]);
    }, { deadline });
  }
  log('chat delivered to everyone (and echoed to the sender)');

  await mkdir(path.dirname(options.screenshot), { recursive: true });
  await sleep(500);
  await pages[0].screenshot({ path: options.screenshot });
  log(`screenshot saved to ${options.screenshot}`);

  // Cleo leaves through the Leave button.
  await pages[2].click('#leave-button');
  await waitFor(`${NAMES[2]} to be back on the join screen`, () => pages[2].isVisible('#join-form'), { deadline });
  for (const [i, page] of pages.slice(0, 2).entries()) {
    let last = null;
    await waitFor(`${NAMES[2]}'s tile to disappear at ${NAMES[i]}`, async () => {
      last = await readState(page);
      const tile = await page.$(`.tile[data-participant-id="${ids[2]}"]`);
      return !tile && !last.remote.some((r) => r.participantId === ids[2]) && last.remote.length === 1;
    }, { deadline, describe: () => JSON.stringify(last) });
  }
  log(`${NAMES[2]} left and is gone from the others' grids`);

  const final = await Promise.all(pages.slice(0, 2).map(readState));
  return {
    ok: true,
    room: options.room,
    participants: Object.fromEntries(NAMES.map((n, i) => [n, ids[i]])),
    chat_delivered: pages.length,
    left: ids[2],
    remaining_remotes: final.map((s) => s.remote.map((r) => r.participantId)),
    screenshot: path.relative(REPO, options.screenshot),
  };
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2), {
      url: '',
      room: `meeting-${Date.now().toString(36)}`,
      timeoutMs: 60000,
      screenshot: path.join(REPO, 'docs', 'screenshot.png'),
    }, USAGE);
    if (!options.url) throw new Error(`missing --url\n${USAGE}`);
    options.screenshot = path.resolve(options.screenshot);
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: error.message })}\n`);
    process.exit(1);
  }

  const browser = await launch();
  let result;
  try {
    result = await run(options, browser);
  } catch (error) {
    result = { ok: false, error: summarize(error) };
  }
  await browser.close().catch(() => {});
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(result.ok ? 0 : 1);
}

main().catch((error) => {
  process.stdout.write(`${JSON.stringify({ ok: false, error: String(error?.stack ?? error) })}\n`);
  process.exit(1);
});
