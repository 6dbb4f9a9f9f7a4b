// The join screen: room, name, role (or a join token), and a camera/microphone preview
// with on/off toggles, device pickers and a microphone level meter. Deep links
// (`?room=demo&name=Ann`) join at once, without a preview.

import { captureCamera, captureMicrophone, captureCameraAndMicrophone, listDevices, captureErrorMessage } from './media.js';

const ROOM_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const ROLES = ['presenter', 'host', 'audience'];
const $ = (id) => document.getElementById(id);

/**
 * The options a `Meeting` is created with: `{ room, name, role, token, roomSettings,
 * localStream }` (see docs/web-client.md).
 * @typedef {object} JoinOptions
 */

export class JoinScreen {
  #ui = {
    form: $('join-form'),
    room: $('join-room'),
    name: $('join-name'),
    role: $('join-role'),
    roleField: $('role-field'),
    webinarField: $('webinar-field'),
    webinar: $('join-webinar'),
    token: $('join-token'),
    tokenField: $('token-field'),
    tokenToggle: $('token-toggle'),
    error: $('join-error'),
    button: $('join-button'),
    video: $('preview-video'),
    placeholder: $('preview-placeholder'),
    message: $('preview-message'),
    level: $('preview-level'),
    toggles: $('preview-toggles'),
    mic: $('preview-mic'),
    camera: $('preview-camera'),
    pickers: $('device-pickers'),
    cameraSelect: $('camera-select'),
    microphoneSelect: $('microphone-select'),
  };
  /** The preview's tracks (handed to the Meeting on join), and whether each is on. */
  #stream = new MediaStream();
  #micOn = true;
  #cameraOn = true;
  /** Bumped whenever the preview restarts or stops, so late captures are dropped. */
  #generation = 0;
  #meter = null;
  #onJoin;

  /** @param {(options: JoinOptions) => void} onJoin called on submit */
  constructor(onJoin) {
    this.#onJoin = onJoin;
    const ui = this.#ui;
    ui.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.#submit();
    });
    ui.role.addEventListener('change', () => this.#roleChanged());
    ui.tokenToggle.addEventListener('click', () => this.#showToken(ui.tokenField.hidden));
    ui.mic.addEventListener('click', () => this.#setMic(!this.#micOn));
    ui.camera.addEventListener('click', () => this.#setCamera(!this.#cameraOn));
    ui.cameraSelect.addEventListener('change', () => this.#switchDevice('video'));
    ui.microphoneSelect.addEventListener('change', () => this.#switchDevice('audio'));
    navigator.mediaDevices?.addEventListener?.('devicechange', () => this.#fillDevices());
    // Autoplay rules may start the meter's audio context suspended: a click resumes it.
    document.addEventListener('pointerdown', () => {
      if (this.#meter?.context.state === 'suspended') this.#meter.context.resume();
    });
  }

  /**
   * Fills the form from the page's query (`room`, `name`, `role`, `token`, and `webinar=1`
   * for a host creating a webinar). A link with a room and a name joins at once: then the
   * options are returned and no preview starts.
   *
   * @returns {JoinOptions | null}
   */
  fromUrl(params) {
    const ui = this.#ui;
    const room = params.get('room') ?? '';
    const name = (params.get('name') ?? '').trim();
    const role = params.get('role');
    const token = params.get('token');
    ui.room.value = room;
    ui.name.value = name || rememberedName();
    if (ROLES.includes(role)) ui.role.value = role;
    ui.webinar.checked = params.get('webinar') === '1';
    if (token) {
      ui.token.value = token;
      ui.name.value ||= nameFromToken(token) ?? '';
      this.#showToken(true, { startPreview: false });
    }
    if (ROOM_PATTERN.test(room) && name) {
      // After the join the address keeps the room only: a reload shows this screen, named.
      rememberName(name);
      return { room, name, ...this.#roleAndToken(), roomSettings: this.#roomSettings(), localStream: null };
    }
    this.#roleChanged();
    (room ? ui.name : ui.room).focus();
    return null;
  }

  /** Stops the preview (leaving the page or the screen). */
  stop() {
    this.#generation++;
    this.#stopMeter();
    for (const track of this.#stream.getTracks()) track.stop();
    this.#stream = new MediaStream();
    this.#ui.video.srcObject = null;
  }

  setBusy(busy) {
    this.#ui.button.disabled = busy;
    this.#ui.button.textContent = busy ? 'Joining…' : 'Join now';
  }

  // ---- form ----

  #submit() {
    const ui = this.#ui;
    const room = ui.room.value.trim();
    const name = ui.name.value.trim();
    if (!ROOM_PATTERN.test(room)) {
      this.#showError('Enter a room name: 1–64 letters, digits, _ - or .');
      ui.room.focus();
      return;
    }
    if (!name) {
      this.#showError('Enter your name.');
      ui.name.focus();
      return;
    }
    rememberName(name);
    const { role, token } = this.#roleAndToken();
    let localStream = null;
    if (role !== 'audience' && this.#stream.getTracks().length) {
      // Hand the preview over: the Meeting owns its tracks from now on.
      localStream = this.#stream;
      for (const track of localStream.getAudioTracks()) track.enabled = this.#micOn;
      for (const track of localStream.getVideoTracks()) track.enabled = this.#cameraOn;
      this.#generation++;
      this.#stopMeter();
      this.#stream = new MediaStream();
      ui.video.srcObject = null;
    } else {
      this.stop();
    }
    this.#onJoin({ room, name, role, token, roomSettings: this.#roomSettings(), localStream });
  }

  /** With a token the server decides the role, so none is asked for. */
  #roleAndToken() {
    const token = this.#ui.tokenField.hidden ? '' : this.#ui.token.value.trim();
    return token ? { role: undefined, token } : { role: this.#ui.role.value, token: undefined };
  }

  #roomSettings() {
    return this.#ui.role.value === 'host' && this.#ui.webinar.checked ? { webinar: true } : undefined;
  }

  /** Shows the token field instead of the role (`startPreview`: follow the new role now). */
  #showToken(show, { startPreview = true } = {}) {
    const ui = this.#ui;
    ui.tokenField.hidden = !show;
    ui.roleField.hidden = show;
    ui.tokenToggle.setAttribute('aria-expanded', String(show));
    ui.tokenToggle.lastChild.textContent = show ? 'Join without a token' : 'I have a token';
    if (show && !ui.token.value) ui.token.focus();
    if (startPreview) this.#roleChanged();
  }

  #roleChanged() {
    const ui = this.#ui;
    const { role } = this.#roleAndToken();
    ui.webinarField.hidden = role !== 'host';
    if (role === 'audience') {
      this.stop();
      ui.level.hidden = true;
      this.#showPreviewState('You will watch and listen only');
      ui.toggles.hidden = true;
      ui.pickers.hidden = true;
      this.#showError('');
    } else {
      ui.toggles.hidden = false;
      ui.pickers.hidden = false;
      if (!this.#stream.getTracks().length) this.#startPreview();
    }
  }

  #showError(message) {
    this.#ui.error.textContent = message;
    this.#ui.error.hidden = !message;
  }

  // ---- preview ----

  async #startPreview() {
    const generation = ++this.#generation;
    this.#showPreviewState('Starting camera…');
    const { stream, errors } = await captureCameraAndMicrophone({
      audio: true,
      video: true,
      audioDeviceId: this.#ui.microphoneSelect.value || undefined,
      videoDeviceId: this.#ui.cameraSelect.value || undefined,
    });
    if (generation !== this.#generation) {
      for (const track of stream.getTracks()) track.stop();
      return;
    }
    this.#stream = stream;
    this.#showVideo();
    this.#showError(errors.length ? describeErrors(errors) : '');
    this.#startMeter();
    this.#refreshToggles();
    this.#fillDevices();
  }

  /**
   * Shows the preview's camera. A <video> given a stream without video would wait for
   * data forever, and hold up the page's load event with it.
   */
  #showVideo() {
    const video = this.#stream.getVideoTracks()[0];
    this.#ui.video.srcObject = video ? new MediaStream([video]) : null;
  }

  #setMic(on) {
    this.#micOn = on;
    for (const track of this.#stream.getAudioTracks()) track.enabled = on;
    this.#refreshToggles();
  }

  #setCamera(on) {
    this.#cameraOn = on;
    for (const track of this.#stream.getVideoTracks()) track.enabled = on;
    this.#refreshToggles();
  }

  /** Captures from the device chosen in a picker and swaps it into the preview. */
  async #switchDevice(kind) {
    const generation = this.#generation;
    const audio = kind === 'audio';
    const deviceId = (audio ? this.#ui.microphoneSelect : this.#ui.cameraSelect).value || undefined;
    try {
      const track = await (audio ? captureMicrophone(deviceId) : captureCamera(deviceId));
      if (generation !== this.#generation) {
        track.stop();
        return;
      }
      for (const old of audio ? this.#stream.getAudioTracks() : this.#stream.getVideoTracks()) {
        old.stop();
        this.#stream.removeTrack(old);
      }
      track.enabled = audio ? this.#micOn : this.#cameraOn;
      this.#stream.addTrack(track);
      this.#showVideo();
      if (audio) this.#startMeter();
      this.#showError('');
    } catch (error) {
      this.#showError(captureErrorMessage(error, audio ? 'microphone' : 'camera'));
    }
    this.#refreshToggles();
  }

  #refreshToggles() {
    const ui = this.#ui;
    const hasAudio = this.#stream.getAudioTracks().length > 0;
    const hasVideo = this.#stream.getVideoTracks().length > 0;
    setToggle(ui.mic, hasAudio && this.#micOn, hasAudio, 'microphone');
    setToggle(ui.camera, hasVideo && this.#cameraOn, hasVideo, 'camera');
    ui.level.hidden = !(hasAudio && this.#micOn);
    if (hasVideo && this.#cameraOn) this.#showPreviewState('');
    else this.#showPreviewState(hasVideo ? 'Camera is off' : 'No camera');
  }

  #showPreviewState(message) {
    this.#ui.message.textContent = message;
    this.#ui.placeholder.hidden = !message;
  }

  /** Fills the pickers; labels are known once a capture was allowed. */
  async #fillDevices() {
    const devices = await listDevices();
    const inUse = (tracks) => tracks[0]?.getSettings().deviceId ?? '';
    fillSelect(this.#ui.cameraSelect, devices.videoinput, inUse(this.#stream.getVideoTracks()), 'Default camera');
    fillSelect(this.#ui.microphoneSelect, devices.audioinput, inUse(this.#stream.getAudioTracks()), 'Default microphone');
  }

  // ---- level meter ----

  #startMeter() {
    this.#stopMeter();
    const track = this.#stream.getAudioTracks()[0];
    const Context = window.AudioContext ?? window.webkitAudioContext;
    if (!track || !Context) return;
    const context = new Context();
    const analyser = context.createAnalyser();
    analyser.fftSize = 512;
    context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const meter = { context, frame: 0 };
    // Shown only while it can move: a suspended context (no click yet) reads silence.
    const showLive = () => this.#ui.level.toggleAttribute('data-live', context.state === 'running');
    context.addEventListener('statechange', showLive);
    showLive();
    const draw = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const sample of samples) sum += sample * sample;
      const level = Math.min(1, Math.sqrt(sum / samples.length) * 6);
      this.#ui.level.style.setProperty('--level', level.toFixed(2));
      meter.frame = requestAnimationFrame(draw);
    };
    draw();
    this.#meter = meter;
  }

  #stopMeter() {
    if (!this.#meter) return;
    cancelAnimationFrame(this.#meter.frame);
    this.#ui.level.removeAttribute('data-live');
    this.#meter.context.close();
    this.#meter = null;
  }
}

/** The `name` claim of a join token (the name the server will use), or null. */
export function nameFromToken(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
    const { name } = JSON.parse(new TextDecoder().decode(bytes));
    return typeof name === 'string' && name ? name : null;
  } catch {
    return null;
  }
}

/** A preview toggle button: pressed = on. */
function setToggle(button, on, available, what) {
  button.setAttribute('aria-pressed', String(on));
  button.classList.toggle('off', !on);
  button.disabled = !available;
  button.title = available ? `Turn ${on ? 'off' : 'on'} ${what}` : `No ${what}`;
}

function fillSelect(select, devices, current, fallback) {
  const options = devices.length
    ? devices.map(({ deviceId, label }) => new Option(label, deviceId))
    : [new Option(fallback, '')];
  select.replaceChildren(...options);
  if (current && devices.some((d) => d.deviceId === current)) select.value = current;
  select.disabled = devices.length === 0;
}

/** One message for the devices that could not be captured. */
function describeErrors(errors) {
  if (errors.length === 2 && errors[0].error?.name === errors[1].error?.name) {
    return captureErrorMessage(errors[0].error, 'camera and microphone');
  }
  return errors.map(({ kind, error }) => captureErrorMessage(error, kind === 'audio' ? 'microphone' : 'camera')).join(' ');
}

const NAME_KEY = 'roomcast.name';

/** The name typed last time on this browser (a convenience, never needed). */
function rememberedName() {
  try {
    return localStorage.getItem(NAME_KEY) ?? '';
  } catch {
    return ''; // Storage disabled (private mode, policy): nothing remembered.
  }
}

function rememberName(name) {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // Storage disabled: the name is simply asked again next time.
  }
}
