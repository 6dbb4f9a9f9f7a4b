// The video grid: one tile per participant (ourselves included), sized so that every
// tile is as large as possible at 16:9 inside the available space.

const ASPECT = 16 / 9;
const GAP_PX = 12;

export class TileGrid {
  #container;
  #tiles = new Map();
  #onAutoplayBlocked;

  /**
   * @param {HTMLElement} container
   * @param {{ onAutoplayBlocked?: () => void }} [options] called when the browser refuses
   *   to start remote audio without a user gesture
   */
  constructor(container, { onAutoplayBlocked = () => {} } = {}) {
    this.#container = container;
    this.#onAutoplayBlocked = onAutoplayBlocked;
    new ResizeObserver(() => this.#layout()).observe(container);
  }

  /** The self-view: our own camera, muted and mirrored. */
  setLocal(id, name, stream) {
    const tile = this.#ensure(id, name, { local: true });
    tile.video.srcObject = stream;
    tile.videoTrackId = stream.getVideoTracks()[0]?.id ?? null;
    this.#refresh(tile);
  }

  /** Adds a remote participant's tile, or renames it. */
  upsert(id, name) {
    const tile = this.#ensure(id, name, { local: false });
    if (name && tile.name !== name) {
      tile.name = name;
      tile.label.textContent = name;
      tile.avatar.textContent = initials(name);
      tile.root.setAttribute('aria-label', name);
    }
  }

  remove(id) {
    const tile = this.#tiles.get(id);
    if (!tile) return;
    for (const audio of tile.audio.values()) audio.srcObject = null;
    tile.video.srcObject = null;
    tile.root.remove();
    this.#tiles.delete(id);
    this.#layout();
  }

  clear() {
    for (const id of [...this.#tiles.keys()]) this.remove(id);
  }

  /** Shows a remote track; `mid` names the receiver carrying it (for tests' stats). */
  attach(id, trackId, track, mid) {
    const tile = this.#ensure(id, null, { local: false });
    tile.tracks.set(trackId, { kind: track.kind, track, mid, muted: track.muted });
    if (track.kind === 'video') {
      tile.videoTrackId = trackId;
      tile.video.srcObject = new MediaStream([track]);
      tile.video.play().catch(() => {});
    } else {
      const audio = document.createElement('audio');
      audio.autoplay = true;
      audio.srcObject = new MediaStream([track]);
      tile.root.append(audio);
      tile.audio.set(trackId, audio);
      this.#play(audio);
    }
    this.#refresh(tile);
  }

  detach(id, trackId) {
    const tile = this.#tiles.get(id);
    if (!tile?.tracks.delete(trackId)) return;
    const audio = tile.audio.get(trackId);
    if (audio) {
      audio.srcObject = null;
      audio.remove();
      tile.audio.delete(trackId);
    }
    if (tile.videoTrackId === trackId) {
      // Fall back to another video track of theirs, if they publish more than one.
      const next = [...tile.tracks].find(([, t]) => t.kind === 'video');
      tile.videoTrackId = next ? next[0] : null;
      tile.video.srcObject = next ? new MediaStream([next[1].track]) : null;
    }
    this.#refresh(tile);
  }

  setMuted(id, trackId, muted) {
    const entry = this.#tiles.get(id)?.tracks.get(trackId);
    if (!entry) return;
    entry.muted = muted;
    this.#refresh(this.#tiles.get(id));
  }

  /** Our own camera/microphone switched on or off. */
  setLocalState(id, { cameraOn, micOn }) {
    const tile = this.#tiles.get(id);
    if (!tile) return;
    tile.localCameraOn = cameraOn;
    tile.root.classList.toggle('mic-off', !micOn);
    this.#refresh(tile);
  }

  /** Retries every remote audio element; call it from a user gesture. */
  unlockAudio() {
    for (const tile of this.#tiles.values()) {
      for (const audio of tile.audio.values()) this.#play(audio);
    }
  }

  /** What the user sees of the remote participants, for tests. */
  snapshot() {
    return [...this.#tiles.values()]
      .filter((tile) => !tile.local)
      .map((tile) => ({
        participantId: tile.id,
        name: tile.name,
        tracks: [...tile.tracks].map(([trackId, t]) => ({ trackId, kind: t.kind, mid: t.mid, muted: t.muted })),
        videoWidth: tile.video.videoWidth,
        videoHeight: tile.video.videoHeight,
        currentTime: tile.video.currentTime,
        audioPlaying: [...tile.audio.values()].some((audio) => !audio.paused),
      }));
  }

  #play(audio) {
    audio.play().catch((error) => {
      if (error.name === 'NotAllowedError') this.#onAutoplayBlocked();
    });
  }

  #ensure(id, name, { local }) {
    let tile = this.#tiles.get(id);
    if (tile) return tile;

    const root = document.createElement('article');
    root.className = local ? 'tile local' : 'tile';
    root.dataset.participantId = id;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true;
    const avatar = document.createElement('div');
    avatar.className = 'avatar';
    avatar.setAttribute('aria-hidden', 'true');
    const label = document.createElement('div');
    label.className = 'name';
    root.append(video, avatar, label);

    tile = {
      id, local, root, video, avatar, label, name: '',
      tracks: new Map(), audio: new Map(), videoTrackId: null, localCameraOn: true,
    };
    this.#tiles.set(id, tile);
    // Self-view first, then remote participants in the order they arrived.
    if (local) this.#container.prepend(root);
    else this.#container.append(root);
    this.upsert(id, name ?? 'Participant');
    if (local) label.textContent = `${tile.name} (you)`;
    this.#refresh(tile);
    this.#layout();
    return tile;
  }

  #refresh(tile) {
    let showVideo;
    if (tile.local) {
      showVideo = tile.videoTrackId !== null && tile.localCameraOn;
    } else {
      const video = tile.tracks.get(tile.videoTrackId);
      showVideo = Boolean(video) && !video.muted;
    }
    tile.root.classList.toggle('no-video', !showVideo);
  }

  #layout() {
    const count = this.#tiles.size;
    const width = this.#container.clientWidth;
    const height = this.#container.clientHeight;
    if (count === 0 || width === 0 || height === 0) return;
    let best = 0;
    for (let cols = 1; cols <= count; cols++) {
      const rows = Math.ceil(count / cols);
      const maxW = (width - GAP_PX * (cols - 1)) / cols;
      const maxH = (height - GAP_PX * (rows - 1)) / rows;
      best = Math.max(best, Math.min(maxW, maxH * ASPECT));
    }
    this.#container.style.setProperty('--tile-width', `${Math.floor(best)}px`);
  }
}

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((word) => [...word][0].toUpperCase()).join('') || '?';
}
