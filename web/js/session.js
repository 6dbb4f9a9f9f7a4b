// The one RTCPeerConnection a participant has with the server.
//
// Before each offer of ours we take the server's negotiation lock (`negotiate_request` →
// `negotiate_grant`), so our offers never cross the server's. That matters beyond saving a
// round trip: when Chrome rolls back its very first offer it keeps the ICE `controlling`
// role, and a server that offered first is controlling too; an ICE agent that does not
// resolve role conflicts (webrtc-rs/pion) then never connects.
//
// Collisions are still handled, following the W3C "perfect negotiation" pattern with the
// browser as the *polite* peer (in case the grant does not come and we offer anyway): a
// server offer that collides with our pending offer rolls ours back (implicit rollback in
// setRemoteDescription) and is answered. The server, being impolite, silently drops our
// colliding offer, so after answering we offer again whatever is still unnegotiated.
//
// Every negotiation step (our offers, the server's offers/answers/candidates) runs on one
// promise chain, so they never interleave, whatever order the events arrive in.
//
// Publishing: each source (microphone, camera, screen) is its own `sendonly` transceiver;
// the camera sends simulcast layers q/h/f and honours `publisher_layers`. Remote tracks are
// named by their m-line's msid (publisher participant id, Track id). A media connection
// that fails, or stays disconnected for a few seconds, gets an ICE restart.

import { support, layerActive, selectedCandidatePair } from './support.js';

/** How long we wait for `negotiate_grant` before offering without it. */
const GRANT_TIMEOUT_MS = 3_000;
/** How long we wait for an answer before assuming our offer was dropped and re-offering. */
const ANSWER_TIMEOUT_MS = 10_000;
/** The most we hold other negotiation steps while a new offer's ICE gathering starts. */
const GATHERING_START_TIMEOUT_MS = 2_000;
/** How long the media connection may stay `disconnected` before we restart ICE. */
const DISCONNECTED_RESTART_MS = 3_000;

/** The camera's simulcast layers, lowest first: the server ranks rids q < h < f. */
const CAMERA_ENCODINGS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
];
/** The rids in rank order, lowest first. */
const RID_ORDER = CAMERA_ENCODINGS.map((encoding) => encoding.rid);
/** A screen share is one layer, sharp rather than smooth. */
const SCREEN_ENCODINGS = [{ maxBitrate: 2_500_000 }];

export class Session extends EventTarget {
  #pc;
  #send;
  #chain = Promise.resolve();
  #closed = false;
  /** We sent `negotiate_request` and have not offered since. */
  #lockRequested = false;
  #grantTimer = null;
  #answerTimer = null;
  #disconnectedTimer = null;
  #pendingCandidates = [];
  /** Our sending transceivers and the `source` each one publishes. */
  #published = new Map();
  /** Receiving transceiver → what it currently carries: `{ participantId, trackId, kind, mid, track }`. */
  #remote = new Map();
  /** ICE usernames (ufrags) that have produced at least one local candidate. */
  #gatheredUfrags = new Set();
  #watchedStreams = new WeakSet();
  #watchedTracks = new WeakSet();
  /** The previous stats sample per key (`in:<trackId>`, `out`), for rates between calls. */
  #lastSamples = new Map();

  /**
   * Events: `remotetrack` and `remotetrackremoved` (`detail`: `{ participantId, trackId,
   * kind, mid, track }`), `remotetrackmute` (same plus `muted`: the media stopped or came
   * back), `connectionstate` (`detail`: the PeerConnection's `connectionState`), `failure`
   * (`detail`: an Error from a negotiation step).
   *
   * @param {{ iceServers: RTCIceServer[], send: (message: object) => void }} options
   */
  constructor({ iceServers, send }) {
    super();
    this.#send = send;
    this.#pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
    this.#pc.addEventListener('negotiationneeded', () => this.#requestOffer());
    this.#pc.addEventListener('icecandidate', ({ candidate }) => {
      if (candidate) this.#gatheredUfrags.add(candidate.usernameFragment);
      this.#send({ type: 'candidate', candidate: candidate ? candidate.toJSON() : null });
    });
    this.#pc.addEventListener('track', (event) => this.#onTrack(event));
    this.#pc.addEventListener('connectionstatechange', () => this.#onConnectionState());
  }

  get pc() {
    return this.#pc;
  }

  /** STUN/TURN servers for what ICE gathers from now on (e.g. after an ICE restart). */
  setIceServers(iceServers) {
    if (this.#closed) return;
    this.#pc.setConfiguration({ ...this.#pc.getConfiguration(), iceServers });
  }

  get connectionState() {
    return this.#pc.connectionState;
  }

  /**
   * Starts sending `track` (or nothing yet, when `null`) as `source` (`microphone`,
   * `camera` or `screen`) on a new `sendonly` transceiver; the offer follows by itself. The
   * camera is sent as three simulcast layers.
   */
  publish(track, source) {
    const init = { direction: 'sendonly' };
    if (source === 'camera') init.sendEncodings = CAMERA_ENCODINGS.map((encoding) => ({ ...encoding }));
    if (source === 'screen') init.sendEncodings = SCREEN_ENCODINGS.map((encoding) => ({ ...encoding }));
    const media = track ?? (source === 'microphone' ? 'audio' : 'video');
    let transceiver;
    try {
      transceiver = this.#pc.addTransceiver(media, init);
    } catch (error) {
      // A browser that refuses these encodings (no simulcast) still sends one stream.
      if (!init.sendEncodings) throw error;
      console.warn(`session: ${source} encodings refused (${error.name}), sending one stream`);
      transceiver = this.#pc.addTransceiver(media, { direction: 'sendonly' });
    }
    this.#published.set(transceiver, source);
    return transceiver;
  }

  /**
   * Stops sending on `transceiver` for good: the next offer no longer sends on its m-line,
   * so the server unpublishes the track. The track itself is the caller's to stop.
   */
  unpublish(transceiver) {
    if (!this.#published.delete(transceiver)) return;
    if (!this.#closed && transceiver.currentDirection !== 'stopped') transceiver.stop();
  }

  /** The `source` our m-line `mid` publishes, if it is one of ours. */
  sourceOfMid(mid) {
    for (const [transceiver, source] of this.#published) {
      if (transceiver.mid === mid) return source;
    }
    return undefined;
  }

  /**
   * Applies `publisher_layers`: sends only the simulcast layers (`rids`) of our m-line `mid`
   * that some subscriber takes, and resumes the others as soon as they are listed again.
   */
  applyPublisherLayers({ mid, rids }) {
    if (!support.senderParameters) return;
    this.#enqueue(async () => {
      const transceiver = [...this.#published.keys()].find((t) => t.mid === mid);
      if (!transceiver) return;
      const parameters = transceiver.sender.getParameters();
      if (!parameters.encodings?.some((encoding) => encoding.rid)) return;
      let changed = false;
      for (const encoding of parameters.encodings) {
        const active = rids.includes(encoding.rid);
        if (encoding.active !== active) changed = true;
        encoding.active = active;
      }
      if (!changed) return;
      try {
        await transceiver.sender.setParameters(parameters);
      } catch (error) {
        // Not a negotiation failure: the layers keep being sent, which only costs upload.
        console.warn(`session: could not pause or resume layers of mid ${mid}: ${error.name}`, error);
      }
    });
  }

  /** Feeds in a server `offer`, `answer`, `candidate` or `negotiate_grant` message. */
  handleSignal(message) {
    switch (message.type) {
      case 'negotiate_grant':
        this.#onGrant();
        break;
      case 'offer':
        this.#enqueue(() => this.#onRemoteOffer(message.sdp));
        break;
      case 'answer':
        this.#enqueue(() => this.#onRemoteAnswer(message.sdp));
        break;
      case 'candidate':
        this.#enqueue(() => this.#onRemoteCandidate(message.candidate ?? null));
        break;
      default:
        throw new Error(`not a negotiation message: ${message.type}`);
    }
  }

  /**
   * After `resumed` on a new WebSocket: our offer (or lock request) may have been lost with
   * the old one, so it is made again, under a fresh lock. (A server offer that was
   * outstanding is sent again by the server.)
   */
  resync() {
    this.#enqueue(async () => {
      clearTimeout(this.#answerTimer);
      clearTimeout(this.#grantTimer);
      const offerLost = this.#pc.signalingState === 'have-local-offer';
      if (offerLost) await this.#pc.setLocalDescription({ type: 'rollback' });
      if (offerLost || this.#lockRequested || this.#hasUnnegotiatedTracks()) {
        this.#lockRequested = false;
        this.#requestOffer();
      }
    });
  }

  close() {
    this.#closed = true;
    clearTimeout(this.#grantTimer);
    clearTimeout(this.#answerTimer);
    clearTimeout(this.#disconnectedTimer);
    for (const transceiver of [...this.#remote.keys()]) this.#removeRemote(transceiver);
    this.#pc.close();
  }

  /**
   * Inbound stats of the remote track `trackId`: `{ width, height, fps, kbps, lossPercent,
   * jitterMs, framesDecoded, freezeCount }` (video fields null for audio), rates measured
   * since the previous call for that track; `null` when no receiver carries it.
   */
  async inboundStats(trackId) {
    const transceiver = [...this.#remote].find(([, entry]) => entry.trackId === trackId)?.[0];
    if (!transceiver || this.#closed) return null;
    // A reused receiver may still list the stream of the track it carried before.
    let report = null;
    for (const stat of (await transceiver.receiver.getStats()).values()) {
      if (stat.type !== 'inbound-rtp') continue;
      if (!report || (stat.lastPacketReceivedTimestamp ?? 0) > (report.lastPacketReceivedTimestamp ?? 0)) report = stat;
    }
    if (!report) return null;
    const rates = this.#rates(`in:${trackId}`, report.timestamp, {
      bytes: report.bytesReceived ?? 0,
      frames: report.framesDecoded ?? 0,
      lost: Math.max(0, report.packetsLost ?? 0),
      received: report.packetsReceived ?? 0,
    });
    const lostAndReceived = rates.lost + rates.received;
    return {
      width: report.frameWidth ?? null,
      height: report.frameHeight ?? null,
      fps: rates.seconds ? rates.frames / rates.seconds : (report.framesPerSecond ?? null),
      kbps: rates.seconds ? (rates.bytes * 8) / 1000 / rates.seconds : null,
      lossPercent: lostAndReceived ? (100 * rates.lost) / lostAndReceived : 0,
      jitterMs: report.jitter === undefined ? null : report.jitter * 1000,
      framesDecoded: report.framesDecoded ?? null,
      freezeCount: report.freezeCount ?? null,
    };
  }

  /**
   * What we send: `{ rttMs, outKbps, availableOutKbps, qualityLimitation, layers: [{ rid,
   * width, height, fps, active }] }`, `layers` being the camera's simulcast layers and
   * `outKbps` measured since the previous call; `null` once closed.
   */
  async outboundStats() {
    if (this.#closed) return null;
    const stats = await this.#pc.getStats();
    const pair = selectedCandidatePair(stats);
    const camera = [...this.#published].find(([, source]) => source === 'camera')?.[0];
    const cameraMid = camera?.mid ?? null;
    const encodings = camera?.sender.getParameters().encodings ?? [];
    const layers = [];
    let bytesSent = 0;
    for (const report of stats.values()) {
      if (report.type !== 'outbound-rtp') continue;
      bytesSent += report.bytesSent ?? 0;
      if (report.kind === 'video' && report.mid === cameraMid) layers.push(report);
    }
    layers.sort((x, y) => RID_ORDER.indexOf(x.rid) - RID_ORDER.indexOf(y.rid));
    const rates = this.#rates('out', performance.now(), { bytes: bytesSent });
    // The highest layer being sent says best why the camera is not at its full quality.
    const top = [...layers].reverse().find((report) => layerActive(report, encodings)) ?? layers.at(-1);
    return {
      rttMs: pair?.currentRoundTripTime === undefined ? null : pair.currentRoundTripTime * 1000,
      outKbps: rates.seconds ? (rates.bytes * 8) / 1000 / rates.seconds : null,
      availableOutKbps: pair?.availableOutgoingBitrate === undefined ? null : pair.availableOutgoingBitrate / 1000,
      qualityLimitation: top?.qualityLimitationReason ?? null,
      layers: layers.map((report) => ({
        rid: report.rid ?? null,
        width: report.frameWidth ?? null,
        height: report.frameHeight ?? null,
        fps: report.framesPerSecond ?? null,
        active: layerActive(report, encodings),
      })),
    };
  }

  /**
   * Increases of the counters `values` (the first one being bytes) since the previous
   * sample under `key` (taken at `timestamp`, in ms), plus `seconds` between them; on the
   * first sample, the totals and 0 seconds.
   */
  #rates(key, timestamp, values) {
    const previous = this.#lastSamples.get(key);
    this.#lastSamples.set(key, { timestamp, values });
    const rates = { ...values, seconds: 0 };
    // Fewer bytes than before: another stream (a reused receiver), start over.
    if (!previous || values.bytes < previous.values.bytes) return rates;
    rates.seconds = Math.max(0, (timestamp - previous.timestamp) / 1000);
    for (const [name, value] of Object.entries(values)) rates[name] = Math.max(0, value - previous.values[name]);
    return rates;
  }

  #onConnectionState() {
    const state = this.#pc.connectionState;
    clearTimeout(this.#disconnectedTimer);
    if (state === 'failed') {
      this.#restartIce();
    } else if (state === 'disconnected') {
      this.#disconnectedTimer = setTimeout(() => {
        if (this.#pc.connectionState === 'disconnected') this.#restartIce();
      }, DISCONNECTED_RESTART_MS);
    }
    this.dispatchEvent(new CustomEvent('connectionstate', { detail: state }));
  }

  /** New ICE credentials; `negotiationneeded` follows and our offer carries them. */
  #restartIce() {
    if (this.#closed || !support.restartIce) return;
    console.info(`session: media connection ${this.#pc.connectionState}, restarting ICE`);
    this.#pc.restartIce();
  }

  #enqueue(step) {
    this.#chain = this.#chain
      .then(() => (this.#closed ? undefined : step()))
      .catch((error) => {
        if (!this.#closed) this.dispatchEvent(new CustomEvent('failure', { detail: error }));
      });
  }

  /** We have something to offer: ask for the lock; the offer follows the grant. */
  #requestOffer() {
    if (this.#lockRequested) return;
    this.#lockRequested = true;
    this.#send({ type: 'negotiate_request' });
    clearTimeout(this.#grantTimer);
    this.#grantTimer = setTimeout(() => {
      console.warn('session: no negotiate_grant, offering without it');
      this.#onGrant();
    }, GRANT_TIMEOUT_MS);
  }

  #onGrant() {
    clearTimeout(this.#grantTimer);
    // A grant after we gave up waiting for it: the offer we made meanwhile used it up.
    if (!this.#lockRequested) return;
    this.#lockRequested = false;
    this.#enqueue(() => this.#makeOffer());
  }

  async #makeOffer() {
    // Our previous offer is still unanswered; its answer triggers the next one if needed.
    if (this.#pc.signalingState !== 'stable') return;
    await this.#pc.setLocalDescription();
    const tracks = [];
    for (const [transceiver, source] of this.#published) {
      if (transceiver.mid !== null) tracks.push({ mid: transceiver.mid, source });
    }
    this.#send({ type: 'offer', sdp: this.#pc.localDescription.sdp, tracks });
    clearTimeout(this.#answerTimer);
    this.#answerTimer = setTimeout(() => this.#enqueue(() => this.#onAnswerTimeout()), ANSWER_TIMEOUT_MS);
    // Chrome can end up gathering no candidates at all if an offer is rolled back (by a
    // colliding server offer, next on our chain) before it produced its first candidate:
    // the replacement transport then stays in `gathering` for good. So the chain waits
    // for that first candidate (a few milliseconds, normally). Only matters without the lock.
    await this.#gatheringStarted();
  }

  #gatheringStarted() {
    const ufrag = /^a=ice-ufrag:(\S+)/m.exec(this.#pc.localDescription?.sdp ?? '')?.[1];
    const started = () => this.#pc.iceGatheringState === 'complete' || this.#gatheredUfrags.has(ufrag);
    if (!ufrag || started()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!started()) return;
        clearTimeout(timer);
        this.#pc.removeEventListener('icecandidate', check);
        this.#pc.removeEventListener('icegatheringstatechange', check);
        resolve();
      };
      const timer = setTimeout(() => {
        console.warn('session: no local ICE candidate yet, carrying on');
        this.#pc.removeEventListener('icecandidate', check);
        this.#pc.removeEventListener('icegatheringstatechange', check);
        resolve();
      }, GATHERING_START_TIMEOUT_MS);
      this.#pc.addEventListener('icecandidate', check);
      this.#pc.addEventListener('icegatheringstatechange', check);
    });
  }

  async #onAnswerTimeout() {
    if (this.#pc.signalingState !== 'have-local-offer') return;
    console.warn('session: no answer to our offer, rolling back and offering again');
    await this.#pc.setLocalDescription({ type: 'rollback' });
    this.#requestOffer();
  }

  async #onRemoteOffer(sdp) {
    const collided = this.#pc.signalingState === 'have-local-offer';
    if (collided) clearTimeout(this.#answerTimer);
    // Implicit rollback of our pending offer, if any.
    await this.#pc.setRemoteDescription({ type: 'offer', sdp });
    await this.#flushCandidates();
    await this.#pc.setLocalDescription();
    this.#send({ type: 'answer', sdp: this.#pc.localDescription.sdp });
    // The server drops an offer that collides with its own, so whatever we had pending
    // (or added meanwhile) still needs an offer of ours.
    if (collided || this.#hasUnnegotiatedTracks()) this.#requestOffer();
  }

  async #onRemoteAnswer(sdp) {
    if (this.#pc.signalingState !== 'have-local-offer') {
      console.warn(`session: ignoring an answer in signaling state ${this.#pc.signalingState}`);
      return;
    }
    clearTimeout(this.#answerTimer);
    await this.#pc.setRemoteDescription({ type: 'answer', sdp });
    await this.#flushCandidates();
    if (this.#hasUnnegotiatedTracks()) this.#requestOffer();
  }

  async #onRemoteCandidate(candidate) {
    if (!this.#pc.remoteDescription) {
      this.#pendingCandidates.push(candidate);
      return;
    }
    await this.#addCandidate(candidate);
  }

  async #flushCandidates() {
    const pending = this.#pendingCandidates;
    this.#pendingCandidates = [];
    for (const candidate of pending) await this.#addCandidate(candidate);
  }

  async #addCandidate(candidate) {
    try {
      // `null` and an empty candidate string both mean end-of-candidates.
      if (candidate === null || !candidate.candidate) {
        await this.#pc.addIceCandidate();
      } else {
        await this.#pc.addIceCandidate(candidate);
      }
    } catch (error) {
      // A candidate for a description that has since changed; harmless.
      console.warn('session: remote candidate not applied', candidate, error);
    }
  }

  /** Whether one of our sending transceivers has never been through an offer/answer. */
  #hasUnnegotiatedTracks() {
    for (const transceiver of this.#published.keys()) {
      if (transceiver.direction !== 'stopped' && transceiver.currentDirection === null) return true;
    }
    return false;
  }

  #onTrack({ transceiver, track, streams }) {
    const stream = streams[0];
    const msid = msidOf(this.#pc.remoteDescription?.sdp ?? '', transceiver.mid);
    const participantId = stream?.id ?? msid?.streamId;
    const trackId = msid?.trackId ?? track.id;
    if (!participantId || participantId === '-') {
      console.warn('session: remote track without a publisher id (msid)', transceiver.mid);
      return;
    }
    // The server reuses receivers: this one may have carried another publisher's track.
    const previous = this.#remote.get(transceiver);
    if (previous && previous.participantId === participantId && previous.trackId === trackId) return;
    if (previous) this.#removeRemote(transceiver);

    const entry = { participantId, trackId, kind: track.kind, mid: transceiver.mid, track };
    this.#remote.set(transceiver, entry);
    if (stream) this.#watchStream(stream);
    this.#watchTrack(track);
    this.dispatchEvent(new CustomEvent('remotetrack', { detail: { ...entry } }));
    if (track.muted) this.#emitMute(entry, true);
  }

  #watchStream(stream) {
    if (this.#watchedStreams.has(stream)) return;
    this.#watchedStreams.add(stream);
    // The server set the receiver inactive (unpublished, or the publisher left).
    stream.addEventListener('removetrack', ({ track }) => {
      const transceiver = this.#transceiverCarrying(track);
      if (transceiver && this.#remote.get(transceiver).participantId === stream.id) {
        this.#removeRemote(transceiver);
      }
    });
  }

  #watchTrack(track) {
    if (this.#watchedTracks.has(track)) return;
    this.#watchedTracks.add(track);
    // Receivers (and so their tracks) outlive publishers; look up who it carries now.
    const current = () => {
      const transceiver = this.#transceiverCarrying(track);
      return transceiver ? this.#remote.get(transceiver) : undefined;
    };
    track.addEventListener('mute', () => {
      const entry = current();
      if (entry) this.#emitMute(entry, true);
    });
    track.addEventListener('unmute', () => {
      const entry = current();
      if (entry) this.#emitMute(entry, false);
    });
    track.addEventListener('ended', () => {
      const transceiver = this.#transceiverCarrying(track);
      if (transceiver) this.#removeRemote(transceiver);
    });
  }

  #transceiverCarrying(track) {
    for (const [transceiver, entry] of this.#remote) {
      if (entry.track === track) return transceiver;
    }
    return undefined;
  }

  #emitMute(entry, muted) {
    this.dispatchEvent(new CustomEvent('remotetrackmute', { detail: { ...entry, muted } }));
  }

  #removeRemote(transceiver) {
    const entry = this.#remote.get(transceiver);
    if (!entry) return;
    this.#remote.delete(transceiver);
    this.#lastSamples.delete(`in:${entry.trackId}`);
    this.dispatchEvent(new CustomEvent('remotetrackremoved', { detail: { ...entry } }));
  }
}

/**
 * The `a=msid:<stream id> <track id>` of the media section with `a=mid:<mid>`; the
 * server sets them to the publisher's participant id and the Track id.
 */
export function msidOf(sdp, mid) {
  if (mid === null) return undefined;
  for (const section of sdp.split(/\r?\n(?=m=)/).slice(1)) {
    const lines = section.split(/\r?\n/);
    if (!lines.includes(`a=mid:${mid}`)) continue;
    for (const line of lines) {
      const match = /^a=msid:(\S+)(?: (\S+))?/.exec(line);
      if (match) return { streamId: match[1], trackId: match[2] };
    }
    return undefined;
  }
  return undefined;
}
