// Wiring: the three screens (join, meeting, ended), the meeting's top bar and controls,
// keyboard shortcuts, the banner, and the test hook (`window.roomcast`).

import { Meeting } from './meeting.js';
import { JoinScreen, nameFromToken } from './join.js';
import { Stage } from './tiles.js';
import { QualityController } from './quality.js';
import { StatsMonitor } from './stats.js';
import { ChatPanel } from './chat.js';
import { ParticipantsPanel } from './participants.js';
import { captureErrorMessage, isCancelledCapture, listDevices } from './media.js';

const $ = (id) => document.getElementById(id);
const ui = {
  joinScreen: $('join-screen'),
  meetingScreen: $('meeting-screen'),
  endedScreen: $('ended-screen'),
  endedTitle: $('ended-title'),
  endedMessage: $('ended-message'),
  rejoin: $('rejoin-button'),
  home: $('home-button'),
  banner: $('banner'),
  bannerText: $('banner-text'),
  bannerClose: $('banner-close'),
  roomLabel: $('room-label'),
  connection: $('connection-state'),
  audienceCount: $('audience-count'),
  audienceCountText: $('audience-count-text'),
  locked: $('locked-indicator'),
  clock: $('clock'),
  audioUnlock: $('audio-unlock'),
  toasts: $('toasts'),
  invite: $('invite-card'),
  inviteLink: $('invite-link'),
  inviteCopy: $('invite-copy'),
  inviteClose: $('invite-close'),
  mic: $('mic-button'),
  camera: $('camera-button'),
  screen: $('screen-button'),
  layout: $('layout-button'),
  stats: $('stats-button'),
  host: $('host-button'),
  hostMenu: $('host-menu'),
  micDevices: $('mic-devices'),
  micMenu: $('mic-menu'),
  cameraDevices: $('camera-devices'),
  cameraMenu: $('camera-menu'),
  lock: $('lock-button'),
  lockText: $('lock-button-text'),
  end: $('end-button'),
  endText: $('end-button-text'),
  leave: $('leave-button'),
};

const CONNECTION_LABELS = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  failed: 'Connection lost',
};
const BANNER_HIDE_MS = 8000;
const TOAST_MS = 4000;
const TOASTS_SHOWN = 3;
/** Joins in the first moments are the people already there, not news. */
const QUIET_AFTER_JOIN_MS = 2000;
const END_CONFIRM_MS = 5000;

/** The meeting in progress (null on the join and ended screens) and the latest one. */
let meeting = null;
let lastMeeting = null;
/** How we joined last, for "Rejoin". */
let lastJoin = null;
let ended = null;
/** The user closed the "only one here" card of this meeting. */
let inviteDismissed = false;
let bannerTimer = null;
let endConfirmTimer = null;

const quality = new QualityController((trackId, value) => meeting?.setQuality(trackId, value));
const stage = new Stage($('stage'), {
  quality,
  onAutoplayBlocked: () => { ui.audioUnlock.hidden = false; },
  onAudioPlaying: () => { ui.audioUnlock.hidden = true; },
  onLayoutChange: (layout) => setPressed(ui.layout, layout === 'speaker', {
    on: 'Switch to grid layout', off: 'Switch to speaker layout',
  }),
  onStopPresenting: () => meeting?.stopScreenShare(),
});
const stats = new StatsMonitor(stage, (trackId) => quality.sentFor(trackId));
const chat = new ChatPanel({
  panel: $('chat-panel'),
  log: $('chat-log'),
  form: $('chat-form'),
  input: $('chat-input'),
  button: $('chat-button'),
  badge: $('chat-unread'),
  closeButton: $('chat-close'),
  onSend: (text) => meeting?.sendChat(text),
  onOpen: () => {
    participants.toggle(false);
    for (const notice of ui.toasts.querySelectorAll('.toast-chat')) notice.remove();
  },
});
const participants = new ParticipantsPanel({
  panel: $('participants-panel'),
  list: $('participant-list'),
  audienceNote: $('participants-audience'),
  button: $('participants-button'),
  count: $('participant-count'),
  closeButton: $('participants-close'),
  onAction: moderate,
  onOpen: () => chat.toggle(false),
});
const join = new JoinScreen(startMeeting);

// ---- screens ----

function showScreen(name) {
  ui.joinScreen.hidden = name !== 'join';
  ui.meetingScreen.hidden = name !== 'meeting';
  ui.endedScreen.hidden = name !== 'ended';
}

function currentScreen() {
  if (!ui.meetingScreen.hidden) return 'meeting';
  return ui.endedScreen.hidden ? 'join' : 'ended';
}

// ---- banner ----

/**
 * Shows a message (`kind` 'error' for problems, 'info' for news); non-sticky ones hide by
 * themselves after a while.
 */
function showBanner(text, { sticky = false, kind = 'error' } = {}) {
  ui.bannerText.textContent = text.charAt(0).toUpperCase() + text.slice(1);
  ui.banner.dataset.kind = kind;
  ui.banner.hidden = false;
  clearTimeout(bannerTimer);
  if (!sticky) bannerTimer = setTimeout(hideBanner, BANNER_HIDE_MS);
}

function hideBanner() {
  clearTimeout(bannerTimer);
  ui.banner.hidden = true;
}

/**
 * A short notice in the stage's corner: `who` in bold, then `text`; `onClick` makes it a
 * button (e.g. a chat message opening the chat). Returns its element.
 */
function toast(who, text, onClick) {
  const item = document.createElement('li');
  item.className = 'toast';
  const content = document.createElement(onClick ? 'button' : 'span');
  const name = document.createElement('strong');
  name.textContent = who;
  content.append(name, text);
  if (onClick) {
    content.type = 'button';
    content.addEventListener('click', () => {
      item.remove();
      onClick();
    });
  }
  item.append(content);
  ui.toasts.append(item);
  while (ui.toasts.children.length > TOASTS_SHOWN) ui.toasts.firstElementChild.remove();
  setTimeout(() => item.remove(), TOAST_MS);
  return item;
}

// ---- the meeting ----

/** Creates the Meeting for these options (the join form's, a deep link's, or "Rejoin"). */
function startMeeting(options) {
  if (meeting) return;
  lastJoin = { ...options, localStream: null };
  ui.rejoin.disabled = true;
  inviteDismissed = false;
  ended = null;
  hideBanner();
  join.setBusy(true);
  const current = new Meeting(options);
  meeting = current;
  lastMeeting = current;
  const selfName = (options.token && nameFromToken(options.token)) || options.name;
  const on = (type, handler) => current.addEventListener(type, (event) => {
    if (meeting === current) handler(event.detail);
  });
  /** What we present, from the latest `localmedia`. */
  let screenStream = null;
  /** Our participant id; a fresh re-join (resume refused) gives us a new one. */
  let selfId = null;
  /** Who we know of (id → `{ name, role }`), to tell arrivals and departures. */
  const known = new Map();
  let quietUntil = 0;
  /** Our own tiles: none for the audience; our initials until (or unless) a camera runs. */
  const showLocal = () => {
    if (!current.participantId) return; // before `joined`: the tiles come with it
    stage.setLocal({
      participantId: current.participantId,
      name: selfName,
      stream: current.publishes ? (current.localStream ?? new MediaStream()) : null,
      micOn: current.micOn,
      cameraOn: current.cameraOn,
      screenStream,
    });
  };

  on('joined', ({ participantId, room }) => {
    if (selfId && selfId !== participantId) {
      stage.setLocal({ participantId: selfId, stream: null });
      quality.resend();
    }
    selfId = participantId;
    quietUntil = Date.now() + QUIET_AFTER_JOIN_MS;
    showScreen('meeting');
    join.setBusy(false);
    ui.roomLabel.textContent = room;
    ui.roomLabel.title = `Room ${room}`;
    document.title = `${room} · roomcast`;
    // A shareable address that does not auto-join under our name.
    history.replaceState(null, '', `${location.pathname}?${new URLSearchParams({ room })}`);
    participants.setMeeting(current, selfName);
    stats.setMeeting(current);
    // Audience members watch the presenters, one of them large.
    stage.setLayout(current.publishes ? 'grid' : 'speaker');
    stage.setEmptyText(current.publishes ? 'Waiting for others to join…' : 'Waiting for the presenters…');
    showLocal();
    refreshControls();
    refreshTopBar();
  });
  on('resumed', () => {
    refreshControls();
    refreshTopBar();
    participants.render();
  });
  on('participant', ({ id, name, role }) => {
    // The audience of a webinar may be large: their comings and goings are not announced.
    if (!known.has(id) && role !== 'audience' && Date.now() > quietUntil) toast(name, ' joined');
    known.set(id, { name, role });
    stage.upsertParticipant(id, name, role);
    participants.render();
    refreshTopBar();
  });
  on('participantleft', ({ id }) => {
    const who = known.get(id);
    if (who && who.role !== 'audience') toast(who.name, ' left');
    known.delete(id);
    stage.removeParticipant(id);
    participants.render();
    refreshTopBar();
  });
  on('selfrole', ({ role }) => {
    showBanner(`A host made you ${role === 'audience' ? 'a member of the audience' : `a ${role}`}.`, { kind: 'info' });
    showLocal();
    refreshControls();
    participants.render();
  });
  on('localmedia', (media) => {
    screenStream = media.screenStream ?? null;
    // Capturing lifts Chrome's autoplay block: remote audio refused before may play now.
    if (media.stream?.getTracks().some((track) => track.readyState === 'live')) stage.unlockAudio();
    showLocal();
    refreshControls();
    participants.render();
  });
  on('remotetrack', (detail) => {
    stage.addTrack(detail, current.participants.get(detail.participantId)?.name);
    participants.render();
  });
  on('remotetrackremoved', ({ participantId, trackId }) => {
    stage.removeTrack(participantId, trackId);
    participants.render();
  });
  on('trackmuted', ({ participantId, trackId, muted }) => {
    stage.setTrackMuted(participantId, trackId, muted);
    participants.render();
  });
  on('trackpaused', ({ trackId, paused }) => stage.setTrackPaused(trackId, paused));
  on('trackunsupported', ({ trackId, codec }) => stage.setTrackUnsupported(trackId, codec));
  on('speakers', ({ speakers }) => stage.setSpeakers(speakers));
  on('audiencecount', () => {
    refreshTopBar();
    participants.render();
  });
  on('roomlocked', ({ locked }) => {
    refreshTopBar();
    showBanner(locked ? 'The meeting is locked: nobody new can join.' : 'The meeting is unlocked.', { kind: 'info' });
  });
  on('chat', (entry) => {
    chat.add(entry);
    if (!entry.mine && !chat.open) {
      toast(`${entry.name}: `, preview(entry.text), () => chat.toggle(true)).classList.add('toast-chat');
    }
  });
  on('connection', ({ signaling, media }) => setConnectionState(connectionStateOf(signaling, media)));
  on('problem', ({ message }) => showBanner(message));
  on('ended', meetingEnded);

  setConnectionState('connecting');
  current.start();
}

/** The start of a chat message, for a notice. */
function preview(text) {
  return text.length > 90 ? `${text.slice(0, 90)}…` : text;
}

/** What the top bar says about the connection. */
function connectionStateOf(signaling, media) {
  if (signaling === 'reconnecting' || media === 'disconnected') return 'reconnecting';
  if (signaling === 'closed' || media === 'failed') return 'failed';
  if (signaling === 'connecting' || media === 'connecting') return 'connecting';
  // Open signaling with media 'new': nothing to send or receive yet, but we are in.
  return 'connected';
}

function setConnectionState(state) {
  ui.connection.dataset.state = state;
  ui.connection.textContent = CONNECTION_LABELS[state];
}

/** The meeting is over: clear it away and say why on the ended screen. */
function meetingEnded(detail) {
  meeting = null;
  ended = { reason: detail.reason, code: detail.code ?? null, message: detail.message ?? null };
  stage.clear();
  quality.clear();
  stats.setMeeting(null);
  showStats(false);
  chat.clear();
  participants.setMeeting(null);
  closeMenus();
  ui.audioUnlock.hidden = true;
  ui.invite.hidden = true;
  ui.toasts.replaceChildren();
  ui.rejoin.disabled = false;
  join.setBusy(false);
  document.title = 'roomcast';
  const { title, message } = endedText(ended);
  ui.endedTitle.textContent = title;
  ui.endedMessage.textContent = message;
  ui.rejoin.hidden = !lastJoin;
  hideBanner();
  showScreen('ended');
  ui.endedTitle.focus();
}

/** The ended screen's title and explanation for `ended.reason` / `code`. */
function endedText({ reason, code, message }) {
  switch (reason) {
    case 'left':
      return { title: 'You left the meeting', message: 'Rejoin, or go back to the home screen to join another room.' };
    case 'kicked':
      return { title: 'You were removed from the meeting', message: 'A host removed you from this meeting.' };
    case 'room_ended':
      return { title: 'The meeting has ended', message: 'A host ended the meeting for everyone.' };
    case 'server_shutdown':
      return { title: 'The server is restarting', message: 'The meeting server stopped. Try rejoining in a moment.' };
    case 'disconnected':
      return { title: 'You lost your connection', message: 'roomcast could not reconnect you to the meeting. Check your network, then rejoin.' };
    case 'refused':
      return { title: "You can't join this meeting", message: refusedText(code, message) };
    default:
      return { title: 'The meeting is over', message: message ?? '' };
  }
}

function refusedText(code, message) {
  switch (code) {
    case 'room_full':
      return 'The meeting is full. Try again later.';
    case 'room_locked':
      return 'The meeting is locked. Ask a host to unlock it, then try again.';
    case 'unauthorized':
      return `Your join token was not accepted${message ? ` (${message})` : ''}. Ask for a new link.`;
    default:
      return message || 'The server refused to let you in.';
  }
}

// ---- top bar and controls ----

function refreshTopBar() {
  const current = meeting;
  if (!current) return;
  // Alone in the room: say so, with the link to share.
  ui.invite.hidden = inviteDismissed || current.participants.size > 0 || !current.publishes;
  ui.inviteLink.textContent = joinLink(current.room);
  const webinar = Boolean(current.roomSettings?.webinar);
  const audience = current.audienceCount ?? 0;
  ui.audienceCount.hidden = !webinar;
  ui.audienceCountText.textContent = `${audience} watching`;
  ui.locked.hidden = !current.roomLocked;
  ui.lockText.textContent = current.roomLocked ? 'Unlock meeting' : 'Lock meeting';
}

/** The control bar from the meeting's state: what we may do, and what is on. */
function refreshControls() {
  const current = meeting;
  if (!current) return;
  const publishes = Boolean(current.publishes);
  ui.mic.hidden = !publishes;
  ui.camera.hidden = !publishes;
  ui.micDevices.hidden = !publishes;
  ui.cameraDevices.hidden = !publishes;
  if (!publishes && (!ui.micMenu.hidden || !ui.cameraMenu.hidden)) closeMenus();
  ui.screen.hidden = !publishes || !navigator.mediaDevices?.getDisplayMedia;
  setPressed(ui.mic, Boolean(current.micOn), { on: 'Turn off microphone (Ctrl+D)', off: 'Turn on microphone (Ctrl+D)' });
  setPressed(ui.camera, Boolean(current.cameraOn), { on: 'Turn off camera (Ctrl+E)', off: 'Turn on camera (Ctrl+E)' });
  setPressed(ui.screen, Boolean(current.screenSharing), { on: 'Stop presenting', off: 'Present your screen' });
  ui.host.hidden = !current.isHost;
  if (!current.isHost && !ui.hostMenu.hidden) closeMenus();
  refreshTopBar();
}

/** The address that opens the join screen for `room`. */
function joinLink(room) {
  return `${location.origin}${location.pathname}?${new URLSearchParams({ room })}`;
}

/** Turns the per-tile statistics overlay on or off. */
function showStats(on) {
  stats.setOverlay(on);
  setPressed(ui.stats, on, { on: 'Hide statistics', off: 'Show statistics' });
}

/** A toggle button: `aria-pressed` true when the thing it controls is on. */
function setPressed(button, on, titles) {
  button.setAttribute('aria-pressed', String(on));
  button.classList.toggle('off', !on);
  button.title = on ? titles.on : titles.off;
}

async function toggleMicrophone() {
  if (!meeting?.publishes) return;
  await meeting.setMicrophone(!meeting.micOn);
  refreshControls();
}

async function toggleCamera() {
  if (!meeting?.publishes) return;
  await meeting.setCamera(!meeting.cameraOn);
  refreshControls();
}

async function toggleScreenShare() {
  const current = meeting;
  if (!current?.publishes) return;
  if (current.screenSharing) {
    current.stopScreenShare();
    return;
  }
  try {
    await current.startScreenShare();
  } catch (error) {
    if (!isCancelledCapture(error)) showBanner(captureErrorMessage(error, 'screen'));
  }
  refreshControls();
}

function moderate(action, participantId) {
  const current = meeting;
  if (!current) return;
  switch (action) {
    case 'mute-audio': current.muteParticipant(participantId, 'audio'); break;
    case 'mute-video': current.muteParticipant(participantId, 'video'); break;
    case 'kick': current.kick(participantId); break;
    case 'make-presenter': current.setRole(participantId, 'presenter'); break;
    case 'make-audience': current.setRole(participantId, 'audience'); break;
    case 'make-host': current.setRole(participantId, 'host'); break;
    default: break;
  }
}

// ---- pop-up menus: host controls, microphone and camera choice ----

const menus = [
  { button: ui.host, menu: ui.hostMenu, onOpen: () => ui.lock.focus(), onClose: resetEndConfirm },
  { button: ui.micDevices, menu: ui.micMenu, onOpen: () => fillDeviceMenu('audioinput', ui.micMenu) },
  { button: ui.cameraDevices, menu: ui.cameraMenu, onOpen: () => fillDeviceMenu('videoinput', ui.cameraMenu) },
];

function setMenuOpen(entry, open) {
  if (entry.menu.hidden === !open) return;
  if (open) closeMenus();
  entry.menu.hidden = !open;
  entry.button.setAttribute('aria-expanded', String(open));
  if (open) entry.onOpen();
  else entry.onClose?.();
}

/** Closes every open menu; returns the one that was open, if any. */
function closeMenus() {
  const open = menus.find((entry) => !entry.menu.hidden);
  if (open) setMenuOpen(open, false);
  return open;
}

/** Lists the devices of `kind` in `menu`, the one in use checked; choosing one switches to it. */
async function fillDeviceMenu(kind, menu) {
  const devices = (await listDevices())[kind];
  const track = kind === 'audioinput' ? meeting?.localStream?.getAudioTracks()[0] : meeting?.localStream?.getVideoTracks()[0];
  const inUse = track?.getSettings().deviceId;
  const what = kind === 'audioinput' ? 'microphone' : 'camera';
  const items = devices.map(({ deviceId, label }) => {
    const item = document.createElement('button');
    item.type = 'button';
    item.className = 'menu-item';
    item.setAttribute('role', 'menuitemradio');
    item.setAttribute('aria-checked', String(deviceId === inUse));
    item.innerHTML = '<svg class="icon check" aria-hidden="true"><use href="#i-check"/></svg>';
    item.append(label);
    item.addEventListener('click', () => {
      closeMenus();
      meeting?.switchDevice(kind, deviceId).catch((error) => showBanner(captureErrorMessage(error, what)));
    });
    return item;
  });
  if (!items.length) {
    const none = document.createElement('p');
    none.className = 'menu-note';
    none.textContent = `No ${what} found`;
    items.push(none);
  }
  menu.replaceChildren(...items);
  menu.querySelector('[aria-checked="true"], button')?.focus();
}

/** "End meeting for all" asks for a second click before it ends the room. */
function endClicked() {
  if (!ui.end.classList.contains('confirming')) {
    ui.end.classList.add('confirming');
    ui.endText.textContent = 'Click again to end for everyone';
    endConfirmTimer = setTimeout(resetEndConfirm, END_CONFIRM_MS);
    return;
  }
  closeMenus();
  meeting?.endRoom();
}

function resetEndConfirm() {
  clearTimeout(endConfirmTimer);
  ui.end.classList.remove('confirming');
  ui.endText.textContent = 'End meeting for all';
}

// ---- events ----

ui.mic.addEventListener('click', toggleMicrophone);
ui.camera.addEventListener('click', toggleCamera);
ui.screen.addEventListener('click', toggleScreenShare);
ui.layout.addEventListener('click', () => stage.setLayout(stage.layout === 'grid' ? 'speaker' : 'grid'));
ui.stats.addEventListener('click', () => showStats(!stats.overlay));
ui.lock.addEventListener('click', () => {
  meeting?.setRoomLocked(!meeting.roomLocked);
  closeMenus();
});
ui.end.addEventListener('click', endClicked);
for (const entry of menus) {
  entry.button.addEventListener('click', () => setMenuOpen(entry, entry.menu.hidden));
  // Arrow keys move between a menu's items, as in any menu.
  entry.menu.addEventListener('keydown', (event) => {
    if (event.key !== 'ArrowDown' && event.key !== 'ArrowUp') return;
    event.preventDefault();
    const items = [...entry.menu.querySelectorAll('button')];
    const step = event.key === 'ArrowDown' ? 1 : -1;
    const next = (items.indexOf(document.activeElement) + step + items.length) % items.length;
    items[next]?.focus();
  });
}
ui.leave.addEventListener('click', () => meeting?.leave());
ui.bannerClose.addEventListener('click', hideBanner);
ui.audioUnlock.addEventListener('click', () => {
  stage.unlockAudio();
  ui.audioUnlock.hidden = true;
});
ui.inviteCopy.addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText(ui.inviteLink.textContent);
    showBanner('Joining link copied.', { kind: 'info' });
  } catch {
    showBanner('Could not copy: select the link and copy it yourself.');
  }
});
ui.inviteClose.addEventListener('click', () => {
  inviteDismissed = true;
  ui.invite.hidden = true;
});
ui.rejoin.addEventListener('click', () => {
  if (lastJoin) startMeeting(lastJoin);
});
ui.home.addEventListener('click', () => {
  // A fresh page: the join screen with this room filled in and the preview running.
  const room = lastJoin?.room;
  location.assign(room ? `${location.pathname}?${new URLSearchParams({ room })}` : location.pathname);
});

// A click outside the open menu (and its button) closes it.
document.addEventListener('click', (event) => {
  const open = menus.find((entry) => !entry.menu.hidden);
  if (open && !open.menu.parentElement.contains(event.target)) setMenuOpen(open, false);
});

document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape') {
    const open = closeMenus();
    if (open) {
      open.button.focus();
    } else {
      chat.toggle(false);
      participants.toggle(false);
    }
    return;
  }
  if (!(event.ctrlKey || event.metaKey) || event.altKey || event.shiftKey || !meeting) return;
  const key = event.key.toLowerCase();
  if (key === 'd') {
    event.preventDefault();
    toggleMicrophone();
  } else if (key === 'e') {
    event.preventDefault();
    toggleCamera();
  }
});

// Closing or reloading the tab is leaving: say so, so the others see it at once instead of
// after the server's resume grace period (which is for dropped connections). Firefox closes
// the page's WebSockets before `pagehide`, so the `leave` goes out at `beforeunload`;
// `pagehide` covers browsers that skip `beforeunload` (mobile Safari).
window.addEventListener('beforeunload', () => meeting?.leave());
window.addEventListener('pagehide', (event) => {
  if (!event.persisted) meeting?.leave();
  join.stop();
});

/** The top bar's clock, like the meeting apps show. */
function tickClock() {
  const now = new Date();
  ui.clock.dateTime = now.toISOString();
  ui.clock.textContent = now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
tickClock();
setInterval(tickClock, 10000);

// ---- start: a deep link joins at once, otherwise the join screen with its preview ----

const deepLink = join.fromUrl(new URLSearchParams(location.search));
if (deepLink) startMeeting(deepLink);

// ---- the test hook ----

window.roomcast = {
  state: () => {
    const current = meeting ?? lastMeeting;
    const live = meeting;
    return {
      screen: currentScreen(),
      participantId: live?.participantId ?? null,
      room: live?.room ?? null,
      role: live?.role ?? null,
      connectionState: live ? live.mediaState : null,
      signalingState: live ? live.signalingState : null,
      layout: stage.layout,
      audienceCount: live?.audienceCount ?? 0,
      roomLocked: Boolean(live?.roomLocked),
      micOn: Boolean(live?.micOn),
      cameraOn: Boolean(live?.cameraOn),
      screenSharing: Boolean(live?.screenSharing),
      remote: stage.snapshot(),
      chat: (current?.chat ?? []).map(({ participantId, name, text, ts }) => ({ participantId, name, text, ts })),
      errors: (current?.problems ?? []).map(({ code, message, ts }) => ({ code, message, ts })),
      banner: ui.banner.hidden ? null : ui.bannerText.textContent,
      ended,
    };
  },
  pc: () => meeting?.session?.pc ?? null,
  meeting: () => meeting,
};
