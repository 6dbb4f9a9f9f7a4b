#!/usr/bin/env node
// One participant of the network lab in real Chromium: the web client, as a user opens it.
// Run inside the participant's network namespace (`ip netns exec NS node netlab.mjs …`), so
// Chromium's media crosses the lab's impaired link. The page must come from
// http://localhost (a secure context): this script listens on 127.0.0.1:--port inside the
// namespace and forwards each connection to the server (--server HOST:PORT), over the link.
//
//   node netlab.mjs --server 10.78.0.1:8080 --room R --name Ann [--role audience|presenter]
//        [--port 8080] [--width 1280] [--height 800] [--sample-ms 250] [--timeout-ms 30000]
//
// stdout, one JSON object per line:
//   {"event":"joined","t":…,"participant_id":…,"join_sent_t":…}  the client joined
//   {"event":"first_frame","t":…}             the first remote video frame was decoded
//   {"event":"signal","t":…,"dir":"sent"|"received","message":{…}}  protocol messages of
//       interest (join, set_quality, track_paused, track_resumed, track_layer, offer, resumed)
//   {"event":"sample","t":…,…}                getStats every --sample-ms (see `sample()`)
//   {"event":"error","error":…}               the script failed (exit 1)
// stdin, one JSON command per line: {"cmd":"viewport","width":…,"height":…} resizes the
// window (the client asks for the layer its tiles need), {"cmd":"stop"} leaves and exits 0.
// `t` is the wall clock in ms.

import net from 'node:net';
import readline from 'node:readline';
import { launch, openPage, recordSignaling, sleep, parseArgs, meetingUrl } from './lib.mjs';

const USAGE = `usage: node netlab.mjs --server HOST:PORT --room R --name N [--role audience]
       [--port 8080] [--width 1280] [--height 800] [--sample-ms 250] [--timeout-ms 30000]`;

const SIGNALS = ['join', 'joined', 'set_quality', 'track_paused', 'track_resumed', 'track_layer',
  'offer', 'resumed', 'publisher_layers', 'error'];

function emit(object) {
  process.stdout.write(`${JSON.stringify({ t: Date.now(), ...object })}\n`);
}

/** Forwards 127.0.0.1:port to the server, so the page is http://localhost. */
function forward(port, server) {
  const [host, serverPort] = server.split(':');
  const listener = net.createServer((client) => {
    const upstream = net.connect(Number(serverPort), host);
    client.pipe(upstream).pipe(client);
    const close = () => { client.destroy(); upstream.destroy(); };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  return new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(port, '127.0.0.1', () => resolve(listener));
  });
}

/** What one getStats call says, per RTP stream and for the connection. */
function sample(page) {
  return page.evaluate(async () => {
    const rc = window.roomcast;
    const pc = rc?.pc();
    if (!pc) return null;
    const state = rc.state();
    const owner = new Map();
    for (const r of state.remote ?? []) {
      for (const t of r.tracks ?? []) owner.set(t.mid, { participantId: r.participantId, trackId: t.trackId });
    }
    const midOfTrack = new Map(pc.getTransceivers().map((t) => [t.receiver.track.id, t.mid]));
    const inbound = [];
    const outbound = [];
    let pair = null;
    const stats = await pc.getStats();
    for (const r of stats.values()) {
      if (r.type === 'inbound-rtp') {
        const mid = r.mid ?? midOfTrack.get(r.trackIdentifier);
        inbound.push({
          kind: r.kind, mid, ssrc: r.ssrc, ...owner.get(mid),
          packetsReceived: r.packetsReceived ?? 0, packetsLost: r.packetsLost ?? 0,
          bytesReceived: r.bytesReceived ?? 0, nackCount: r.nackCount ?? 0,
          framesDecoded: r.framesDecoded ?? 0, frameWidth: r.frameWidth ?? 0,
          framesPerSecond: r.framesPerSecond ?? 0,
          freezeCount: r.freezeCount ?? 0, totalFreezesDuration: r.totalFreezesDuration ?? 0,
          pauseCount: r.pauseCount ?? 0, totalPausesDuration: r.totalPausesDuration ?? 0,
          jitterBufferDelay: r.jitterBufferDelay ?? 0, jitterBufferEmittedCount: r.jitterBufferEmittedCount ?? 0,
          concealedSamples: r.concealedSamples ?? 0, totalSamplesReceived: r.totalSamplesReceived ?? 0,
          pliCount: r.pliCount ?? 0, keyFramesDecoded: r.keyFramesDecoded ?? 0,
          codec: stats.get(r.codecId)?.mimeType ?? null,
          fecPacketsReceived: r.fecPacketsReceived ?? 0, fecPacketsDiscarded: r.fecPacketsDiscarded ?? 0,
        });
      } else if (r.type === 'outbound-rtp' && r.kind === 'video') {
        outbound.push({
          rid: r.rid ?? null, bytesSent: r.bytesSent ?? 0, frameWidth: r.frameWidth ?? 0,
          framesPerSecond: r.framesPerSecond ?? 0, active: r.active ?? null,
          qualityLimitationReason: r.qualityLimitationReason ?? null, targetBitrate: r.targetBitrate ?? null,
          retransmittedPacketsSent: r.retransmittedPacketsSent ?? 0,
        });
      } else if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
        pair = { rtt: r.currentRoundTripTime ?? null, availableOutgoingBitrate: r.availableOutgoingBitrate ?? null };
      }
    }
    const ufrag = /a=ice-ufrag:(\S+)/.exec(pc.localDescription?.sdp ?? '')?.[1] ?? null;
    return {
      connectionState: pc.connectionState, iceConnectionState: pc.iceConnectionState, ufrag,
      participantId: state.participantId, inbound, outbound, pair,
    };
  });
}

async function main() {
  const options = parseArgs(process.argv.slice(2), {
    server: '', room: '', name: '', role: 'audience', port: 8080, width: 1280, height: 800,
    sampleMs: 250, timeoutMs: 30000,
  }, USAGE);
  if (!options.server || !options.room || !options.name) throw new Error(`missing options\n${USAGE}`);
  const listener = await forward(options.port, options.server);
  const browser = await launch({ extraArgs: ['--disable-features=WebRtcHideLocalIpsWithMdns'] });
  let stopping = false;
  const stop = async (code) => {
    if (stopping) return;
    stopping = true;
    await browser.close().catch(() => {});
    listener.close();
    process.exit(code);
  };
  process.on('SIGTERM', () => stop(0));

  let signals = [];
  const page = await openPage(browser, meetingUrl(`http://localhost:${options.port}`, {
    room: options.room, name: options.name, role: options.role,
  }), {
    viewport: { width: options.width, height: options.height },
    timeoutMs: options.timeoutMs,
    onConsoleError: (text) => process.stderr.write(`[page] ${text}\n`),
    beforeGoto: (p) => { signals = recordSignaling(p, SIGNALS); },
  });

  const commands = readline.createInterface({ input: process.stdin });
  commands.on('line', async (line) => {
    let command;
    try {
      command = JSON.parse(line);
    } catch {
      return;
    }
    if (command.cmd === 'viewport') {
      await page.setViewportSize({ width: command.width, height: command.height });
    } else if (command.cmd === 'stop') {
      await stop(0);
    }
  });
  commands.on('close', () => stop(0));

  let joined = false;
  let firstFrame = false;
  let reported = 0;
  let nextSample = 0;
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    for (; reported < signals.length; reported++) {
      const s = signals[reported];
      emit({ event: 'signal', t: s.t, dir: s.dir, message: s.message });
    }
    const now = Date.now();
    // Until the first frame, look every 20 ms: join-to-first-frame is measured.
    if (!firstFrame || now >= nextSample) {
      const s = await sample(page).catch(() => null);
      if (s && !joined && s.participantId) {
        joined = true;
        const join = signals.find((m) => m.dir === 'sent' && m.message.type === 'join');
        emit({ event: 'joined', participant_id: s.participantId, join_sent_t: join?.t ?? null });
      }
      if (s && !firstFrame && s.inbound.some((r) => r.kind === 'video' && r.framesDecoded > 0)) {
        firstFrame = true;
        emit({ event: 'first_frame' });
      }
      if (s && now >= nextSample) {
        emit({ event: 'sample', ...s });
        nextSample = now + options.sampleMs;
      }
      if (!joined && now > deadline) throw new Error('the client did not join in time');
    }
    await sleep(firstFrame ? Math.max(5, nextSample - Date.now()) : 20);
  }
}

main().catch((error) => {
  emit({ event: 'error', error: String(error?.message ?? error) });
  process.exit(1);
});
