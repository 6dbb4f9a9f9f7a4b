// Local capture: camera and microphone.

const CAMERA = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const MICROPHONE = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/**
 * Asks for camera and microphone together, then one at a time if that fails, so that a
 * missing or refused device does not cost the other one.
 *
 * @returns {Promise<{ stream: MediaStream, errors: Error[] }>} whatever could be captured
 */
export async function captureCameraAndMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) {
    return {
      stream: new MediaStream(),
      errors: [new Error('camera and microphone need a secure page (https:// or http://localhost)')],
    };
  }
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ video: CAMERA, audio: MICROPHONE }), errors: [] };
  } catch (bothError) {
    const stream = new MediaStream();
    const errors = [];
    for (const constraints of [{ audio: MICROPHONE }, { video: CAMERA }]) {
      try {
        const single = await navigator.mediaDevices.getUserMedia(constraints);
        for (const track of single.getTracks()) stream.addTrack(track);
      } catch (error) {
        errors.push(error);
      }
    }
    return { stream, errors: stream.getTracks().length === 0 ? [bothError] : errors };
  }
}

/** The `source` a local track is published as. */
export function sourceOf(track) {
  return track.kind === 'audio' ? 'microphone' : 'camera';
}
