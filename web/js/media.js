// Local capture: camera, microphone and screen; device lists; what to tell the user when
// capture fails. No DOM here.

/** The camera as the server's simulcast layers expect it: 1280x720 full, 640 and 320 below. */
const CAMERA = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const MICROPHONE = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
const SCREEN = { video: { frameRate: { ideal: 15, max: 30 } }, audio: false };
/** Fallback labels for devices the page may not name yet. */
const LABELS = { audioinput: 'Microphone', videoinput: 'Camera', audiooutput: 'Speaker' };

/** The `name` of the error thrown when the page cannot capture at all (not a secure context). */
const NO_MEDIA_DEVICES = 'NoMediaDevicesError';

function mediaDevices() {
  if (!globalThis.navigator?.mediaDevices?.getUserMedia) {
    const error = new Error('navigator.mediaDevices is not available on this page');
    error.name = NO_MEDIA_DEVICES;
    throw error;
  }
  return navigator.mediaDevices;
}

/** `constraints` narrowed to one device, when a device id is given. */
function onDevice(constraints, deviceId) {
  return deviceId ? { ...constraints, deviceId: { exact: deviceId } } : constraints;
}

/** One camera track (1280x720 ideal, 30 fps), from `deviceId` when given. */
export async function captureCamera(deviceId) {
  const stream = await mediaDevices().getUserMedia({ video: onDevice(CAMERA, deviceId) });
  return stream.getVideoTracks()[0];
}

/** One microphone track, from `deviceId` when given. */
export async function captureMicrophone(deviceId) {
  const stream = await mediaDevices().getUserMedia({ audio: onDevice(MICROPHONE, deviceId) });
  return stream.getAudioTracks()[0];
}

/**
 * Asks for the camera and the microphone together (one permission prompt), then one at a
 * time if that fails, so that a missing or refused device does not cost the other one.
 *
 * @param {{ audio?: boolean, video?: boolean, audioDeviceId?: string, videoDeviceId?: string }} options
 * @returns {Promise<{ stream: MediaStream, errors: { kind: 'audio'|'video', error: Error }[] }>}
 *   whatever could be captured, and why the rest could not
 */
export async function captureCameraAndMicrophone({ audio = true, video = true, audioDeviceId, videoDeviceId } = {}) {
  const wanted = [];
  if (audio) wanted.push({ kind: 'audio', capture: () => captureMicrophone(audioDeviceId) });
  if (video) wanted.push({ kind: 'video', capture: () => captureCamera(videoDeviceId) });
  if (wanted.length === 2) {
    try {
      return {
        stream: await mediaDevices().getUserMedia({
          audio: onDevice(MICROPHONE, audioDeviceId),
          video: onDevice(CAMERA, videoDeviceId),
        }),
        errors: [],
      };
    } catch {
      // Fall through: one at a time, to keep whichever device works.
    }
  }
  const stream = new MediaStream();
  const errors = [];
  for (const { kind, capture } of wanted) {
    try {
      stream.addTrack(await capture());
    } catch (error) {
      errors.push({ kind, error });
    }
  }
  return { stream, errors };
}

/** The screen, a window or a tab, as the browser's picker lets the user choose. */
export async function captureScreen() {
  const devices = mediaDevices();
  if (!devices.getDisplayMedia) {
    const error = new Error('getDisplayMedia is not available');
    error.name = 'NotSupportedError';
    throw error;
  }
  return devices.getDisplayMedia(SCREEN);
}

/**
 * The devices the user can choose from, by kind: `{ audioinput, videoinput, audiooutput }`,
 * each a list of `{ deviceId, label }`. Labels are empty until a capture was allowed.
 */
export async function listDevices() {
  const lists = { audioinput: [], videoinput: [], audiooutput: [] };
  if (!globalThis.navigator?.mediaDevices?.enumerateDevices) return lists;
  for (const device of await navigator.mediaDevices.enumerateDevices()) {
    const list = lists[device.kind];
    if (!list || !device.deviceId) continue;
    list.push({ deviceId: device.deviceId, label: device.label || `${LABELS[device.kind]} ${list.length + 1}` });
  }
  return lists;
}

/**
 * What to tell the user about a failed capture. `what` names the device(s) asked for:
 * `'camera'`, `'microphone'`, `'camera and microphone'` (the default) or `'screen'`.
 */
export function captureErrorMessage(error, what = 'camera and microphone') {
  const name = error?.name ?? '';
  if (name === NO_MEDIA_DEVICES) {
    const use = what === 'screen' ? 'share the screen' : 'use a camera or microphone';
    return `This page cannot ${use} because it is not secure: open it over https:// (or http://localhost).`;
  }
  if (what === 'screen') return screenErrorMessage(error);
  const plural = what.includes(' and ');
  const it = plural ? 'them' : 'it';
  switch (name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
    case 'SecurityError':
      return `Access to your ${what} is blocked. Allow ${it} in your browser's site settings (the icon left of the address bar), then try again.`;
    case 'NotFoundError':
    case 'DevicesNotFoundError':
      return `No ${what.replace(' and ', ' or ')} was found. Connect one and try again.`;
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return `Your ${what} could not be started: another application may be using ${it}, or there is a hardware problem. Close other apps that use ${it} and try again.`;
    case 'OverconstrainedError':
    case 'ConstraintNotSatisfiedError':
      return `The selected ${what} ${plural ? 'are' : 'is'} not available or cannot provide the requested quality. Choose another device.`;
    default:
      return `Could not start your ${what}: ${error?.message || name || 'unknown error'}.`;
  }
}

function screenErrorMessage(error) {
  switch (error?.name) {
    case 'NotAllowedError':
      return 'Screen sharing was cancelled or is not allowed by the browser.';
    case 'NotSupportedError':
      return 'This browser cannot share the screen.';
    case 'NotFoundError':
      return 'There is no screen or window to share.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The screen could not be captured: the operating system or another application prevented it.';
    default:
      return `Could not share the screen: ${error?.message || error?.name || 'unknown error'}.`;
  }
}

/** Whether a `captureScreen` error only means the user closed the picker. */
export function isCancelledCapture(error) {
  return error?.name === 'NotAllowedError';
}
