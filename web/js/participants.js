// The participants panel: everyone in the meeting with role and mute state, and for hosts
// the moderation buttons (mute, change role, remove with a confirming second click).

import { initials, hueOf } from './tiles.js';

const ROLE_LABELS = { host: 'Host', presenter: 'Presenter', audience: 'Audience' };
const KICK_CONFIRM_MS = 5000;
const SVG = 'http://www.w3.org/2000/svg';

export class ParticipantsPanel {
  #panel;
  #list;
  #audienceNote;
  #button;
  #count;
  #onAction;
  #onOpen;
  #meeting = null;
  #selfName = '';
  /** The participant whose "Remove" was clicked once, waiting for the confirming click. */
  #confirmKick = null;
  #confirmTimer = null;

  /**
   * @param {{ panel: HTMLElement, list: HTMLElement, audienceNote: HTMLElement,
   *   button: HTMLButtonElement, count: HTMLElement, closeButton: HTMLButtonElement,
   *   onAction: (action: string, participantId: string) => void, onOpen: () => void }} options
   */
  constructor({ panel, list, audienceNote, button, count, closeButton, onAction, onOpen }) {
    this.#panel = panel;
    this.#list = list;
    this.#audienceNote = audienceNote;
    this.#button = button;
    this.#count = count;
    this.#onAction = onAction;
    this.#onOpen = onOpen;
    button.addEventListener('click', () => this.toggle());
    closeButton.addEventListener('click', () => this.toggle(false));
    list.addEventListener('click', (event) => this.#clicked(event));
  }

  get open() {
    return !this.#panel.hidden;
  }

  toggle(open = !this.open) {
    if (open === this.open) return;
    this.#panel.hidden = !open;
    this.#button.setAttribute('aria-pressed', String(open));
    if (open) {
      this.#onOpen();
      this.render();
      this.#panel.querySelector('button')?.focus();
    } else if (this.#panel.contains(document.activeElement)) {
      this.#button.focus();
    }
  }

  /** Follows this meeting (null: none), where we are called `selfName`. */
  setMeeting(meeting, selfName = '') {
    this.#meeting = meeting;
    this.#selfName = selfName;
    this.#confirmKick = null;
    if (!meeting) {
      this.toggle(false);
      this.#list.replaceChildren();
    }
    this.render();
  }

  /** Redraws the list and the count badge from the meeting's state. */
  render() {
    const meeting = this.#meeting;
    if (!meeting) return;
    const others = [...meeting.participants.values()];
    const audience = meeting.audienceCount ?? 0;
    const listedAudience = others.filter((p) => p.role === 'audience').length;
    const total = (meeting.role === 'audience' ? 0 : 1) + others.length + Math.max(0, audience - listedAudience);
    this.#count.textContent = String(total);
    this.#button.title = `Show everyone (${total})`;
    if (!this.open) return;

    const focused = document.activeElement?.closest('[data-action]');
    const focusKey = focused && `${focused.closest('.participant-row')?.dataset.participantId}/${focused.dataset.action}`;
    const self = { id: meeting.participantId, name: this.#selfName || 'You', role: meeting.role, self: true };
    const rows = [self, ...others.sort(byRoleThenName)].map((p) => this.#row(p, meeting));
    this.#list.replaceChildren(...rows);
    if (focusKey) {
      const [id, action] = focusKey.split('/');
      this.#list.querySelector(`.participant-row[data-participant-id="${CSS.escape(id)}"] [data-action="${action}"]`)?.focus();
    }
    // Audience members are not listed one by one to each other.
    const unlisted = audience - listedAudience;
    this.#audienceNote.hidden = unlisted <= 0;
    this.#audienceNote.textContent = `${unlisted} ${unlisted === 1 ? 'person' : 'people'} in the audience`;
  }

  #row(participant, meeting) {
    const row = document.createElement('li');
    row.className = 'participant-row';
    row.dataset.participantId = participant.id ?? '';
    row.dataset.role = participant.role ?? '';

    const avatar = document.createElement('span');
    avatar.className = 'participant-avatar';
    avatar.textContent = initials(participant.name);
    avatar.style.setProperty('--hue', String(hueOf(participant.name)));
    avatar.setAttribute('aria-hidden', 'true');

    const info = document.createElement('div');
    info.className = 'participant-info';
    const name = document.createElement('span');
    name.className = 'participant-name';
    name.textContent = participant.self ? `${participant.name} (you)` : participant.name;
    const role = document.createElement('span');
    role.className = `role-badge role-${participant.role}`;
    role.textContent = ROLE_LABELS[participant.role] ?? participant.role ?? '';
    info.append(name, role);

    const status = document.createElement('span');
    status.className = 'participant-status';
    const { audioOff, videoOff } = participant.self ? selfState(meeting) : remoteState(participant);
    if (participant.role !== 'audience') {
      if (audioOff) status.append(icon('i-mic-off', 'Microphone off'));
      if (videoOff) status.append(icon('i-cam-off', 'Camera off'));
    }
    row.append(avatar, info, status);

    if (meeting.isHost && !participant.self) row.append(this.#actions(participant, { audioOff, videoOff }));
    return row;
  }

  #actions(participant, { audioOff, videoOff }) {
    const actions = document.createElement('div');
    actions.className = 'participant-actions';
    const add = (action, text, { disabled = false, danger = false, title = text } = {}) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = danger ? 'chip-button danger' : 'chip-button';
      button.dataset.action = action;
      button.textContent = text;
      button.title = `${title}: ${participant.name}`;
      button.disabled = disabled;
      actions.append(button);
    };
    if (participant.role !== 'audience') {
      add('mute-audio', 'Mute', { disabled: audioOff, title: 'Mute microphone' });
      add('mute-video', 'Stop video', { disabled: videoOff, title: 'Turn off camera' });
    }
    for (const role of ['presenter', 'audience', 'host']) {
      if (participant.role !== role) add(`make-${role}`, `Make ${ROLE_LABELS[role].toLowerCase()}`);
    }
    const confirming = this.#confirmKick === participant.id;
    add('kick', confirming ? 'Confirm remove' : 'Remove', { danger: true, title: 'Remove from the meeting' });
    if (confirming) actions.lastChild.classList.add('confirming');
    return actions;
  }

  #clicked(event) {
    const button = event.target.closest('button[data-action]');
    const id = button?.closest('.participant-row')?.dataset.participantId;
    if (!button || !id) return;
    const { action } = button.dataset;
    if (action === 'kick' && this.#confirmKick !== id) {
      // First click: ask for a second one within a few seconds.
      this.#confirmKick = id;
      clearTimeout(this.#confirmTimer);
      this.#confirmTimer = setTimeout(() => {
        this.#confirmKick = null;
        this.render();
      }, KICK_CONFIRM_MS);
      this.render();
      return;
    }
    if (action === 'kick') this.#confirmKick = null;
    this.#onAction(action, id);
  }
}

function selfState(meeting) {
  return { audioOff: !meeting.micOn, videoOff: !meeting.cameraOn };
}

function remoteState(participant) {
  const tracks = [...(participant.tracks?.values() ?? [])].filter((t) => t.source !== 'screen');
  const off = (kind) => !tracks.some((t) => t.kind === kind && !t.muted);
  return { audioOff: off('audio'), videoOff: off('video') };
}

function byRoleThenName(a, b) {
  const order = { host: 0, presenter: 1, audience: 2 };
  return (order[a.role] ?? 3) - (order[b.role] ?? 3) || String(a.name).localeCompare(String(b.name));
}

function icon(id, label) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  const title = document.createElementNS(SVG, 'title');
  title.textContent = label;
  const use = document.createElementNS(SVG, 'use');
  use.setAttribute('href', `#${id}`);
  svg.append(title, use);
  return svg;
}
