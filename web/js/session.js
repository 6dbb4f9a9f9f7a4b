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

/** How long we wait for `negotiate_grant` before offering without it. */
const GRANT_TIMEOUT_MS = 3_000;
/** How long we wait for an answer before assuming our offer was dropped and re-offering. */
const ANSWER_TIMEOUT_MS = 10_000;
/** The most we hold other negotiation steps while a new offer's ICE gathering starts. */
const GATHERING_START_TIMEOUT_MS = 2_000;

export class Session extends EventTarget {
  #pc;
  #send;
  #chain = Promise.resolve();
  #closed = false;
  /** We sent `negotiate_request` and have not offered since. */
  #lockRequested = false;
  #grantTimer = null;
  #answerTimer = null;
  #pendingCandidates = [];
  /** Our sending transceivers and the `source` each one publishes. */
  #published = new Map();
  /** Receiving transceiver → what it currently carries: `{ participantId, trackId, kind, mid, track }`. */
  #remote = new Map();
  /** ICE usernames (ufrags) that have produced at least one local candidate. */
  #gatheredUfrags = new Set();
  #watchedStreams = new WeakSet();
  #watchedTracks = new WeakSet();

  /**
   * Events: `remotetrack` and `remotetrackremoved` (`detail`: `{ participantId, trackId,
   * kind, mid, track }`), `remotetrackmute` (same plus `muted`), `connectionstate`
   * (`detail`: the PeerConnection's `connectionState`), `failure` (`detail`: an Error from
   * a negotiation step).
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
    this.#pc.addEventListener('connectionstatechange', () => {
      this.dispatchEvent(new CustomEvent('connectionstate', { detail: this.#pc.connectionState }));
    });
  }

  get pc() {
    return this.#pc;
  }

  get connectionState() {
    return this.#pc.connectionState;
  }

  /** Starts sending `track` on a new `sendonly` transceiver; the offer follows by itself. */
  publish(track, source) {
    const transceiver = this.#pc.addTransceiver(track, { direction: 'sendonly' });
    this.#published.set(transceiver, source);
    return transceiver;
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

  close() {
    this.#closed = true;
    clearTimeout(this.#grantTimer);
    clearTimeout(this.#answerTimer);
    for (const transceiver of [...this.#remote.keys()]) this.#removeRemote(transceiver);
    this.#pc.close();
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
