#!/usr/bin/env node
// A stand-in for the roomcast server, for working on the web client without the Rust
// build: serves web/ at `/` and speaks signaling v1 on `/ws`. The media side is a headless
// Chromium page holding one RTCPeerConnection per participant that forwards (re-encodes)
// every published track to the others. Like the real server it is the impolite peer
// (drops a client offer that collides with its own), grants the negotiation lock, reuses
// inactive transceivers, and labels forwarded tracks `a=msid:<publisher id> <track id>`.
// Unlike it, it resolves ICE role conflicts (it is Chrome).
//
// It is a test double, not a reference: where it and the Rust server differ, the server
// and docs/signaling win.
//
//   node tests/browser/mock-sfu.mjs [--port 0]
// prints `{"event":"listening","url":"http://localhost:PORT"}` and serves until killed.

import http from 'node:http';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { launch, parseArgs } from './lib.mjs';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
};
const ENGINE_PATH = '/__mock-sfu';

// ---- The media engine, evaluated inside the Chromium page. ----

function engine() {
  const peers = new Map(); // connection id → peer
  const byId = new Map(); // participant id → peer
  let nextTrack = 1;
  const counters = { clientOffers: 0, ignoredOffers: 0, serverOffers: 0 };
  const send = (peer, message) => window.sfuSend(peer.conn, JSON.stringify(message));
  const roomOf = (peer) => [...byId.values()].filter((p) => p.room === peer.room && p !== peer);
  const info = (peer) => ({
    id: peer.id,
    name: peer.name,
    role: peer.role,
    tracks: [...peer.published.values()].map(({ id, kind, source }) => ({ id, kind, source, simulcast: false })),
  });
  const error = (conn, code, message) => window.sfuSend(conn, JSON.stringify({ type: 'error', code, message }));

  function enqueue(peer, step) {
    peer.chain = peer.chain.then(() => (peer.closed ? undefined : step())).catch((e) => console.error(`[${peer.name}]`, e.message));
  }

  function mungeMsid(peer, sdp) {
    const sections = sdp.split(/\r\n(?=m=)/);
    return sections.map((section) => {
      const mid = /\r\na=mid:(\S+)/.exec(section)?.[1];
      const out = [...peer.outgoing.values()].find((o) => o.transceiver.mid === mid);
      if (!out) return section;
      return section
        .replace(/^a=msid:.*$/m, `a=msid:${out.publisherId} ${out.trackId}`)
        .replace(/^(a=ssrc:\d+ msid:).*$/gm, `$1${out.publisherId} ${out.trackId}`);
    }).join('\r\n');
  }

  async function offer(peer) {
    if (peer.closed || peer.pc.signalingState !== 'stable') return;
    // The client holds the negotiation lock: offer once its offer is answered.
    if (peer.granted) {
      peer.offerDeferred = true;
      return;
    }
    await peer.pc.setLocalDescription();
    counters.serverOffers += 1;
    send(peer, { type: 'offer', sdp: mungeMsid(peer, peer.pc.localDescription.sdp) });
  }

  // Chrome does not send a remote audio track through another PeerConnection as is; a
  // WebAudio hop (fed by a muted element, which is what makes remote audio flow) does.
  const audioContext = new AudioContext();
  function forwardable(published) {
    if (published.kind !== 'audio') return published.track;
    if (!published.relay) {
      const stream = new MediaStream([published.track]);
      const sink = new Audio();
      sink.muted = true;
      sink.srcObject = stream;
      sink.play().catch((e) => console.error('relay sink', e.message));
      const destination = audioContext.createMediaStreamDestination();
      audioContext.createMediaStreamSource(stream).connect(destination);
      published.relay = destination.stream.getAudioTracks()[0];
    }
    return published.relay;
  }

  function grant(peer) {
    peer.granted = true;
    send(peer, { type: 'negotiate_grant' });
    clearTimeout(peer.grantTimer);
    peer.grantTimer = setTimeout(() => releaseGrant(peer), 10_000);
  }

  function releaseGrant(peer) {
    clearTimeout(peer.grantTimer);
    peer.granted = false;
    if (peer.offerDeferred) {
      peer.offerDeferred = false;
      enqueue(peer, () => offer(peer));
    }
  }

  async function subscribe(peer, publisher, published) {
    const reusable = peer.pc.getTransceivers().find((t) => !t.stopped && t.currentDirection === 'inactive'
      && t.direction === 'inactive' && t.receiver.track.kind === published.kind
      && ![...peer.outgoing.values()].some((o) => o.transceiver === t));
    let transceiver = reusable;
    if (transceiver) {
      await transceiver.sender.replaceTrack(forwardable(published));
      transceiver.direction = 'sendonly';
    } else {
      transceiver = peer.pc.addTransceiver(forwardable(published), { direction: 'sendonly' });
    }
    peer.outgoing.set(published.id, { transceiver, publisherId: publisher.id, trackId: published.id });
  }

  async function unsubscribe(peer, trackId) {
    const out = peer.outgoing.get(trackId);
    if (!out) return;
    peer.outgoing.delete(trackId);
    await out.transceiver.sender.replaceTrack(null);
    out.transceiver.direction = 'inactive';
  }

  async function onOffer(peer, message) {
    counters.clientOffers += 1;
    if (peer.pc.signalingState === 'have-local-offer') {
      counters.ignoredOffers += 1;
      console.log(`[${peer.name}] collision: ignoring the client's offer`);
      return;
    }
    await peer.pc.setRemoteDescription({ type: 'offer', sdp: message.sdp });
    for (const candidate of peer.pendingCandidates.splice(0)) await addCandidate(peer, candidate);
    await peer.pc.setLocalDescription();
    // Answers carry the forwarded tracks' msids too: the browser re-reads them from every description.
    send(peer, { type: 'answer', sdp: mungeMsid(peer, peer.pc.localDescription.sdp) });
    releaseGrant(peer);
    const sources = new Map((message.tracks ?? []).map((t) => [t.mid, t.source]));
    for (const transceiver of peer.pc.getTransceivers()) {
      if (transceiver.currentDirection !== 'recvonly') continue;
      if ([...peer.published.values()].some((p) => p.mid === transceiver.mid)) continue;
      const kind = transceiver.receiver.track.kind;
      const published = {
        id: `T${nextTrack++}`,
        kind,
        source: sources.get(transceiver.mid) ?? (kind === 'audio' ? 'microphone' : 'camera'),
        mid: transceiver.mid,
        track: transceiver.receiver.track,
      };
      peer.published.set(published.id, published);
      const track = { id: published.id, kind, source: published.source, simulcast: false };
      for (const other of roomOf(peer)) {
        send(other, { type: 'track_published', participant_id: peer.id, track });
        enqueue(other, () => subscribe(other, peer, published));
      }
    }
  }

  async function addCandidate(peer, candidate) {
    try {
      await peer.pc.addIceCandidate(candidate && candidate.candidate ? candidate : undefined);
    } catch (e) {
      console.log(`[${peer.name}] candidate not applied: ${e.message}`);
    }
  }

  function join(conn, message) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(message.room ?? '') || !message.name) {
      error(conn, 'bad_request', 'join needs a valid room and name');
      return;
    }
    const peer = {
      conn,
      id: `P${crypto.randomUUID().slice(0, 8)}`,
      room: message.room,
      name: message.name,
      role: message.role ?? 'presenter',
      pc: new RTCPeerConnection({ bundlePolicy: 'max-bundle' }),
      published: new Map(),
      outgoing: new Map(),
      pendingCandidates: [],
      chain: Promise.resolve(),
      closed: false,
      granted: false,
      grantWaiting: false,
      grantTimer: null,
      offerDeferred: false,
    };
    peers.set(conn, peer);
    byId.set(peer.id, peer);
    peer.pc.onicecandidate = ({ candidate }) => send(peer, { type: 'candidate', candidate: candidate ? candidate.toJSON() : null });
    peer.pc.onnegotiationneeded = () => enqueue(peer, () => offer(peer));
    const others = roomOf(peer);
    send(peer, { type: 'joined', participant_id: peer.id, room: peer.room, participants: others.map(info), ice_servers: [] });
    for (const other of others) {
      send(other, { type: 'participant_joined', participant: info(peer) });
      for (const published of other.published.values()) enqueue(peer, () => subscribe(peer, other, published));
    }
  }

  function leave(peer) {
    if (peer.closed) return;
    peer.closed = true;
    peers.delete(peer.conn);
    byId.delete(peer.id);
    for (const other of roomOf(peer)) {
      for (const trackId of peer.published.keys()) enqueue(other, () => unsubscribe(other, trackId));
      send(other, { type: 'participant_left', participant_id: peer.id });
    }
    peer.pc.close();
  }

  window.sfu = {
    counters,
    /** Per participant: what each forwarded m-line has sent, for debugging. */
    async report() {
      const result = {};
      for (const peer of byId.values()) {
        const stats = await peer.pc.getStats();
        const sent = {};
        for (const r of stats.values()) {
          if (r.type === 'outbound-rtp') sent[r.mid] = { kind: r.kind, packets: r.packetsSent, frames: r.framesEncoded, width: r.frameWidth };
          if (r.type === 'inbound-rtp') sent[`in:${r.mid}`] = { kind: r.kind, packets: r.packetsReceived, frames: r.framesDecoded };
        }
        result[`${peer.name} ${peer.id}`] = {
          signaling: peer.pc.signalingState,
          connection: peer.pc.connectionState,
          outgoing: [...peer.outgoing.values()].map((o) => ({ mid: o.transceiver.mid, from: o.publisherId, track: o.trackId, sourceMuted: o.transceiver.sender.track?.muted, sourceState: o.transceiver.sender.track?.readyState })),
          rtp: sent,
        };
      }
      return result;
    },
    receive(conn, text) {
      let message;
      try {
        message = JSON.parse(text);
      } catch {
        error(conn, 'bad_request', 'not JSON');
        return;
      }
      const peer = peers.get(conn);
      if (message.type === 'join') {
        if (peer) error(conn, 'already_joined', 'already joined');
        else join(conn, message);
        return;
      }
      if (!peer) {
        error(conn, 'not_joined', `${message.type} before join`);
        return;
      }
      switch (message.type) {
        case 'offer':
          enqueue(peer, () => onOffer(peer, message));
          break;
        case 'answer':
          enqueue(peer, async () => {
            if (peer.pc.signalingState !== 'have-local-offer') {
              error(conn, 'invalid_state', 'no offer of ours is pending');
              return;
            }
            await peer.pc.setRemoteDescription({ type: 'answer', sdp: message.sdp });
            for (const candidate of peer.pendingCandidates.splice(0)) await addCandidate(peer, candidate);
            if (peer.grantWaiting) {
              peer.grantWaiting = false;
              grant(peer);
            }
          });
          break;
        case 'negotiate_request':
          enqueue(peer, async () => {
            if (peer.pc.signalingState === 'have-local-offer') peer.grantWaiting = true;
            else grant(peer);
          });
          break;
        case 'candidate':
          enqueue(peer, async () => {
            if (peer.pc.remoteDescription) await addCandidate(peer, message.candidate);
            else peer.pendingCandidates.push(message.candidate);
          });
          break;
        case 'chat':
          for (const p of [peer, ...roomOf(peer)]) {
            send(p, { type: 'chat', participant_id: peer.id, name: peer.name, text: String(message.text), ts: Date.now() });
          }
          break;
        case 'leave':
          leave(peer);
          window.sfuClose(conn);
          break;
        default:
          error(conn, 'bad_request', `unknown type ${message.type}`);
      }
    },
    disconnect(conn) {
      const peer = peers.get(conn);
      if (peer) leave(peer);
    },
  };
}

// ---- WebSocket framing (RFC 6455), just what signaling needs: text, ping, close. ----

function acceptWebSocket(req, socket, { onText, onClose }) {
  const accept = createHash('sha1')
    .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
    .digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
    + `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
  socket.setNoDelay(true);

  let buffer = Buffer.alloc(0);
  let fragments = [];
  let closed = false;
  const frame = (opcode, payload) => {
    const length = payload.length;
    const header = length < 126 ? Buffer.from([0x80 | opcode, length])
      : length < 65536 ? Buffer.from([0x80 | opcode, 126, length >> 8, length & 255])
        : Buffer.concat([Buffer.from([0x80 | opcode, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(length)); return b; })()]);
    if (!closed) socket.write(Buffer.concat([header, payload]));
  };
  const connection = {
    send: (text) => frame(0x1, Buffer.from(text)),
    close: (code = 1000) => {
      const payload = Buffer.alloc(2);
      payload.writeUInt16BE(code);
      frame(0x8, payload);
      closed = true;
      socket.end();
    },
  };
  const finish = () => {
    if (connection.done) return;
    connection.done = true;
    closed = true;
    onClose();
  };
  socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      if (buffer.length < 2) return;
      const fin = (buffer[0] & 0x80) !== 0;
      const opcode = buffer[0] & 0x0f;
      const masked = (buffer[1] & 0x80) !== 0;
      let length = buffer[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffer.length < 4) return;
        length = buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffer.length < 10) return;
        length = Number(buffer.readBigUInt64BE(2));
        offset = 10;
      }
      const maskAt = offset;
      if (masked) offset += 4;
      if (buffer.length < offset + length) return;
      const payload = Buffer.from(buffer.subarray(offset, offset + length));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= buffer[maskAt + (i % 4)];
      buffer = buffer.subarray(offset + length);
      if (opcode === 0x8) {
        connection.close(1000);
        finish();
        return;
      }
      if (opcode === 0x9) frame(0xa, payload);
      if (opcode === 0x1 || opcode === 0x0) {
        fragments.push(payload);
        if (fin) {
          onText(Buffer.concat(fragments).toString('utf8'));
          fragments = [];
        }
      }
    }
  });
  socket.on('close', finish);
  socket.on('error', finish);
  return connection;
}

// ---- HTTP + bridge to the engine page. ----

async function main() {
  const options = parseArgs(process.argv.slice(2), { port: 0 }, 'usage: node mock-sfu.mjs [--port 0]');
  const connections = new Map();
  let nextConn = 1;
  let enginePage = null;
  let bridge = Promise.resolve();
  const toEngine = (fn, ...args) => {
    bridge = bridge.then(() => enginePage.evaluate(fn, args)).catch((e) => console.error('[mock-sfu]', e.message));
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === `${ENGINE_PATH}/report` && enginePage) {
      const report = await enginePage.evaluate(() => window.sfu.report()).catch((e) => ({ error: e.message }));
      res.writeHead(200, { 'content-type': TYPES['.json'] }).end(JSON.stringify(report, null, 1));
      return;
    }
    if (url.pathname === ENGINE_PATH) {
      res.writeHead(200, { 'content-type': TYPES['.html'] }).end('<!doctype html><link rel="icon" href="data:,"><title>mock sfu</title>');
      return;
    }
    const file = path.join(WEB, url.pathname === '/' ? 'index.html' : path.normalize(decodeURIComponent(url.pathname)));
    if (!file.startsWith(WEB + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  server.on('upgrade', (req, socket) => {
    if (new URL(req.url, 'http://localhost').pathname !== '/ws' || !enginePage) {
      socket.destroy();
      return;
    }
    const conn = nextConn++;
    connections.set(conn, acceptWebSocket(req, socket, {
      onText: (text) => toEngine(([c, t]) => window.sfu.receive(c, t), conn, text),
      onClose: () => {
        connections.delete(conn);
        toEngine(([c]) => window.sfu.disconnect(c), conn);
      },
    }));
  });
  await new Promise((resolve) => server.listen(options.port, '127.0.0.1', resolve));
  const base = `http://localhost:${server.address().port}`;

  const browser = await launch({ extraArgs: ['--autoplay-policy=no-user-gesture-required'] });
  const context = await browser.newContext();
  enginePage = await context.newPage();
  enginePage.on('console', (message) => process.stderr.write(`[mock-sfu] ${message.text()}\n`));
  await enginePage.exposeFunction('sfuSend', (conn, text) => connections.get(conn)?.send(text));
  await enginePage.exposeFunction('sfuClose', (conn) => connections.get(conn)?.close(1000));
  await enginePage.goto(`${base}${ENGINE_PATH}`);
  await enginePage.evaluate(engine);

  process.stdout.write(`${JSON.stringify({ event: 'listening', url: base })}\n`);

  const shutdown = async () => {
    const counters = await enginePage.evaluate(() => window.sfu.counters).catch(() => null);
    process.stderr.write(`[mock-sfu] ${JSON.stringify(counters)}\n`);
    for (const connection of connections.values()) connection.close(1001);
    server.close();
    await browser.close();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((error) => {
  process.stderr.write(`[mock-sfu] ${error.stack ?? error}\n`);
  process.exit(1);
});
