#!/usr/bin/env node
// A WHEP player in Chromium: `docs/whep-player.html`, served at the server's origin, POSTs a
// receive-only offer to `/whep/{room}` and plays what comes back. Step `watch`: the page's
// video receiver decodes frames (framesDecoded grows by at least 10 in 2 s, the frame has a
// size) and audio bytes arrive. With `--switch-width W --switch-height H`, it then prints
// `{"event":"watching"}` and step `switch` waits for the caller's change of presenter: the
// same video stream (same SSRC, no new receiver) decodes frames of W x H and keeps going;
// with `--voices N` as well, N voices are heard at once (N audio streams whose bytes grow).
// Step `delete`: the page's Stop sends DELETE, answered 200.
//
//   node whep.mjs --url http://localhost:PORT --room R [--token JWT] [--timeout-ms 30000]
//                 [--switch-width W --switch-height H [--voices N]]
//
// stdout: one JSON line `{"ok":bool,"steps":{"watch":{ok, ms, frames_decoded, frame_width,
// frame_height, audio_bytes, location},"delete":{ok, ms, status}}}`.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { runStep, runStepScript, openPage, waitFor, optionsOrExit, sleep } from './lib.mjs';

const USAGE = 'usage: node whep.mjs --url http://localhost:PORT --room R [--token JWT] [--timeout-ms 30000]';
const PLAYER = readFileSync(fileURLToPath(new URL('../../docs/whep-player.html', import.meta.url)), 'utf8');

function log(message) {
  process.stderr.write(`[whep ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
}

/** The page's inbound RTP: video frames decoded and size, audio bytes. */
function inbound(page) {
  return page.evaluate(async () => {
    const pc = window.whep?.pc;
    if (!pc) return null;
    const out = { frames: 0, width: 0, height: 0, audioBytes: 0, voices: {}, videoSsrcs: [], receivers: pc.getReceivers().length };
    for (const s of (await pc.getStats()).values()) {
      if (s.type !== 'inbound-rtp') continue;
      if (s.kind === 'video') {
        out.frames += s.framesDecoded ?? 0;
        out.videoSsrcs.push(s.ssrc);
        out.width = s.frameWidth ?? out.width;
        out.height = s.frameHeight ?? out.height;
      } else if (s.kind === 'audio') {
        out.audioBytes += s.bytesReceived ?? 0;
        out.voices[s.ssrc] = s.bytesReceived ?? 0;
      }
    }
    return out;
  });
}

async function run(options, browser, result) {
  const origin = new URL(options.url).origin;
  const whep = `${origin}/whep/${encodeURIComponent(options.room)}`;
  const query = new URLSearchParams({ url: whep });
  if (options.token) query.set('token', options.token);
  const playerUrl = `${origin}/whep-player.html?${query}`;
  let page = null;
  const watching = await runStep(result.steps, 'watch', options.timeoutMs, async (deadline) => {
    page = await openPage(browser, playerUrl, {
      onConsoleError: (text) => process.stderr.write(`[page] ${text}\n`),
      timeoutMs: deadline - Date.now(),
      permissions: [],
      beforeGoto: (p) => p.route(`${origin}/whep-player.html*`, (route) => route.fulfill({
        status: 200, contentType: 'text/html; charset=utf-8', body: PLAYER,
      })),
    });
    let seen = null;
    await waitFor('the player to decode video and receive audio', async () => {
      const error = await page.evaluate(() => window.whepError ?? null);
      if (error) throw new Error(`the player failed: ${error}`);
      seen = await inbound(page);
      return seen && seen.frames > 0 && seen.width > 0 && seen.audioBytes > 0;
    }, { deadline, describe: () => JSON.stringify(seen) });
    const before = await inbound(page);
    await sleep(2000);
    const after = await inbound(page);
    const decoded = after.frames - before.frames;
    if (decoded < 10) throw new Error(`only ${decoded} frames decoded in 2 s: ${JSON.stringify(after)}`);
    if (after.audioBytes <= before.audioBytes) throw new Error(`audio stopped: ${JSON.stringify(after)}`);
    return {
      frames_decoded: after.frames,
      frame_width: after.width,
      frame_height: after.height,
      audio_bytes: after.audioBytes,
      location: await page.evaluate(() => window.whep.location),
    };
  }, log);
  if (!watching) return;
  if (options.switchWidth) {
    const before = await inbound(page);
    process.stdout.write(`${JSON.stringify({ event: 'watching' })}\n`);
    const switched = await runStep(result.steps, 'switch', options.timeoutMs, async (deadline) => {
      let seen = null;
      await waitFor(`frames of ${options.switchWidth}x${options.switchHeight}`, async () => {
        seen = await inbound(page);
        return seen.width === Number(options.switchWidth) && seen.height === Number(options.switchHeight)
          && seen.frames > before.frames + 10;
      }, { deadline, describe: () => JSON.stringify(seen) });
      if (seen.receivers !== before.receivers || JSON.stringify(seen.videoSsrcs) !== JSON.stringify(before.videoSsrcs)) {
        throw new Error(`the stream changed: before ${JSON.stringify(before)}, after ${JSON.stringify(seen)}`);
      }
      let voices = 0;
      if (options.voices) {
        // Voices heard: audio streams whose bytes grow over a second.
        let heard = null;
        await waitFor(`${options.voices} voices at once`, async () => {
          const a = await inbound(page);
          await sleep(1000);
          const b = await inbound(page);
          heard = Object.keys(b.voices).filter((ssrc) => b.voices[ssrc] > (a.voices[ssrc] ?? 0));
          return heard.length >= Number(options.voices);
        }, { deadline, describe: () => JSON.stringify(heard) });
        voices = heard.length;
      }
      return { frame_width: seen.width, frame_height: seen.height, frames_decoded: seen.frames, video_ssrcs: seen.videoSsrcs, voices };
    }, log);
    if (!switched) return;
  }
  await runStep(result.steps, 'delete', 10000, async () => {
    const status = await page.evaluate(() => window.whep.stop());
    if (status !== 200) throw new Error(`DELETE answered ${status}`);
    return { status };
  }, log);
}

const options = optionsOrExit({ room: '', token: '', timeoutMs: 30000, switchWidth: '', switchHeight: '', voices: '' }, USAGE);
await runStepScript({ options, run, result: { steps: {} }, expectedSteps: options.switchWidth ? 3 : 2 });
