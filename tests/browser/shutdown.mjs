#!/usr/bin/env node
// The web client when the server stops: one page joins `--room` by deep link and, once it is
// in the meeting, prints `{"event":"in_meeting"}`. The caller then stops the server. The page
// must show #ended-screen saying the server stopped (state().ended.reason
// `server_shutdown`), not try to resume.
//
// stdout: the event line, then one result line `{"ok":true,"ended":…,"screen_text":…}`
// (exit 0) or `{"ok":false,"error":"…"}` (exit 1). stderr: the page's console errors.

import { launch, openPage, readState, visibleText, waitFor, summarize, optionsOrExit, meetingUrl } from './lib.mjs';

const USAGE = 'usage: node shutdown.mjs --url http://localhost:PORT [--room R] [--timeout-ms 30000]';

async function run(options, browser) {
  const deadline = Date.now() + options.timeoutMs;
  const page = await openPage(browser, meetingUrl(options.url, { room: options.room, name: 'Ivy' }), {
    onConsoleError: (text) => process.stderr.write(`[Ivy] ${text}\n`),
    timeoutMs: options.timeoutMs,
  });
  let state = null;
  await waitFor('Ivy to be in the meeting', async () => {
    state = await readState(page);
    return state?.screen === 'meeting' && state.connectionState === 'connected';
  }, { deadline, describe: () => JSON.stringify(state) });
  process.stdout.write(`${JSON.stringify({ event: 'in_meeting', participant_id: state.participantId })}\n`);

  let text = null;
  await waitFor('Ivy to be told the server stopped', async () => {
    text = await visibleText(page, '#ended-screen', /server/i);
    return text;
  }, { deadline, describe: () => `#ended-screen: ${JSON.stringify(text)}` });
  const ended = (await readState(page)).ended;
  if (ended?.reason !== 'server_shutdown') throw new Error(`state().ended is ${JSON.stringify(ended)}`);
  return { ok: true, ended, screen_text: text.replace(/\s+/g, ' ') };
}

async function main() {
  const options = optionsOrExit({ room: `shutdown-${Date.now().toString(36)}`, timeoutMs: 30000 }, USAGE);
  let result;
  const browser = await launch();
  try {
    result = await run(options, browser);
  } catch (error) {
    result = { ok: false, error: summarize(error) };
  }
  await browser.close().catch(() => {});
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(result.ok ? 0 : 1);
}

main();
