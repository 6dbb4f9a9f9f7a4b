// UI wiring: the join screen, the meeting screen and its controls, and the test hook.

import { Meeting } from './meeting.js';
import { TileGrid } from './tiles.js';
import { ChatPanel } from './chat.js';

const ROOM_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const CONNECTION_LABELS = {
  new: 'Waiting for media',
  connecting: 'Connecting',
  connected: 'Connected',
  disconnected: 'Reconnecting',
  failed: 'Connection failed',
  closed: 'Closed',
};

const $ = (id) => document.getElementById(id);
const ui = {
  joinScreen: $('join-screen'),
  joinForm: $('join-form'),
  room: $('join-room'),
  name: $('join-name'),
  audience: $('join-audience'),
  joinButton: $('join-button'),
  meetingScreen: $('meeting-screen'),
  roomLabel: $('room-label'),
  connection: $('connection-state'),
  mic: $('mic-button'),
  camera: $('camera-button'),
  audioUnlock: $('audio-unlock'),
  leave: $('leave-button'),
  banner: $('banner'),
  bannerText: $('banner-text'),
};

const tiles = new TileGrid($('grid'), { onAutoplayBlocked: () => { ui.audioUnlock.hidden = false; } });
const chat = new ChatPanel({
  panel: $('chat-panel'),
  log: $('chat-log'),
  form: $('chat-form'),
  input: $('chat-input'),
  button: $('chat-button'),
  badge: $('chat-unread'),
  closeButton: $('chat-close'),
  onSend: (text) => meeting?.sendChat(text),
});

/** The meeting in progress, if any, and the latest one (its chat and errors stay readable). */
let meeting = null;
let lastMeeting = null;

function showBanner(text) {
  ui.bannerText.textContent = text.charAt(0).toUpperCase() + text.slice(1);
  ui.banner.hidden = false;
}

function setToggle(button, on, { onLabel, offLabel }) {
  button.classList.toggle('off', !on);
  button.setAttribute('aria-pressed', String(!on));
  button.setAttribute('aria-label', on ? onLabel : offLabel);
}

const MIC_LABELS = { onLabel: 'Mute microphone', offLabel: 'Unmute microphone' };
const CAMERA_LABELS = { onLabel: 'Turn camera off', offLabel: 'Turn camera on' };

function setConnectionState(state) {
  ui.connection.dataset.state = state;
  ui.connection.textContent = CONNECTION_LABELS[state] ?? state;
}

function join({ room, name, role }) {
  if (meeting) return;
  ui.banner.hidden = true;
  meeting = new Meeting({ room, name, role });
  lastMeeting = meeting;
  const current = meeting;
  const on = (type, handler) => current.addEventListener(type, (event) => handler(event.detail));

  on('joined', ({ participantId, room: joinedRoom }) => {
    ui.joinScreen.hidden = true;
    ui.meetingScreen.hidden = false;
    ui.roomLabel.textContent = joinedRoom;
    document.title = `${joinedRoom} · roomcast`;
    setConnectionState('new');
    for (const button of [ui.mic, ui.camera]) {
      button.hidden = !current.publishes;
      button.disabled = false;
    }
    setToggle(ui.mic, true, MIC_LABELS);
    setToggle(ui.camera, true, CAMERA_LABELS);
    // Make the address shareable without auto-joining under our name.
    const url = new URL(window.location.href);
    url.search = new URLSearchParams({ room: joinedRoom }).toString();
    history.replaceState(null, '', url);
    console.info('roomcast: joined as', participantId);
  });
  on('localmedia', ({ stream }) => {
    tiles.setLocal(current.participantId, current.name, stream);
    ui.mic.disabled = stream.getAudioTracks().length === 0;
    ui.camera.disabled = stream.getVideoTracks().length === 0;
    setToggle(ui.mic, !ui.mic.disabled, MIC_LABELS);
    setToggle(ui.camera, !ui.camera.disabled, CAMERA_LABELS);
    showLocalState();
  });
  // Audience members publish nothing; they get no tile (a webinar may have thousands).
  on('participant', ({ id, name: participantName, role: participantRole }) => {
    if (participantRole !== 'audience') tiles.upsert(id, participantName);
  });
  on('participantleft', ({ id }) => tiles.remove(id));
  on('remotetrack', ({ participantId, trackId, track, mid }) => tiles.attach(participantId, trackId, track, mid));
  on('remotetrackremoved', ({ participantId, trackId }) => tiles.detach(participantId, trackId));
  on('trackunpublished', ({ participantId, trackId }) => tiles.detach(participantId, trackId));
  on('remotetrackmute', ({ participantId, trackId, muted }) => tiles.setMuted(participantId, trackId, muted));
  on('chat', (entry) => chat.add({ ...entry, mine: entry.participantId === current.participantId }));
  on('problem', ({ message }) => showBanner(message));
  on('connectionstate', setConnectionState);
  on('ended', () => {
    meeting = null;
    tiles.clear();
    chat.clear();
    ui.audioUnlock.hidden = true;
    ui.meetingScreen.hidden = true;
    ui.joinScreen.hidden = false;
    ui.joinButton.disabled = false;
    document.title = 'roomcast';
  });

  ui.joinButton.disabled = true;
  current.start();
}

ui.joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const room = ui.room.value.trim();
  const name = ui.name.value.trim();
  if (!ROOM_PATTERN.test(room) || !name) {
    showBanner('Enter a room (letters, digits, _ - .) and your name.');
    return;
  }
  join({ room, name, role: ui.audience.checked ? 'audience' : 'presenter' });
});

function showLocalState() {
  tiles.setLocalState(meeting.participantId, {
    micOn: !ui.mic.classList.contains('off'),
    cameraOn: !ui.camera.classList.contains('off'),
  });
}

ui.mic.addEventListener('click', () => {
  if (!meeting) return;
  setToggle(ui.mic, meeting.toggleMicrophone(), MIC_LABELS);
  showLocalState();
});
ui.camera.addEventListener('click', () => {
  if (!meeting) return;
  setToggle(ui.camera, meeting.toggleCamera(), CAMERA_LABELS);
  showLocalState();
});
ui.leave.addEventListener('click', () => meeting?.leave());
// Closing or reloading the tab is leaving: say so, so the others see it at once instead of
// after the server's resume grace period (which is for dropped connections).
window.addEventListener('pagehide', (event) => {
  if (!event.persisted) meeting?.leave();
});
ui.audioUnlock.addEventListener('click', () => {
  tiles.unlockAudio();
  ui.audioUnlock.hidden = true;
});
$('banner-close').addEventListener('click', () => { ui.banner.hidden = true; });

// Deep link: ?room=demo prefills, ?room=demo&name=Ann joins (&role=audience: watch only).
const params = new URLSearchParams(window.location.search);
const linkRoom = params.get('room') ?? '';
const linkName = params.get('name') ?? '';
const linkRole = params.get('role');
ui.room.value = linkRoom;
ui.name.value = linkName;
ui.audience.checked = linkRole === 'audience';
if (ROOM_PATTERN.test(linkRoom) && linkName.trim()) {
  join({ room: linkRoom, name: linkName.trim(), role: linkRole === 'audience' ? 'audience' : 'presenter' });
} else {
  (linkRoom ? ui.name : ui.room).focus();
}

// A small read-only view for automated tests: what the user sees, without scraping.
window.roomcast = {
  state: () => {
    const current = lastMeeting;
    return {
      participantId: meeting?.participantId ?? null,
      room: meeting?.room ?? null,
      connectionState: meeting?.session?.connectionState ?? null,
      remote: tiles.snapshot(),
      chat: current ? current.chat.map((entry) => ({ ...entry })) : [],
      errors: current ? current.problems.map((problem) => ({ ...problem })) : [],
    };
  },
  pc: () => meeting?.session?.pc ?? null,
};
