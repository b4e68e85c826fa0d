// @ts-check
/**
 * The local camera, microphone and screen: ask for them, switch devices, measure the microphone
 * level, and explain failures in words a person can act on. No DOM here.
 */

/**
 * @typedef {object} MediaProblem
 * @property {'denied' | 'missing' | 'busy' | 'insecure' | 'unknown'} kind
 * @property {string} message
 */

/**
 * Translate a getUserMedia failure into what the person can do about it.
 * @param {unknown} error
 * @returns {MediaProblem}
 */
export function describeMediaError(error) {
  const name = error instanceof Error || (error && typeof error === 'object' && 'name' in error)
    ? String(/** @type {any} */ (error).name)
    : '';
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return {
      kind: 'denied',
      message:
        'Your browser is not allowing this page to use the camera and microphone. Allow them ' +
        '(usually from the icon in the address bar) and reload, or join without them: you will ' +
        'still see and hear the others.',
    };
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError') {
    return {
      kind: 'missing',
      message:
        'No camera or microphone was found. Connect one and reload, or join without them: you ' +
        'will still see and hear the others.',
    };
  }
  if (name === 'NotReadableError' || name === 'AbortError') {
    return {
      kind: 'busy',
      message:
        'The camera or microphone is in use by another program, or could not be started. Close ' +
        'the other program and reload, or join without them.',
    };
  }
  if (name === 'TypeError') {
    return {
      kind: 'insecure',
      message: 'Camera and microphone need a secure (https) page. You can still join to watch and listen.',
    };
  }
  return { kind: 'unknown', message: 'The camera and microphone could not be started. You can still join without them.' };
}

/**
 * Ask for camera and microphone; settle for one of them if both cannot be had.
 * @param {MediaDevices} devices
 * @param {{audioDeviceId?: string, videoDeviceId?: string}} [choice]
 * @returns {Promise<{stream: MediaStream | null, problem: MediaProblem | null}>}
 */
export async function openLocalMedia(devices, choice = {}) {
  if (!devices?.getUserMedia) {
    return { stream: null, problem: describeMediaError({ name: 'TypeError' }) };
  }
  const audio = choice.audioDeviceId ? { deviceId: { exact: choice.audioDeviceId } } : true;
  const video = choice.videoDeviceId
    ? { deviceId: { exact: choice.videoDeviceId }, width: { ideal: 1280 }, height: { ideal: 720 } }
    : { width: { ideal: 1280 }, height: { ideal: 720 } };
  /** @type {unknown} */
  let firstError = null;
  for (const constraints of [{ audio, video }, { audio }, { video }]) {
    try {
      const stream = await devices.getUserMedia(constraints);
      const partial = !('audio' in constraints && 'video' in constraints);
      return { stream, problem: partial ? describeMediaError(firstError) : null };
    } catch (error) {
      firstError ??= error;
      // Permission refused for one is refused for both: no use asking again.
      if (/** @type {any} */ (error)?.name === 'NotAllowedError') break;
    }
  }
  return { stream: null, problem: describeMediaError(firstError) };
}

/**
 * List the devices of each kind, with names once permission has been given.
 * @param {MediaDevices} devices
 */
export async function listDevices(devices) {
  const all = devices?.enumerateDevices ? await devices.enumerateDevices() : [];
  const named = (/** @type {MediaDeviceInfo} */ device, /** @type {number} */ index) => ({
    id: device.deviceId,
    label: device.label || `${device.kind} ${index + 1}`,
  });
  return {
    cameras: all.filter((d) => d.kind === 'videoinput').map(named),
    microphones: all.filter((d) => d.kind === 'audioinput').map(named),
    speakers: all.filter((d) => d.kind === 'audiooutput').map(named),
  };
}

/**
 * Measure a microphone's level (0 to 1) several times a second.
 * @param {MediaStream} stream
 * @param {(level: number) => void} onLevel
 * @returns {() => void} stop measuring
 */
export function measureLevel(stream, onLevel) {
  const AudioContextClass = globalThis.AudioContext;
  if (!AudioContextClass || stream.getAudioTracks().length === 0) return () => {};
  const context = new AudioContextClass();
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  context.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const sample of samples) sum += sample * sample;
    onLevel(Math.min(1, Math.sqrt(sum / samples.length) * 4));
  }, 100);
  return () => {
    clearInterval(timer);
    void context.close();
  };
}

/**
 * Encoding limits for outgoing video, so that the total a mesh sends stays sensible.
 * @param {number} people everyone in the call, this person included
 */
export function videoEncodingFor(people) {
  if (people <= 2) return { maxBitrate: 1_500_000, scaleResolutionDownBy: 1 };
  if (people <= 4) return { maxBitrate: 800_000, scaleResolutionDownBy: 1 };
  if (people <= 6) return { maxBitrate: 400_000, scaleResolutionDownBy: 2 };
  return { maxBitrate: 250_000, scaleResolutionDownBy: 3 };
}
