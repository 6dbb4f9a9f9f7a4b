// One visit to a room: the signaling connection (join, resume, re-join), the PeerConnection,
// our local media (microphone, camera, screen) and what we know about the others. No DOM
// here: the UI calls the methods and listens to the events (docs/web-client.md, "Meeting").

import { Signaling } from './signaling.js';
import { Session } from './session.js';
import { support } from './support.js';
import {
  captureCamera,
  captureMicrophone,
  captureCameraAndMicrophone,
  captureScreen,
  captureErrorMessage,
  isCancelledCapture,
} from './media.js';

/** Waits between reconnection attempts after the WebSocket dropped; the last one repeats. */
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000];
/** How long we try to get the session back before giving up. */
const RECONNECT_GIVE_UP_MS = 30_000;
/** Chat messages kept while reconnecting; more are dropped. */
const MAX_UNSENT_CHAT = 20;

/** What to tell the user when the server refuses our `join`, by error code. */
const REFUSALS = {
  room_full: 'This meeting is full.',
  room_locked: 'This meeting is locked: a host is not letting anyone else join.',
  unauthorized: 'You are not allowed to join this meeting: your invitation (token) is missing, expired or for another meeting.',
  rate_limited: 'Too many attempts to join. Wait a moment and try again.',
  bad_request: 'The meeting name or your name is not valid.',
};

/** What to tell the user when the meeting ends for them, by reason. */
const ENDINGS = {
  left: 'You left the meeting.',
  kicked: 'A host removed you from the meeting.',
  room_ended: 'A host ended the meeting for everyone.',
  server_shutdown: 'The server is shutting down. Try joining again in a moment.',
  disconnected: 'The connection to the server was lost and could not be restored.',
};

/** The device a local source captures from. */
const DEVICE_KIND = { microphone: 'audioinput', camera: 'videoinput' };

/**
 * One visit to a room. Events (`event.detail`): `joined`, `resumed`, `participant`,
 * `participantleft`, `selfrole`, `localmedia`, `remotetrack`, `remotetrackremoved`,
 * `trackmuted` (a server `track_muted`, or a video's media stopped/came back: `muted` is true
 * while either says so), `trackpaused`, `trackunsupported`, `speakers`, `audiencecount`, `roomlocked`, `chat`,
 * `connection`, `problem`, `ended`; see docs/web-client.md for their details. The public
 * fields are for reading only.
 */
export class Meeting extends EventTarget {
  participantId = null;
  room;
  /** Our role: the one asked for until `joined` says which we got. */
  role;
  roomSettings;
  roomLocked = false;
  /** id → `{ id, name, role, tracks: Map<trackId, Track> }`, ourselves excluded. */
  participants = new Map();
  /** Our microphone and camera tracks (a new MediaStream whenever they change), or null. */
  localStream = null;
  micOn = false;
  cameraOn = false;
  chat = [];
  problems = [];
  session = null;

  #name;
  #token;
  #requestedRole;
  #signaling = null;
  #signalingState = 'connecting';
  /** Chat typed while reconnecting, sent once we are back. */
  #unsentChat = [];
  #sessionToken = null;
  #ended = false;
  /** While the WebSocket is being re-established: `{ attempt, timer, giveUpTimer }`. */
  #reconnect = null;
  /** Set by `reconnect` (a draining node): the next reconnect joins afresh, not resumes. */
  #rejoin = false;
  /**
   * The signaling URL we connect to: `undefined` for the page's own server, or the node a
   * draining node named in `reconnect` (a page served by that node has nowhere else to go
   * once it exits), or, while the node we used does not answer, one of `#nodeUrls` (see
   * `#nextUrl`).
   */
  #url = undefined;
  /**
   * A cluster's serving nodes' signaling URLs (`/api/cluster/urls` of the page's own server,
   * read at each join and resume); empty on a single node. When the node we use stops
   * answering, the page's own server is tried first, then each of these in turn.
   */
  #nodeUrls = [];
  /** Participants that left: their late media events are dropped, not shown. */
  #departed = new Set();
  /**
   * id → `'joined'` or `'left'`, from messages on this connection that came before its
   * `joined` / `resumed` (the server may send them first): that message's list is older.
   */
  #early = new Map();
  /** trackId → the `remotetrack` detail emitted for it (until `remotetrackremoved`). */
  #shown = new Map();
  /** source (`microphone`, `camera`, `screen`) → our sending transceiver. */
  #senders = new Map();
  /** Our published tracks, trackId → `{ source, mid, muted, pending }` (`muted` as the server has it). */
  #ownTracks = new Map();
  #screenStream = null;
  /** Our devices were captured, handed over or chosen: `joined` (or a re-join) publishes them, it does not capture again. */
  #captured = false;
  #deviceIds = { audioinput: undefined, videoinput: undefined };
  /** trackId → the last `set_quality` we sent for it. */
  #quality = new Map();
  /** trackId → the simulcast rid we receive of it (`track_layer`). */
  #layers = new Map();
  /** trackId → the codec its publisher sends that our connection cannot take (`track_unsupported`). */
  #unsupported = new Map();
  /** The server's `audience_count` (sent to audience members only). */
  #serverAudienceCount = 0;
  #lastAudienceCount = 0;
  #lastConnection = '';
  /** Local media changes run one at a time, in call order. */
  #mediaQueue = Promise.resolve();

  /**
   * @param {{ room: string, name: string, role?: 'host'|'presenter'|'audience', token?: string,
   *   localStream?: MediaStream|null, roomSettings?: object }} options
   */
  constructor({ room, name, role, token, localStream = null, roomSettings } = {}) {
    super();
    this.room = room;
    this.#name = name;
    this.role = role;
    this.#requestedRole = role;
    this.#token = token;
    this.roomSettings = roomSettings ?? null;
    if (localStream) this.#adoptStream(localStream);
  }

  get isHost() {
    return this.role === 'host';
  }

  /** Whether our role may publish (an unknown role is taken to: the server decides at `joined`). */
  get publishes() {
    return this.role !== 'audience';
  }

  get screenSharing() {
    return this.#screenStream !== null;
  }

  get screenStream() {
    return this.#screenStream;
  }

  /** Audience members in the room: the server's count for the audience, our own otherwise. */
  get audienceCount() {
    if (this.role === 'audience') return this.#serverAudienceCount;
    let count = 0;
    for (const participant of this.participants.values()) if (participant.role === 'audience') count += 1;
    return count;
  }

  /** `'connecting' | 'open' | 'reconnecting' | 'closed'`. */
  get signalingState() {
    return this.#signalingState;
  }

  /** The PeerConnection's `connectionState`, or `'new'` before there is one. */
  get mediaState() {
    return this.session?.connectionState ?? 'new';
  }

  // ---- Methods for the UI. ----

  /** Opens the WebSocket and sends `join`. */
  start() {
    if (this.#signaling || this.#ended) return;
    this.#connect();
    this.#sendJoin();
    this.#emitConnection();
  }

  leave() {
    if (this.#ended) return;
    this.#send({ type: 'leave' });
    this.#end('left');
  }

  /** Sends a chat message; while reconnecting it waits (a few at most) and goes out once back. */
  sendChat(text) {
    if (typeof text !== 'string' || !text.trim()) return;
    if (this.#inRoom()) {
      this.#send({ type: 'chat', text });
    } else if (!this.#ended && this.#signalingState === 'reconnecting' && this.#unsentChat.length < MAX_UNSENT_CHAT) {
      this.#unsentChat.push(text);
    }
  }

  /** Turns the microphone on or off; resolves to whether it is on. */
  setMicrophone(on) {
    return this.#queueMedia(() => this.#setMicrophone(Boolean(on)), () => this.micOn);
  }

  /** Turns the camera on (capturing again) or off (light off); resolves to whether it is on. */
  setCamera(on) {
    return this.#queueMedia(() => this.#setCamera(Boolean(on)), () => this.cameraOn);
  }

  /** Shares a screen, window or tab; resolves to whether sharing started. */
  startScreenShare() {
    return this.#queueMedia(() => this.#startScreenShare(), () => false);
  }

  stopScreenShare() {
    return this.#queueMedia(() => this.#stopScreenShare(), () => undefined);
  }

  /** Captures from another device (`'audioinput'` or `'videoinput'`) and sends that instead. */
  switchDevice(kind, deviceId) {
    return this.#queueMedia(() => this.#switchDevice(kind, deviceId), () => undefined);
  }

  /** Asks for a quality (`low`, `medium`, `high`, `off`) of a remote track; only changes are sent. */
  setQuality(trackId, quality) {
    if (this.#ended || !this.#remoteTrack(trackId) || this.#quality.get(trackId) === quality) return;
    this.#quality.set(trackId, quality);
    this.#send({ type: 'set_quality', track_id: trackId, quality });
  }

  muteParticipant(id, kind) {
    this.#moderate({ type: 'mute_participant', participant_id: id, kind, muted: true });
  }

  kick(id) {
    this.#moderate({ type: 'kick', participant_id: id });
  }

  setRole(id, role) {
    this.#moderate({ type: 'set_role', participant_id: id, role });
  }

  setRoomLocked(locked) {
    this.#moderate({ type: locked ? 'lock_room' : 'unlock_room' });
  }

  endRoom() {
    this.#moderate({ type: 'end_room' });
  }

  /** Inbound stats of a remote track (see Session.inboundStats) plus `layer`, the rid we get. */
  async trackStats(trackId) {
    const stats = await this.session?.inboundStats(trackId);
    return stats ? { ...stats, layer: this.#layers.get(trackId) ?? null } : null;
  }

  /** What we send (see Session.outboundStats). */
  async localStats() {
    return (await this.session?.outboundStats()) ?? null;
  }

  // ---- The WebSocket: join, resume, reconnect. ----

  #connect() {
    const signaling = new Signaling(this.#url);
    this.#signaling = signaling;
    // Events of a replaced socket are stale.
    signaling.addEventListener('message', (event) => {
      if (signaling === this.#signaling) this.#onMessage(event.detail);
    });
    signaling.addEventListener('close', (event) => {
      if (signaling === this.#signaling) this.#onSocketClosed(event.detail);
    });
  }

  /**
   * `join`, first or again after a refused resume. Joining again asks for the role we had
   * (a host may have changed it), except with a token, whose role is the most we may ask for.
   */
  #sendJoin() {
    this.#early.clear();
    const join = { type: 'join', room: this.room, name: this.#name };
    const role = this.participantId && !this.#token ? this.role : this.#requestedRole;
    if (role) join.role = role;
    if (this.#token) join.token = this.#token;
    // Only honoured when this join creates the room (as a host): harmless otherwise.
    if (this.roomSettings) join.room_settings = this.roomSettings;
    this.#send(join);
  }

  /**
   * Sends on the current WebSocket. While we wait for our session back, only `resume` and
   * `join` go out (the rest would reach a connection that has not resumed yet); what
   * matters is sent again after `resumed` (offers, `mute`, `set_quality`).
   */
  #send(message) {
    if (this.#signalingState === 'reconnecting' && message.type !== 'resume' && message.type !== 'join') return;
    this.#signaling?.send(message);
  }

  /** Whether we are in the room now (joined, and not waiting to get the session back). */
  #inRoom() {
    return !this.#ended && this.#signalingState === 'open';
  }

  #onSocketClosed({ code, reason, opened = true }) {
    if (this.#ended) return;
    // The node a `reconnect` named is not reachable from here (behind a load balancer,
    // say): the page's own server is next.
    if (!opened) this.#url = this.#nextUrl();
    if (!this.#sessionToken) {
      const detail = `${code}${reason ? `: ${reason}` : ''}`;
      this.#end('disconnected', 'disconnected', `Could not connect to the server (${detail}).`);
      return;
    }
    this.#scheduleReconnect();
  }

  /** After a connection that never opened: the page's own server, then each other node in turn. */
  #nextUrl() {
    const candidates = [undefined, ...this.#nodeUrls];
    return candidates[(candidates.indexOf(this.#url) + 1) % candidates.length];
  }

  /** Reads the cluster's serving nodes from the page's own server (nothing on a single node). */
  #learnNodes() {
    if (!globalThis.location?.origin || typeof fetch !== 'function') return;
    fetch(new URL('/api/cluster/urls', globalThis.location.origin))
      .then((reply) => (reply.ok ? reply.json() : null))
      .then((body) => {
        if (!Array.isArray(body?.urls)) return;
        this.#nodeUrls = body.urls.filter((url) => typeof url === 'string' && /^wss?:\/\//.test(url));
      })
      .catch(() => {});
  }

  /** Opens a new WebSocket after the next backoff delay and asks for our session back. */
  #scheduleReconnect() {
    if (!this.#reconnect) {
      this.#reconnect = {
        attempt: 0,
        timer: null,
        giveUpTimer: setTimeout(() => this.#end('disconnected'), RECONNECT_GIVE_UP_MS),
      };
      this.#setSignalingState('reconnecting');
    }
    const reconnect = this.#reconnect;
    const delay = RECONNECT_DELAYS_MS[Math.min(reconnect.attempt, RECONNECT_DELAYS_MS.length - 1)];
    reconnect.attempt += 1;
    reconnect.timer = setTimeout(() => {
      this.#connect();
      this.#early.clear();
      if (this.#rejoin) {
        // The server said `reconnect` (its node is draining): a fresh join, which lands
        // on a node that stays, with our local media.
        this.#rejoin = false;
        this.#sendJoin();
      } else {
        this.#send({ type: 'resume', session_token: this.#sessionToken });
      }
    }, delay);
  }

  #stopReconnecting() {
    if (!this.#reconnect) return;
    clearTimeout(this.#reconnect.timer);
    clearTimeout(this.#reconnect.giveUpTimer);
    this.#reconnect = null;
  }

  // ---- Server messages. ----

  #onMessage(message) {
    if (this.#ended) return;
    switch (message.type) {
      case 'joined':
        this.#onJoined(message);
        break;
      case 'resumed':
        this.#onResumed(message);
        break;
      case 'participant_joined':
        this.#noteEarly(message.participant?.id, 'joined');
        this.#upsertParticipant(message.participant);
        break;
      case 'participant_left':
        this.#noteEarly(message.participant_id, 'left');
        this.#removeParticipant(message.participant_id);
        break;
      case 'track_published':
        this.#onTrackPublished(message.participant_id, message.track);
        break;
      case 'track_unpublished':
        this.participants.get(message.participant_id)?.tracks.delete(message.track_id);
        this.#dropRemoteTrack(message.participant_id, message.track_id);
        break;
      case 'published':
        this.#onPublished(message.mid, message.track);
        break;
      case 'offer':
      case 'answer':
      case 'candidate':
      case 'negotiate_grant':
        if (this.session) this.session.handleSignal(message);
        break;
      case 'publisher_layers':
        this.session?.applyPublisherLayers(message);
        break;
      case 'track_layer':
        this.#layers.set(message.track_id, message.rid ?? null);
        break;
      case 'track_muted':
        this.#onTrackMuted(message);
        break;
      case 'track_paused':
      case 'track_resumed':
        this.#emit('trackpaused', { trackId: message.track_id, paused: message.type === 'track_paused' });
        break;
      case 'track_unsupported':
        this.#unsupported.set(message.track_id, message.codec ?? 'unknown');
        this.#emit('trackunsupported', {
          trackId: message.track_id,
          codec: message.codec ?? 'unknown',
          receivable: message.receivable ?? [],
        });
        this.#showSignalledMute(message.track_id);
        break;
      case 'active_speakers':
        this.#emit('speakers', {
          speakers: (message.speakers ?? []).map((s) => ({ participantId: s.participant_id, level: s.level })),
        });
        break;
      case 'audience_count':
        this.#serverAudienceCount = message.count;
        this.#updateAudienceCount();
        break;
      case 'role_changed':
        this.#onRoleChanged(message.participant_id, message.role);
        break;
      case 'room_locked':
        this.roomLocked = Boolean(message.locked);
        this.#emit('roomlocked', { locked: this.roomLocked });
        break;
      case 'room_ended':
        this.#end('room_ended');
        break;
      case 'reconnect':
        // The server closes the socket next; the reconnect that follows joins afresh, at
        // the node it names if it names one.
        this.#rejoin = true;
        if (typeof message.url === 'string' && /^wss?:\/\//.test(message.url)) this.#url = message.url;
        break;
      case 'chat':
        this.#onChat(message);
        break;
      case 'error':
        this.#onError(message.code ?? 'error', message.message ?? '');
        break;
      default:
        console.debug('meeting: ignoring message type', message.type);
    }
  }

  /** `joined`: the first one, or a fresh one after the server refused to resume. */
  #onJoined(message) {
    this.#stopReconnecting();
    this.participantId = message.participant_id;
    this.room = message.room ?? this.room;
    this.role = message.role ?? this.#requestedRole ?? 'presenter';
    this.roomSettings = message.room_settings ?? this.roomSettings;
    this.#sessionToken = message.session_token ?? null;
    this.#startSession(message.ice_servers ?? []);
    this.#setSignalingState('open');
    this.#emit('joined', { participantId: this.participantId, room: this.room, role: this.role, roomSettings: this.roomSettings });
    this.#flushUnsentChat();
    this.#syncParticipants(message.participants ?? []);
    this.#learnNodes();
    this.#queueMedia(() => (this.publishes ? this.#startPublishing() : this.#stopPublishing()), () => undefined);
  }

  /** `resumed`: the same session on a new WebSocket; catch up with what we missed. */
  #onResumed(message) {
    this.#stopReconnecting();
    this.#sessionToken = message.session_token;
    // Fresh TURN credentials (they expire): an ICE restart from here on uses them.
    if (message.ice_servers?.length) this.session?.setIceServers(message.ice_servers);
    this.#syncParticipants(message.participants ?? []);
    if (message.role && message.role !== this.role) this.#onRoleChanged(this.participantId, message.role);
    this.#setSignalingState('open');
    this.session?.resync();
    this.#resendState();
    this.#flushUnsentChat();
    this.#learnNodes();
    this.#emit('resumed', {});
  }

  /** Chat typed while reconnecting goes out now, in order. */
  #flushUnsentChat() {
    for (const text of this.#unsentChat.splice(0)) this.#send({ type: 'chat', text });
  }

  #onError(code, serverMessage) {
    if (code === 'session_expired' && this.#reconnect) {
      // Our session is gone: join afresh on this socket, keeping our local media.
      this.#sendJoin();
      return;
    }
    if (code === 'kicked' || code === 'server_shutdown') {
      this.#end(code);
      return;
    }
    if (!this.participantId) {
      this.#end('refused', code, refusalMessage(code, serverMessage));
      return;
    }
    if (this.#reconnect && code in REFUSALS) {
      // The fresh join after a refused resume was refused.
      this.#end('disconnected', code, refusalMessage(code, serverMessage));
      return;
    }
    // The server refused what we send ("… the sending m-lines are inactive").
    if (code === 'forbidden' && serverMessage.includes('m-lines')) {
      this.#problem(code, this.role === 'audience'
        ? 'Only presenters can share their camera, microphone or screen in this webinar.'
        : 'This meeting already has as many presenters as it allows: your camera, microphone and screen are not shared.');
      this.#queueMedia(() => this.#stopPublishing(), () => undefined);
      return;
    }
    if (code === 'forbidden') {
      this.#problem(code, 'Only hosts can do that.');
      return;
    }
    this.#problem(code, serverMessage || `The server refused a request (${code}).`);
  }

  #onChat(message) {
    const entry = {
      participantId: message.participant_id,
      name: message.name,
      text: message.text,
      ts: message.ts,
      mine: message.participant_id === this.participantId,
    };
    this.chat.push(entry);
    this.#emit('chat', entry);
  }

  /** After `resumed`: what we may have said while the socket was down, said again. */
  #resendState() {
    for (const [trackId, quality] of this.#quality) this.#send({ type: 'set_quality', track_id: trackId, quality });
    for (const [trackId, own] of this.#ownTracks) {
      // Echoes still due for the old socket were lost with it: this one is the only one.
      own.muted = this.#wantsMuted(own.source);
      own.pending = 1;
      this.#send({ type: 'mute', track_id: trackId, muted: own.muted });
    }
  }

  // ---- Participants and their tracks. ----

  #noteEarly(id, what) {
    if (id && this.#signalingState !== 'open') this.#early.set(id, what);
  }

  /**
   * Makes `participants` the room's list (after `joined` / `resumed`), emitting the
   * differences; joins and leaves that came just before the list are newer than it.
   */
  #syncParticipants(list) {
    const present = new Set();
    for (const participant of list) {
      if (participant.id === this.participantId || this.#early.get(participant.id) === 'left') continue;
      present.add(participant.id);
      this.#upsertParticipant(participant);
    }
    for (const id of [...this.participants.keys()]) {
      if (!present.has(id) && this.#early.get(id) !== 'joined') this.#removeParticipant(id);
    }
    this.#early.clear();
  }

  /** A participant joined, or is listed again: record it and announce what changed. */
  #upsertParticipant(participant) {
    if (!participant?.id || participant.id === this.participantId) return;
    const tracks = new Map((participant.tracks ?? []).map((track) => [track.id, { ...track, muted: Boolean(track.muted) }]));
    const known = this.participants.get(participant.id);
    this.#departed.delete(participant.id);
    if (!known) {
      this.participants.set(participant.id, { id: participant.id, name: participant.name, role: participant.role, tracks });
      this.#emit('participant', { id: participant.id, name: participant.name, role: participant.role });
      this.#updateAudienceCount();
      return;
    }
    for (const trackId of known.tracks.keys()) {
      if (!tracks.has(trackId)) this.#dropRemoteTrack(participant.id, trackId);
    }
    for (const [trackId, track] of tracks) {
      const before = known.tracks.get(trackId);
      if (before && before.muted !== track.muted) {
        this.#emit('trackmuted', { participantId: participant.id, trackId, kind: track.kind, muted: track.muted });
      }
    }
    known.tracks = tracks;
    if (known.role !== participant.role || known.name !== participant.name) {
      known.role = participant.role;
      known.name = participant.name;
      this.#emit('participant', { id: known.id, name: known.name, role: known.role });
      this.#updateAudienceCount();
    }
  }

  #removeParticipant(id) {
    const participant = this.participants.get(id);
    if (!participant) return;
    // Its tracks end with it (no `track_unpublished` follows).
    for (const [trackId, shown] of this.#shown) {
      if (shown.participantId === id) this.#dropRemoteTrack(id, trackId);
    }
    this.participants.delete(id);
    this.#departed.add(id);
    this.#emit('participantleft', { id });
    this.#updateAudienceCount();
  }

  #onTrackPublished(participantId, track) {
    const participant = this.participants.get(participantId);
    if (!participant || !track?.id) return;
    const entry = { ...track, muted: Boolean(track.muted) };
    participant.tracks.set(track.id, entry);
    // The media may have come first, shown under a guessed source: show it again, right.
    const shown = this.#shown.get(track.id);
    if (shown && (shown.source !== entry.source || shown.muted !== entry.muted)) {
      this.#showRemoteTrack({ ...shown, source: entry.source, muted: entry.muted });
    }
  }

  #onTrackMuted({ participant_id: participantId, track_id: trackId, muted }) {
    if (participantId === this.participantId) {
      this.#onOwnTrackMuted(trackId, Boolean(muted));
      return;
    }
    const track = this.#remoteTrack(trackId);
    if (!track && !this.#shown.has(trackId)) return;
    if (track) track.muted = Boolean(muted);
    const kind = track?.kind ?? this.#shown.get(trackId).kind;
    this.#emit('trackmuted', { participantId, trackId, kind, muted: Boolean(muted) });
  }

  #onRoleChanged(participantId, role) {
    if (participantId !== this.participantId) {
      const participant = this.participants.get(participantId);
      if (!participant || participant.role === role) return;
      participant.role = role;
      this.#emit('participant', { id: participant.id, name: participant.name, role });
      this.#updateAudienceCount();
      return;
    }
    if (role === this.role) return;
    const published = this.publishes;
    this.role = role;
    this.#emit('selfrole', { role });
    this.#updateAudienceCount();
    if (published !== this.publishes) {
      this.#queueMedia(() => (this.publishes ? this.#startPublishing() : this.#stopPublishing()), () => undefined);
    }
  }

  /** The Track `trackId` of some participant, if known. */
  #remoteTrack(trackId) {
    for (const participant of this.participants.values()) {
      const track = participant.tracks.get(trackId);
      if (track) return track;
    }
    return undefined;
  }

  #showRemoteTrack(detail) {
    this.#shown.set(detail.trackId, detail);
    this.#emit('remotetrack', detail);
  }

  #dropRemoteTrack(participantId, trackId) {
    this.#quality.delete(trackId);
    this.#layers.delete(trackId);
    this.#unsupported.delete(trackId);
    if (!this.#shown.delete(trackId)) return;
    this.#emit('remotetrackremoved', { participantId, trackId });
  }

  #updateAudienceCount() {
    const count = this.audienceCount;
    if (count === this.#lastAudienceCount) return;
    this.#lastAudienceCount = count;
    this.#emit('audiencecount', { count });
  }

  // ---- The PeerConnection. ----

  /** A new PeerConnection, closing the previous one (a re-join): nothing is sent on it yet. */
  #startSession(iceServers) {
    this.session?.close();
    this.#senders.clear();
    this.#ownTracks.clear();
    this.#quality.clear();
    this.#layers.clear();
    this.#unsupported.clear();
    const session = new Session({ iceServers, send: (signal) => this.#send(signal) });
    this.session = session;
    const current = (handler) => (event) => {
      if (session === this.session || event.type === 'remotetrackremoved') handler(event.detail);
    };
    session.addEventListener('remotetrack', current((detail) => this.#onRemoteMedia(detail)));
    session.addEventListener('remotetrackremoved', current(({ participantId, trackId }) => this.#dropRemoteTrack(participantId, trackId)));
    session.addEventListener('remotetrackmute', current((detail) => this.#onRemoteMediaMute(detail)));
    session.addEventListener('connectionstate', current(() => this.#emitConnection()));
    session.addEventListener('failure', current((error) => {
      console.error('meeting: negotiation failed', error);
      this.#problem('negotiation_failed', `The media connection could not be set up: ${error?.message ?? error}`);
    }));
  }

  /** The session receives a remote track: show it, unless its publisher has left. */
  #onRemoteMedia({ participantId, trackId, kind, mid, track }) {
    if (this.#departed.has(participantId)) return;
    const known = this.#remoteTrack(trackId);
    this.#showRemoteTrack({
      participantId,
      trackId,
      kind,
      source: known?.source ?? (kind === 'audio' ? 'microphone' : 'camera'),
      mid,
      track,
      muted: known?.muted ?? false,
      unsupported: this.#unsupported.get(trackId) ?? null,
    });
  }

  /**
   * A remote video's media stopped or came back (muted by the server counts as stopped), so
   * its tile shows the avatar rather than a frozen frame. Audio is left alone: a stalled
   * audio stream is not a muted microphone, and only a signalled mute shows the mic-off icon.
   */
  #onRemoteMediaMute({ participantId, trackId, kind, muted }) {
    if (!this.#shown.has(trackId) || kind === 'audio') return;
    // No media is expected for a track we cannot decode: its tile says why, not "camera off".
    const stopped = muted && !this.#unsupported.has(trackId);
    this.#emit('trackmuted', { participantId, trackId, kind, muted: stopped || Boolean(this.#remoteTrack(trackId)?.muted) });
  }

  /** Shows a remote video as muted only if its publisher says so (its media never comes). */
  #showSignalledMute(trackId) {
    const shown = this.#shown.get(trackId);
    if (!shown || shown.kind === 'audio') return;
    const muted = Boolean(this.#remoteTrack(trackId)?.muted);
    this.#emit('trackmuted', { participantId: shown.participantId, trackId, kind: shown.kind, muted });
  }

  // ---- Our own media. ----

  /** Runs a local media change after the previous ones; `fallback()` is its result once ended. */
  #queueMedia(change, fallback) {
    const run = this.#mediaQueue.then(() => (this.#ended ? fallback() : change()));
    this.#mediaQueue = run.catch((error) => console.error('meeting: local media change failed', error));
    return run;
  }

  /** Takes over the join screen's stream: its first audio and video tracks. A disabled camera is released. */
  #adoptStream(stream) {
    const audio = stream.getAudioTracks().find((track) => track.readyState === 'live');
    let video = stream.getVideoTracks().find((track) => track.readyState === 'live');
    if (audio) this.#deviceIds.audioinput = audio.getSettings().deviceId;
    if (video) this.#deviceIds.videoinput = video.getSettings().deviceId;
    if (video && !video.enabled) {
      video.stop();
      video = undefined;
    }
    this.micOn = Boolean(audio?.enabled);
    this.cameraOn = Boolean(video);
    this.#setLocalTracks(audio, video);
  }

  /** `localStream` becomes these tracks (a new MediaStream, so that views notice). */
  #setLocalTracks(audio, video) {
    const tracks = [audio, video].filter(Boolean);
    this.localStream = tracks.length ? new MediaStream(tracks) : null;
    this.#captured = true;
  }

  #localTrack(kind) {
    return (kind === 'audio' ? this.localStream?.getAudioTracks() : this.localStream?.getVideoTracks())?.[0];
  }

  /** Our role publishes: capture (unless the join screen gave us a stream) and send. */
  async #startPublishing() {
    if (!this.#captured) await this.#captureBoth();
    if (this.#ended || !this.publishes || !this.session) return;
    for (const source of ['microphone', 'camera']) {
      if (!this.#senders.has(source)) this.#publish(source, this.#localTrack(source === 'microphone' ? 'audio' : 'video'));
    }
    const screen = this.#screenStream?.getVideoTracks()[0];
    if (screen && !this.#senders.has('screen')) this.#publish('screen', screen);
    this.#emitLocalMedia();
  }

  async #captureBoth() {
    const { stream, errors } = await captureCameraAndMicrophone({
      audioDeviceId: this.#deviceIds.audioinput,
      videoDeviceId: this.#deviceIds.videoinput,
    });
    if (this.#ended || !this.publishes) {
      for (const track of stream.getTracks()) track.stop();
      return;
    }
    if (errors.length === 2 && errors[0].error.name === errors[1].error.name) {
      this.#problem('capture', captureErrorMessage(errors[0].error, 'camera and microphone'));
    } else {
      for (const { kind, error } of errors) this.#problem('capture', captureErrorMessage(error, kind === 'audio' ? 'microphone' : 'camera'));
    }
    const audio = stream.getAudioTracks()[0];
    const video = stream.getVideoTracks()[0];
    this.micOn = Boolean(audio);
    this.cameraOn = Boolean(video);
    this.#setLocalTracks(audio, video);
  }

  /** Sends `track` (or nothing yet) as `source` on a new transceiver. */
  #publish(source, track) {
    this.#senders.set(source, this.session.publish(track ?? null, source));
  }

  /** Our role no longer publishes (or may not): release every device and stop sending. */
  #stopPublishing() {
    for (const track of [...(this.localStream?.getTracks() ?? []), ...(this.#screenStream?.getTracks() ?? [])]) track.stop();
    this.localStream = null;
    this.#screenStream = null;
    this.#captured = false;
    this.micOn = false;
    this.cameraOn = false;
    for (const transceiver of this.#senders.values()) this.session?.unpublish(transceiver);
    this.#senders.clear();
    this.#ownTracks.clear();
    this.#emitLocalMedia();
  }

  /** Publishing again after `#stopPublishing` (a publisher turning a device back on). */
  #ensureSender(source, track) {
    const transceiver = this.#senders.get(source);
    if (transceiver) return transceiver.sender.replaceTrack(track);
    if (this.session && this.publishes && this.#inRoom()) this.#publish(source, track);
    return Promise.resolve();
  }

  async #setMicrophone(on) {
    if (on === this.micOn || (on && !this.publishes)) return this.micOn;
    let track = this.#localTrack('audio');
    if (on && !track) {
      track = await this.#captureOrReport('microphone');
      if (!track) return this.micOn;
      this.#setLocalTracks(track, this.#localTrack('video'));
      await this.#ensureSender('microphone', track);
    }
    if (track) track.enabled = on;
    this.micOn = on;
    this.#syncMute('microphone');
    this.#emitLocalMedia();
    return this.micOn;
  }

  async #setCamera(on) {
    if (on === this.cameraOn || (on && !this.publishes)) return this.cameraOn;
    if (on) {
      const track = await this.#captureOrReport('camera');
      if (!track) return this.cameraOn;
      this.#setLocalTracks(this.#localTrack('audio'), track);
      await this.#ensureSender('camera', track);
    } else {
      await this.#releaseCamera();
    }
    this.cameraOn = on;
    this.#syncMute('camera');
    this.#emitLocalMedia();
    return this.cameraOn;
  }

  /** Stops the camera (its light goes off) and sends nothing on its m-line. */
  async #releaseCamera() {
    const track = this.#localTrack('video');
    track?.stop();
    this.#setLocalTracks(this.#localTrack('audio'), undefined);
    await this.#senders.get('camera')?.sender.replaceTrack(null);
  }

  /** A new track from the chosen device of `source`, or null after telling the user why not. */
  async #captureOrReport(source) {
    try {
      const deviceId = this.#deviceIds[DEVICE_KIND[source]];
      const track = await (source === 'camera' ? captureCamera(deviceId) : captureMicrophone(deviceId));
      if (!this.#ended) return track;
      track.stop();
    } catch (error) {
      this.#problem('capture', captureErrorMessage(error, source));
    }
    return null;
  }

  async #switchDevice(kind, deviceId) {
    const source = Object.keys(DEVICE_KIND).find((name) => DEVICE_KIND[name] === kind);
    if (!source) return;
    this.#deviceIds[kind] = deviceId;
    const old = this.#localTrack(source === 'camera' ? 'video' : 'audio');
    // The camera is off (it will use the device when turned on), or there is no microphone.
    if (!old || (source === 'camera' && !this.cameraOn)) return;
    // A camera often cannot be opened twice: release it before taking the new one.
    if (source === 'camera') old.stop();
    const track = await this.#captureOrReport(source);
    if (source === 'microphone') {
      if (!track) return;
      old.stop();
      track.enabled = this.micOn;
      this.#setLocalTracks(track, this.#localTrack('video'));
    } else {
      this.#setLocalTracks(this.#localTrack('audio'), track ?? undefined);
      this.cameraOn = Boolean(track);
      this.#syncMute('camera');
    }
    await this.#senders.get(source)?.sender.replaceTrack(track);
    this.#emitLocalMedia();
  }

  async #startScreenShare() {
    if (this.#screenStream || !this.publishes || !this.#inRoom()) return false;
    let stream;
    try {
      stream = await captureScreen();
    } catch (error) {
      if (!isCancelledCapture(error)) this.#problem('capture', captureErrorMessage(error, 'screen'));
      return false;
    }
    const [track] = stream.getVideoTracks();
    if (this.#ended || !this.publishes || !track) {
      for (const t of stream.getTracks()) t.stop();
      return false;
    }
    if (support.contentHint) track.contentHint = 'detail';
    // The browser's own "Stop sharing" button ends the track.
    track.addEventListener('ended', () => {
      if (this.#screenStream === stream) this.stopScreenShare();
    });
    this.#screenStream = stream;
    this.#publish('screen', track);
    this.#emitLocalMedia();
    return true;
  }

  #stopScreenShare() {
    if (!this.#screenStream) return;
    for (const track of this.#screenStream.getTracks()) track.stop();
    this.#screenStream = null;
    const transceiver = this.#senders.get('screen');
    this.#senders.delete('screen');
    if (transceiver) {
      for (const [trackId, own] of this.#ownTracks) if (own.source === 'screen') this.#ownTracks.delete(trackId);
      this.session?.unpublish(transceiver);
    }
    this.#emitLocalMedia();
  }

  /** `published`: our m-line `mid` is the track `track`; now we can mute it by id. */
  #onPublished(mid, track) {
    const source = this.session?.sourceOfMid(mid);
    if (!source || !track?.id) return;
    for (const [trackId, own] of this.#ownTracks) if (own.mid === mid) this.#ownTracks.delete(trackId);
    this.#ownTracks.set(track.id, { source, mid, muted: Boolean(track.muted), pending: 0 });
    this.#syncMute(source);
  }

  /** Whether `source` should be muted at the server: it is off here. */
  #wantsMuted(source) {
    if (source === 'microphone') return !this.micOn;
    if (source === 'camera') return !this.cameraOn;
    return false;
  }

  /** Our published track of `source` (the one on its current m-line): `[trackId, own]`. */
  #ownTrack(source) {
    const mid = this.#senders.get(source)?.mid;
    if (mid === undefined || mid === null) return undefined;
    return [...this.#ownTracks].find(([, own]) => own.mid === mid);
  }

  /** Sends `mute` when the server's muted state of `source` differs from ours. */
  #syncMute(source) {
    const found = this.#ownTrack(source);
    if (!found) return;
    const [trackId, own] = found;
    const muted = this.#wantsMuted(source);
    if (own.muted === muted) return;
    own.muted = muted;
    own.pending += 1;
    this.#send({ type: 'mute', track_id: trackId, muted });
  }

  /**
   * `track_muted` about one of our tracks: the answer to our own `mute`, or a host's doing.
   * A host's mute turns the device off here too; a host's unmute is not obeyed (nobody turns
   * our microphone or camera on but us): we mute again and tell the user they were asked.
   */
  #onOwnTrackMuted(trackId, muted) {
    const own = this.#ownTracks.get(trackId);
    if (!own) return;
    if (own.pending > 0) {
      own.pending -= 1;
      return;
    }
    if (own.muted === muted) return;
    own.muted = muted;
    const what = { microphone: 'microphone', camera: 'camera', screen: 'screen share' }[own.source];
    if (muted) {
      this.#problem('muted_by_host', `A host turned off your ${what}.`);
      this.#queueMedia(() => this.#turnOffByHost(own.source), () => undefined);
    } else if (this.#wantsMuted(own.source)) {
      this.#problem('unmute_requested', `A host asks you to turn on your ${what}.`);
      this.#syncMute(own.source);
    }
  }

  async #turnOffByHost(source) {
    if (source === 'screen') {
      this.#stopScreenShare();
      return;
    }
    if (source === 'microphone') {
      const track = this.#localTrack('audio');
      if (track) track.enabled = false;
      this.micOn = false;
    } else {
      await this.#releaseCamera();
      this.cameraOn = false;
    }
    this.#emitLocalMedia();
  }

  #emitLocalMedia() {
    this.#emit('localmedia', {
      stream: this.localStream,
      micOn: this.micOn,
      cameraOn: this.cameraOn,
      screenStream: this.#screenStream,
      screenSharing: this.screenSharing,
    });
  }

  // ---- Moderation, state, ending. ----

  #moderate(message) {
    if (this.#inRoom() && this.isHost) this.#send(message);
  }

  #setSignalingState(state) {
    this.#signalingState = state;
    this.#emitConnection();
  }

  #emitConnection() {
    const detail = { signaling: this.#signalingState, media: this.mediaState };
    const key = `${detail.signaling}/${detail.media}`;
    if (key === this.#lastConnection) return;
    this.#lastConnection = key;
    this.#emit('connection', detail);
  }

  #problem(code, message) {
    const problem = { code, message, ts: Date.now() };
    this.problems.push(problem);
    this.#emit('problem', problem);
  }

  /** The meeting is over: release everything and say why. */
  #end(reason, code = reason, message = ENDINGS[reason]) {
    if (this.#ended) return;
    this.#ended = true;
    this.#stopReconnecting();
    this.session?.close();
    for (const track of [...(this.localStream?.getTracks() ?? []), ...(this.#screenStream?.getTracks() ?? [])]) track.stop();
    this.#signaling?.close();
    this.#setSignalingState('closed');
    this.#emit('ended', { reason, code, message });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** The user-facing reason a `join` was refused. */
function refusalMessage(code, serverMessage) {
  const known = REFUSALS[code];
  if (!known) return serverMessage || `The server refused to let you join (${code}).`;
  // The server's wording says which part of a token is wrong.
  return code === 'unauthorized' && serverMessage ? `${known} (${serverMessage})` : known;
}
