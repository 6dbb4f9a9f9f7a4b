// One visit to a room: the signaling connection, the PeerConnection, our local media and
// what we know about the other participants. No DOM here; the UI listens to the events.

import { Signaling } from './signaling.js';
import { Session } from './session.js';
import { captureCameraAndMicrophone, sourceOf } from './media.js';

/**
 * Events (`event.detail` in parentheses):
 * - `joined` (`{ participantId, room }`)
 * - `participant` (`{ id, name, role }`): someone is (or is now known to be) in the room
 * - `participantleft` (`{ id }`)
 * - `localmedia` (`{ stream }`): what we publish, for the self-view
 * - `remotetrack`, `remotetrackremoved`, `remotetrackmute`: see Session
 * - `trackunpublished` (`{ participantId, trackId }`)
 * - `chat` (`{ participantId, name, text, ts }`)
 * - `problem` (`{ code, message }`): a server `error` or a local failure, to show the user
 * - `connectionstate` (the PeerConnection's `connectionState`)
 * - `ended` (`{ reason: 'left' | 'refused' | 'disconnected' }`): after it, the meeting is over
 */
export class Meeting extends EventTarget {
  room;
  name;
  role;
  participantId = null;
  /** id → `{ id, name, role, tracks: Map<trackId, Track> }`, ourselves excluded. */
  participants = new Map();
  chat = [];
  problems = [];
  localStream = null;
  session = null;

  #signaling;
  #capture = null;
  #ended = false;
  /** Participants that left: their late media events are dropped, not shown. */
  #departed = new Set();

  constructor({ room, name, role = 'presenter' }) {
    super();
    this.room = room;
    this.name = name;
    this.role = role;
  }

  get publishes() {
    return this.role !== 'audience';
  }

  start() {
    this.#signaling = new Signaling();
    this.#signaling.addEventListener('message', (event) => this.#onMessage(event.detail));
    this.#signaling.addEventListener('close', (event) => this.#onSocketClosed(event.detail));
    // Ask for the devices while the join is under way.
    if (this.publishes) this.#capture = captureCameraAndMicrophone();
    this.#signaling.send({ type: 'join', room: this.room, name: this.name, role: this.role });
  }

  sendChat(text) {
    if (this.participantId) this.#signaling.send({ type: 'chat', text });
  }

  /** Flips the microphone on/off; returns whether it is now on. */
  toggleMicrophone() {
    return this.#toggle(this.localStream?.getAudioTracks() ?? []);
  }

  /** Flips the camera on/off; returns whether it is now on. */
  toggleCamera() {
    return this.#toggle(this.localStream?.getVideoTracks() ?? []);
  }

  leave() {
    if (this.#ended) return;
    this.#signaling.send({ type: 'leave' });
    this.#end('left');
  }

  #toggle(tracks) {
    const on = !tracks.some((track) => track.enabled);
    for (const track of tracks) track.enabled = on;
    return on;
  }

  #onMessage(message) {
    if (this.#ended) return;
    switch (message.type) {
      case 'joined':
        this.#onJoined(message);
        break;
      case 'participant_joined':
        this.#addParticipant(message.participant);
        break;
      case 'participant_left':
        this.#removeParticipant(message.participant_id);
        break;
      case 'track_published':
        this.participants.get(message.participant_id)?.tracks.set(message.track.id, message.track);
        break;
      case 'track_unpublished':
        this.participants.get(message.participant_id)?.tracks.delete(message.track_id);
        this.#emit('trackunpublished', { participantId: message.participant_id, trackId: message.track_id });
        break;
      case 'offer':
      case 'answer':
      case 'candidate':
      case 'negotiate_grant':
        if (this.session) this.session.handleSignal(message);
        else console.warn(`meeting: ${message.type} before joined, dropped`);
        break;
      case 'chat': {
        const entry = { participantId: message.participant_id, name: message.name, text: message.text, ts: message.ts };
        this.chat.push(entry);
        this.#emit('chat', entry);
        break;
      }
      case 'error':
        this.#problem(message.code ?? 'error', message.message ?? 'The server refused a request.');
        // Before `joined` the only request was `join` itself: it was refused.
        if (!this.participantId) this.#end('refused');
        break;
      default:
        console.debug('meeting: ignoring message type', message.type);
    }
  }

  async #onJoined(message) {
    this.participantId = message.participant_id;
    this.#emit('joined', { participantId: this.participantId, room: message.room ?? this.room });
    for (const participant of message.participants ?? []) this.#addParticipant(participant);

    this.session = new Session({
      iceServers: message.ice_servers ?? [],
      send: (signal) => this.#signaling.send(signal),
    });
    for (const type of ['remotetrack', 'remotetrackremoved', 'remotetrackmute']) {
      this.session.addEventListener(type, (event) => {
        if (!this.#departed.has(event.detail.participantId)) this.#emit(type, event.detail);
      });
    }
    this.session.addEventListener('connectionstate', (event) => {
      this.#emit('connectionstate', event.detail);
      if (event.detail === 'failed') this.#problem('connection_failed', 'The media connection to the server failed.');
    });
    this.session.addEventListener('failure', (event) => {
      console.error('negotiation failed', event.detail);
      this.#problem('negotiation_failed', `Negotiation failed: ${event.detail?.message ?? event.detail}`);
    });

    if (!this.#capture) return;
    const { stream, errors } = await this.#capture;
    if (this.#ended) {
      for (const track of stream.getTracks()) track.stop();
      return;
    }
    for (const error of errors) this.#problem('media', `Camera or microphone unavailable: ${error.message || error.name}`);
    this.localStream = stream;
    this.#emit('localmedia', { stream });
    for (const track of stream.getTracks()) this.session.publish(track, sourceOf(track));
  }

  #addParticipant(participant) {
    if (!participant?.id || participant.id === this.participantId) return;
    this.#departed.delete(participant.id);
    const tracks = new Map((participant.tracks ?? []).map((track) => [track.id, track]));
    this.participants.set(participant.id, { id: participant.id, name: participant.name, role: participant.role, tracks });
    this.#emit('participant', { id: participant.id, name: participant.name, role: participant.role });
  }

  #removeParticipant(id) {
    this.participants.delete(id);
    this.#departed.add(id);
    this.#emit('participantleft', { id });
  }

  #onSocketClosed({ code, reason, expected }) {
    if (this.#ended) return;
    if (!expected) {
      const detail = `${code}${reason ? `: ${reason}` : ''}`;
      this.#problem('disconnected', this.participantId
        ? `Lost the connection to the server (${detail}).`
        : `Could not connect to the server (${detail}).`);
    }
    this.#end(this.participantId ? 'disconnected' : 'refused');
  }

  #problem(code, message) {
    const problem = { code, message, ts: Date.now() };
    this.problems.push(problem);
    this.#emit('problem', problem);
  }

  #end(reason) {
    if (this.#ended) return;
    this.#ended = true;
    this.session?.close();
    for (const track of this.localStream?.getTracks() ?? []) track.stop();
    // Capture may still be under way; release it once it lands.
    this.#capture?.then(({ stream }) => stream.getTracks().forEach((track) => track.stop()));
    this.#signaling.close();
    this.#emit('ended', { reason });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
