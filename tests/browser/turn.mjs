#!/usr/bin/env node
// Media through a TURN relay. The web client joins a room whose other participant (`PID`,
// publishing audio and video) is already there, with its RTCPeerConnection forced to
// `iceTransportPolicy: "relay"` (an init script wraps the constructor): it may only use
// candidates the TURN server relays for it, with the credentials the server handed out in
// `joined`. Step `relay`: the remote camera tile plays, the selected candidate pair's local
// candidate is of type `relay` over `--transport` (udp or tcp), video frames keep being
// decoded and the page's own audio and video go out through the same pair.
//
//   node turn.mjs --url http://localhost:PORT --room R --expect-remote PID [--transport udp]
//                 [--timeout-ms 40000]
//
// stdout: one JSON line `{"ok":bool,"steps":{"relay":{ok, ms, local_candidate_type,
// relay_protocol, remote_candidate, ice_username, frames_decoded, bytes_sent, …}}}`.

import {
  runStep, runStepScript, openPage, readState, readRtpStats, waitForPlayingTiles, waitFor,
  optionsOrExit, meetingUrl, sleep,
} from './lib.mjs';

const USAGE = 'usage: node turn.mjs --url http://localhost:PORT --room R --expect-remote PID [--transport udp|tcp] [--timeout-ms 40000]';

function log(message) {
  process.stderr.write(`[turn ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
}

/** Init script: every RTCPeerConnection the page makes uses relayed candidates only. */
function forceRelay() {
  const Native = window.RTCPeerConnection;
  window.__iceServers = [];
  window.RTCPeerConnection = class extends Native {
    constructor(config = {}, ...rest) {
      window.__iceServers = config.iceServers ?? [];
      super({ ...config, iceTransportPolicy: 'relay' }, ...rest);
    }

    setConfiguration(config = {}) {
      window.__iceServers = config.iceServers ?? window.__iceServers;
      return super.setConfiguration({ ...config, iceTransportPolicy: 'relay' });
    }
  };
}

/** The selected candidate pair: its local and remote candidates, or null. */
function selectedPair(page) {
  return page.evaluate(async () => {
    const pc = window.roomcast?.pc();
    if (!pc) return null;
    const stats = [...(await pc.getStats()).values()];
    const byId = new Map(stats.map((s) => [s.id, s]));
    const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
    const pair = transport
      ? byId.get(transport.selectedCandidatePairId)
      : stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
    if (!pair) return null;
    const local = byId.get(pair.localCandidateId) ?? {};
    const remote = byId.get(pair.remoteCandidateId) ?? {};
    return {
      state: pair.state,
      local: { type: local.candidateType, protocol: local.protocol, relayProtocol: local.relayProtocol ?? null, address: local.address, port: local.port },
      remote: { type: remote.candidateType, address: remote.address, port: remote.port },
      bytesSent: pair.bytesSent ?? 0,
      bytesReceived: pair.bytesReceived ?? 0,
    };
  });
}

/** The connection's states, its candidates and pairs, and what came in and went out. */
function connectionReport(page) {
  return page.evaluate(async () => {
    const pc = window.roomcast?.pc();
    if (!pc) return null;
    const stats = [...(await pc.getStats()).values()];
    const pick = (s, keys) => Object.fromEntries(keys.filter((k) => s[k] !== undefined).map((k) => [k, s[k]]));
    return {
      connection: pc.connectionState,
      ice: pc.iceConnectionState,
      gathering: pc.iceGatheringState,
      dtls: stats.filter((s) => s.type === 'transport').map((s) => pick(s, ['dtlsState', 'iceState', 'bytesReceived', 'bytesSent'])),
      local: stats.filter((s) => s.type === 'local-candidate').map((s) => pick(s, ['candidateType', 'protocol', 'relayProtocol', 'address', 'port'])),
      remote: stats.filter((s) => s.type === 'remote-candidate').map((s) => pick(s, ['candidateType', 'protocol', 'address', 'port'])),
      pairs: stats.filter((s) => s.type === 'candidate-pair').map((s) => pick(s, ['state', 'nominated', 'requestsSent', 'responsesReceived', 'requestsReceived', 'bytesSent', 'bytesReceived'])),
      inbound: stats.filter((s) => s.type === 'inbound-rtp').map((s) => pick(s, ['kind', 'mid', 'packetsReceived', 'framesDecoded', 'keyFramesDecoded', 'pliCount'])),
      outbound: stats.filter((s) => s.type === 'outbound-rtp').map((s) => pick(s, ['kind', 'rid', 'packetsSent', 'qualityLimitationReason'])),
    };
  });
}

async function run(options, browser, result) {
  await runStep(result.steps, 'relay', options.timeoutMs, async (deadline) => {
    const page = await openPage(browser, meetingUrl(options.url, { room: options.room, name: 'Relay' }), {
      onConsoleError: (text) => process.stderr.write(`[page] ${text}\n`),
      timeoutMs: deadline - Date.now(),
      initScript: forceRelay,
      waitUntil: 'domcontentloaded',
    });
    let s = null;
    await waitFor('the page to be in the meeting', async () => {
      s = await readState(page);
      if (s?.screen === 'ended') throw new Error(`ended: ${JSON.stringify(s.ended)}`);
      return s?.screen === 'meeting' && s.participantId;
    }, { deadline, describe: () => JSON.stringify(s) });
    const iceServers = await page.evaluate(() => window.__iceServers);
    const turn = iceServers.find((server) => [server.urls].flat().some((u) => /^turns?:/.test(u)));
    if (!turn?.username || !turn?.credential) throw new Error(`no TURN credential in joined: ${JSON.stringify(iceServers)}`);
    if (!turn.username.endsWith(`:${s.participantId}`)) {
      throw new Error(`the TURN username ${turn.username} is not "expiry:${s.participantId}"`);
    }
    try {
      await waitForPlayingTiles(page, '.tile[data-source="camera"]:not(.local)', [options.expectRemote], {
        deadline, what: 'the remote camera to play through the relay',
      });
    } catch (e) {
      // Where the call stopped: ICE, DTLS, or media that never came.
      throw new Error(`${e.message}; connection: ${JSON.stringify(await connectionReport(page).catch((r) => String(r)))}`);
    }
    let pair = null;
    await waitFor('a selected candidate pair', async () => {
      pair = await selectedPair(page);
      return pair?.state === 'succeeded';
    }, { deadline, describe: () => JSON.stringify(pair) });
    if (pair.local.type !== 'relay') throw new Error(`the selected pair is not relayed: ${JSON.stringify(pair)}`);
    if (pair.local.relayProtocol !== options.transport) {
      throw new Error(`relayed over ${pair.local.relayProtocol}, not ${options.transport}: ${JSON.stringify(pair)}`);
    }
    // Media keeps flowing both ways through it.
    const before = await readRtpStats(page);
    await sleep(2000);
    const after = await readRtpStats(page);
    const decoded = after.inbound.video.frames - before.inbound.video.frames;
    const sent = after.outbound.video.bytes - before.outbound.video.bytes;
    const heard = after.inbound.audio.bytes - before.inbound.audio.bytes;
    if (decoded < 10) throw new Error(`only ${decoded} video frames decoded in 2 s: ${JSON.stringify(after)}`);
    if (sent <= 0 || heard <= 0) throw new Error(`media stalled: sent ${sent} video bytes, received ${heard} audio bytes`);
    const still = await selectedPair(page);
    if (still?.local.type !== 'relay') throw new Error(`the pair changed: ${JSON.stringify(still)}`);
    return {
      participant_id: s.participantId,
      local_candidate_type: still.local.type,
      relay_protocol: still.local.relayProtocol,
      relay_address: `${still.local.address}:${still.local.port}`,
      remote_candidate: `${still.remote.type} ${still.remote.address}:${still.remote.port}`,
      ice_username: turn.username,
      frames_decoded: decoded,
      video_bytes_sent: sent,
      audio_bytes_received: heard,
    };
  }, log);
}

const options = optionsOrExit({ room: '', expectRemote: '', transport: 'udp', timeoutMs: 40000 }, USAGE);
await runStepScript({ options, run, result: { steps: {} }, expectedSteps: 1 });
