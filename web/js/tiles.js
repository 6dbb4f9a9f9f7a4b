// The stage: one tile per participant's camera (ourselves included, mirrored) and one per
// screen share, laid out as a grid (every tile as large as fits) or as a speaker view (one
// large tile and a filmstrip); on a phone held upright the grid floats our own camera in the
// corner, like Meet. Each video covers its tile, or is letterboxed when their shapes are far
// apart (`data-fit`). Tiles are absolutely positioned, so switching layouts never
// moves a <video> in the DOM. Remote audio plays from one <audio> element per track.

const GAP = 10;
const WIDE = 16 / 9;
/** On narrow screens tiles may be taller than 16:9, down to this aspect (width / height). */
const NARROW_MIN_ASPECT = 3 / 4;
const NARROW_PX = 640;
/**
 * A camera whose aspect differs from its tile's by more than this factor is shown whole
 * (letterboxed, `data-fit="contain"`) instead of filling the tile and losing its sides.
 */
const CROP_LIMIT = 1.4;
/** On a phone's grid our own camera floats in the corner: its width share and margin. */
const PIP_LANDSCAPE_SHARE = 0.4;
const PIP_PORTRAIT_SHARE = 0.3;
const PIP_MARGIN = 10;
const SVG = 'http://www.w3.org/2000/svg';

/** The tile a track belongs to: screen tracks have their own, everything else is the camera's. */
const tileSourceOf = (source) => (source === 'screen' ? 'screen' : 'camera');
const keyOf = (participantId, source) => `${participantId}:${source}`;
/** The placements key of the filmstrip's "+N more" box. */
const MORE = Symbol('more');

export class Stage {
  #container;
  #sink;
  #empty;
  #more;
  #quality;
  #onAutoplayBlocked;
  #onAudioPlaying;
  #onLayoutChange;
  #onStopPresenting;
  /** key → tile (see createTile) */
  #tiles = new Map();
  /** trackId → `{ audio, participantId, source }` for remote audio */
  #audio = new Map();
  #layout = 'grid';
  /** The speaker layout was chosen for us by a screen share; undo it when the share ends. */
  #autoSpeaker = false;
  #pinned = null;
  /** Participant ids speaking now (loudest first), and the last remote one who spoke. */
  #speaking = [];
  #lastSpeaker = null;

  /**
   * @param {HTMLElement} container `#stage`
   * @param {{ quality: import('./quality.js').QualityController,
   *   onAutoplayBlocked: () => void, onAudioPlaying: () => void,
   *   onLayoutChange: (layout: string) => void, onStopPresenting: () => void }} options
   *   `onAutoplayBlocked` when the browser refuses to play remote audio without a user
   *   gesture, `onAudioPlaying` when every remote audio element plays (again)
   */
  constructor(container, { quality, onAutoplayBlocked, onAudioPlaying, onLayoutChange, onStopPresenting }) {
    this.#container = container;
    this.#quality = quality;
    this.#onAutoplayBlocked = onAutoplayBlocked;
    this.#onAudioPlaying = onAudioPlaying;
    this.#onLayoutChange = onLayoutChange;
    this.#onStopPresenting = onStopPresenting;
    this.#sink = document.createElement('div');
    this.#sink.className = 'audio-sink';
    this.#empty = document.createElement('p');
    this.#empty.className = 'stage-empty';
    this.#empty.textContent = 'Waiting for others to join…';
    this.#more = document.createElement('button');
    this.#more.type = 'button';
    this.#more.className = 'stage-more';
    this.#more.title = 'Show everyone (grid layout)';
    this.#more.hidden = true;
    this.#more.addEventListener('click', () => this.setLayout('grid'));
    container.append(this.#sink, this.#empty, this.#more);
    new ResizeObserver(() => this.#arrange()).observe(container);
  }

  get layout() {
    return this.#layout;
  }

  /** `'grid'` or `'speaker'`, chosen by the user. */
  setLayout(layout) {
    this.#autoSpeaker = false;
    this.#applyLayout(layout);
  }

  /** What the stage says when there is nobody to show. */
  setEmptyText(text) {
    this.#empty.textContent = text;
  }

  /** Shows or hides every tile's statistics overlay. */
  setStatsVisible(on) {
    this.#container.classList.toggle('stats-on', on);
  }

  /**
   * Our own tiles: the camera self-view and, while presenting, the screen.
   * `stream` null removes them (audience).
   */
  setLocal({ participantId, name, stream, micOn, cameraOn, screenStream }) {
    if (!stream) {
      this.#removeTile(keyOf(participantId, 'camera'));
      this.#removeTile(keyOf(participantId, 'screen'));
      this.#arrange();
      return;
    }
    const camera = this.#ensureTile(participantId, 'camera', { local: true, name: 'You' });
    setAvatar(camera, name ?? 'You');
    const videoTrack = stream.getVideoTracks()[0] ?? null;
    setVideo(camera, videoTrack);
    camera.localVideoOn = Boolean(videoTrack) && cameraOn;
    camera.localAudioOn = stream.getAudioTracks().length > 0 && micOn;
    this.#refresh(camera);

    const screenTrack = screenStream?.getVideoTracks()[0] ?? null;
    if (screenTrack) {
      const screen = this.#ensureTile(participantId, 'screen', { local: true, name: 'You are presenting' });
      if (!screen.root.querySelector('.tile-stop')) screen.root.append(this.#stopButton());
      setAvatar(screen, name ?? 'You');
      setVideo(screen, screenTrack);
      screen.localVideoOn = true;
      this.#refresh(screen);
    } else {
      this.#removeTile(keyOf(participantId, 'screen'));
    }
    this.#arrange();
  }

  /** "Stop presenting", on our own screen share's tile. */
  #stopButton() {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'tile-stop';
    button.textContent = 'Stop presenting';
    button.addEventListener('click', (event) => {
      event.stopPropagation(); // not a click on the tile (pin)
      this.#onStopPresenting();
    });
    return button;
  }

  /** A remote participant is known (or renamed, or changed role). Audience gets no tile. */
  upsertParticipant(id, name, role) {
    if (role === 'audience') {
      this.removeParticipant(id);
      return;
    }
    const tile = this.#ensureTile(id, 'camera', { local: false, name });
    for (const each of this.#tilesOf(id)) setName(each, name, each.source);
    this.#refresh(tile);
    this.#arrange();
  }

  removeParticipant(id) {
    for (const tile of this.#tilesOf(id)) this.#removeTile(tile.key);
    for (const [trackId, entry] of this.#audio) {
      if (entry.participantId === id) this.#removeAudio(trackId);
    }
    if (this.#pinned?.startsWith(`${id}:`)) this.#pinned = null;
    if (this.#lastSpeaker === id) this.#lastSpeaker = null;
    this.#arrange();
  }

  /** A remote track can be shown: `detail` of the Meeting's `remotetrack` event. */
  addTrack({ participantId, trackId, kind, source, mid, track, muted, unsupported }, name) {
    const tileSource = tileSourceOf(source);
    const tile = this.#ensureTile(participantId, tileSource, { local: false, name });
    tile.tracks.set(trackId, {
      kind, source, mid, track, muted: Boolean(muted), paused: false, unsupported: unsupported ?? null,
    });
    if (kind === 'video') {
      tile.videoTrackId = trackId;
      setVideo(tile, track);
      this.#quality.watch(tile.root, trackId);
    } else {
      this.#addAudio(trackId, participantId, tileSource, track);
    }
    this.#refresh(tile);
    if (tileSource === 'screen') this.#screenShareStarted();
    this.#arrange();
  }

  removeTrack(participantId, trackId) {
    this.#removeAudio(trackId);
    for (const tile of this.#tilesOf(participantId)) {
      if (!tile.tracks.delete(trackId)) continue;
      if (tile.videoTrackId === trackId) {
        const next = [...tile.tracks].find(([, t]) => t.kind === 'video');
        tile.videoTrackId = next?.[0] ?? null;
        setVideo(tile, next?.[1].track ?? null);
        this.#quality.watch(tile.root, tile.videoTrackId);
      }
      // A screen share is nothing without its video; a camera tile stays (avatar).
      if (tile.source === 'screen' && !tile.videoTrackId) {
        this.#removeTile(tile.key);
        this.#screenShareEnded();
      } else {
        this.#refresh(tile);
      }
    }
    this.#arrange();
  }

  setTrackMuted(participantId, trackId, muted) {
    for (const tile of this.#tilesOf(participantId)) {
      const entry = tile.tracks.get(trackId);
      if (!entry) continue;
      entry.muted = muted;
      this.#refresh(tile);
    }
    this.#arrange(); // on phones a tile's shape follows its video
  }

  /** The server stopped (or resumed) sending a video track for lack of bandwidth. */
  setTrackPaused(trackId, paused) {
    this.#updateTrack(trackId, { paused });
  }

  /**
   * The server says our connection cannot take the codec (`codec`, a MIME type) of this
   * track: its tile says so instead of staying black.
   */
  setTrackUnsupported(trackId, codec) {
    this.#updateTrack(trackId, { unsupported: codec });
  }

  /** Sets `changes` on the remote track `trackId` and refreshes its tiles. */
  #updateTrack(trackId, changes) {
    for (const tile of this.#tiles.values()) {
      const entry = tile.tracks.get(trackId);
      if (!entry) continue;
      Object.assign(entry, changes);
      this.#refresh(tile);
    }
  }

  /** `speakers`: `[{ participantId, level }]`, loudest first. */
  setSpeakers(speakers) {
    this.#speaking = speakers.map((s) => s.participantId);
    const loudestRemote = this.#speaking.find((id) => this.#tiles.get(keyOf(id, 'camera'))?.local === false);
    const changed = loudestRemote && loudestRemote !== this.#lastSpeaker;
    if (loudestRemote) this.#lastSpeaker = loudestRemote;
    for (const tile of this.#tiles.values()) {
      tile.root.classList.toggle('speaking', tile.source === 'camera' && this.#speaking.includes(tile.participantId));
    }
    if (changed && this.#layout === 'speaker') this.#arrange();
  }

  /**
   * Retries every remote audio element that is not playing: call it from a user gesture, or
   * when our own capture starts (Chrome lets a page that captures play sound).
   */
  unlockAudio() {
    for (const { audio } of this.#audio.values()) {
      if (audio.paused) this.#play(audio);
    }
  }

  /** Removes everything (the meeting ended). */
  clear() {
    for (const trackId of [...this.#audio.keys()]) this.#removeAudio(trackId);
    for (const key of [...this.#tiles.keys()]) this.#removeTile(key);
    this.#pinned = null;
    this.#lastSpeaker = null;
    this.#speaking = [];
    this.#autoSpeaker = false;
    this.#container.classList.remove('stats-on');
    this.#applyLayout('grid');
    this.#arrange();
  }

  /** Each tile's elements and tracks, for the statistics overlay. */
  statsTargets() {
    return [...this.#tiles.values()].map((tile) => ({
      local: tile.local,
      source: tile.source,
      videoTrackId: tile.videoTrackId,
      audioTrackId: [...tile.tracks].find(([, t]) => t.kind === 'audio')?.[0] ?? null,
      videoOff: tile.root.classList.contains('video-muted'),
      paused: tile.root.classList.contains('video-paused'),
      qualityElement: tile.qualityEl,
      statsElement: tile.statsEl,
    }));
  }

  /** The remote tiles as the user sees them, for the test hook. */
  snapshot() {
    return [...this.#tiles.values()].filter((tile) => !tile.local).map((tile) => {
      const rect = tile.root.getBoundingClientRect();
      const audios = [...this.#audio.values()].filter((a) => a.participantId === tile.participantId && a.source === tile.source);
      return {
        participantId: tile.participantId,
        name: tile.name,
        source: tile.source,
        trackId: tile.videoTrackId,
        tracks: [...tile.tracks].map(([trackId, t]) => ({ trackId, kind: t.kind, source: t.source, mid: t.mid, muted: t.muted })),
        audioMuted: tile.root.classList.contains('audio-muted'),
        videoMuted: tile.root.classList.contains('video-muted'),
        videoUnsupported: tile.tracks.get(tile.videoTrackId)?.unsupported ?? null,
        speaking: tile.root.classList.contains('speaking'),
        quality: tile.videoTrackId ? this.#quality.sentFor(tile.videoTrackId) : null,
        tileWidth: Math.round(rect.width),
        tileHeight: Math.round(rect.height),
        videoWidth: tile.video.videoWidth,
        videoHeight: tile.video.videoHeight,
        currentTime: tile.video.currentTime,
        audioPlaying: audios.some(({ audio }) => !audio.paused),
      };
    });
  }

  // ---- tiles ----

  #tilesOf(participantId) {
    return [...this.#tiles.values()].filter((tile) => tile.participantId === participantId);
  }

  #ensureTile(participantId, source, { local, name }) {
    const key = keyOf(participantId, source);
    let tile = this.#tiles.get(key);
    if (tile) return tile;
    tile = createTile(participantId, source, local);
    tile.key = key;
    setName(tile, name ?? this.#tiles.get(keyOf(participantId, 'camera'))?.name ?? 'Participant', source);
    tile.root.addEventListener('click', () => this.#togglePin(key));
    // The video's shape decides how it fits its tile, and on phones the tiles' shapes.
    tile.video.addEventListener('resize', () => this.#arrange());
    this.#tiles.set(key, tile);
    this.#container.append(tile.root);
    this.#refresh(tile);
    return tile;
  }

  #removeTile(key) {
    const tile = this.#tiles.get(key);
    if (!tile) return;
    this.#quality.unwatch(tile.root);
    tile.video.srcObject = null;
    tile.root.remove();
    this.#tiles.delete(key);
    if (this.#pinned === key) this.#pinned = null;
  }

  /** Brings a tile's classes in line with its tracks. */
  #refresh(tile) {
    let audioMuted;
    let videoMuted;
    let paused = false;
    let unsupported = null;
    if (tile.local) {
      audioMuted = tile.source === 'camera' && !tile.localAudioOn;
      videoMuted = !tile.localVideoOn;
    } else {
      const audio = [...tile.tracks.values()].filter((t) => t.kind === 'audio');
      const video = tile.tracks.get(tile.videoTrackId);
      // A screen share without sound is not "muted"; a camera tile without a microphone is.
      audioMuted = tile.source === 'camera' && (audio.length === 0 || audio.every((t) => t.muted));
      videoMuted = !video || video.muted;
      paused = Boolean(video?.paused) && !videoMuted;
      unsupported = videoMuted ? null : (video?.unsupported ?? null);
    }
    tile.root.classList.toggle('audio-muted', audioMuted);
    tile.root.classList.toggle('video-muted', videoMuted);
    tile.root.classList.toggle('video-paused', paused && !unsupported);
    tile.root.classList.toggle('video-unsupported', Boolean(unsupported));
    tile.unsupportedEl.textContent = unsupported
      ? `This browser cannot play this video: it is sent as ${codecName(unsupported)}.` : '';
    tile.mutedEl.hidden = !audioMuted;
    if (tile.videoTrackId) tile.root.dataset.trackId = tile.videoTrackId;
    else delete tile.root.dataset.trackId;
  }

  #togglePin(key) {
    this.#pinned = this.#pinned === key ? null : key;
    for (const tile of this.#tiles.values()) {
      const pinned = tile.key === this.#pinned;
      tile.root.classList.toggle('pinned', pinned);
      tile.pinButton.setAttribute('aria-pressed', String(pinned));
    }
    if (this.#pinned && this.#layout === 'grid') this.setLayout('speaker');
    else this.#arrange();
  }

  // ---- remote audio ----

  #addAudio(trackId, participantId, source, track) {
    this.#removeAudio(trackId);
    const audio = document.createElement('audio');
    audio.autoplay = true;
    audio.srcObject = new MediaStream([track]);
    this.#sink.append(audio);
    this.#audio.set(trackId, { audio, participantId, source });
    this.#play(audio);
  }

  #removeAudio(trackId) {
    const entry = this.#audio.get(trackId);
    if (!entry) return;
    entry.audio.srcObject = null;
    entry.audio.remove();
    this.#audio.delete(trackId);
  }

  #play(audio) {
    audio.play().then(
      () => {
        if ([...this.#audio.values()].every((entry) => !entry.audio.paused)) this.#onAudioPlaying();
      },
      (error) => {
        if (error.name === 'NotAllowedError') this.#onAutoplayBlocked();
      },
    );
  }

  // ---- layout ----

  #applyLayout(layout) {
    if (layout === this.#layout) return;
    this.#layout = layout;
    this.#onLayoutChange(layout);
    this.#arrange();
  }

  /** A remote screen share appeared: show it large, like every meeting app does. */
  #screenShareStarted() {
    if (this.#layout !== 'grid') return;
    this.#applyLayout('speaker');
    this.#autoSpeaker = true;
  }

  #screenShareEnded() {
    const remoteShares = [...this.#tiles.values()].some((t) => t.source === 'screen' && !t.local);
    if (this.#autoSpeaker && !remoteShares && !this.#pinned) {
      this.#autoSpeaker = false;
      this.#applyLayout('grid');
    }
  }

  /** The tile shown large in the speaker layout. */
  #featured(tiles) {
    const byKey = (key) => tiles.find((t) => t.key === key);
    return tiles.find((t) => t.source === 'screen' && !t.local)
      ?? tiles.find((t) => t.source === 'screen')
      ?? byKey(this.#pinned)
      ?? byKey(keyOf(this.#lastSpeaker, 'camera'))
      ?? tiles.find((t) => !t.local)
      ?? tiles[0];
  }

  /** The filmstrip's "+N more" box (a button to the grid, where everyone fits), or none. */
  #showMore(place) {
    this.#more.hidden = !place;
    if (!place) return;
    this.#more.textContent = `+${place.count} more`;
    Object.assign(this.#more.style, {
      left: `${place.x}px`, top: `${place.y}px`, width: `${place.width}px`, height: `${place.height}px`,
    });
  }

  /** Positions every tile for the current layout and container size. */
  #arrange() {
    const width = this.#container.clientWidth;
    const height = this.#container.clientHeight;
    // Screens first, then everyone in the order they came; ourselves first among cameras.
    const tiles = [...this.#tiles.values()].sort((a, b) => rank(a) - rank(b));
    this.#empty.hidden = tiles.length > 0;
    if (!tiles.length || !width || !height) {
      this.#showMore(null);
      return;
    }

    let placements;
    const self = tiles.find((t) => t.local && t.source === 'camera');
    if (this.#layout === 'speaker' && tiles.length > 1) {
      const featured = this.#featured(tiles);
      placements = speakerLayout(featured, tiles.filter((t) => t !== featured), width, height);
    } else if (self && tiles.length > 1 && width < NARROW_PX && height > width) {
      // A phone held upright: the others share the stage, we float in its corner.
      placements = pipLayout(self, tiles.filter((t) => t !== self), width, height);
    } else {
      placements = gridLayout(tiles, width, height);
    }
    this.#showMore(placements.get(MORE));
    for (const tile of tiles) {
      const place = placements.get(tile);
      tile.root.hidden = !place;
      tile.root.classList.toggle('large', Boolean(place?.large));
      tile.root.classList.toggle('small', Boolean(place) && place.height < 150);
      tile.pip = Boolean(place?.pip);
      tile.root.classList.toggle('pip', tile.pip);
      if (!place) continue;
      Object.assign(tile.root.style, {
        left: `${place.x}px`, top: `${place.y}px`, width: `${place.width}px`, height: `${place.height}px`,
      });
      tile.box = { width: place.width, height: place.height };
      updateFit(tile);
    }
    this.#quality.refresh();
  }
}

/** Sort order on the stage. */
function rank(tile) {
  if (tile.source === 'screen') return tile.local ? 1 : 0;
  return tile.local ? 2 : 3 + tile.order;
}

let nextOrder = 0;

/** Builds a tile's elements; the caller names it and adds it to the stage. */
function createTile(participantId, source, local) {
  const root = document.createElement('article');
  root.className = `tile${local ? ' local' : ''}`;
  root.dataset.participantId = participantId;
  root.dataset.source = source;

  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true; // sound plays from the <audio> elements

  const avatar = document.createElement('div');
  avatar.className = 'tile-avatar';
  avatar.setAttribute('aria-hidden', 'true');

  const qualityEl = document.createElement('span');
  qualityEl.className = 'tile-quality';
  qualityEl.dataset.level = '3';
  qualityEl.setAttribute('role', 'img');
  qualityEl.setAttribute('aria-label', 'Connection quality');
  qualityEl.append(...[1, 2, 3].map(() => document.createElement('i')));

  const statsEl = document.createElement('pre');
  statsEl.className = 'tile-stats';

  const mutedEl = document.createElement('span');
  mutedEl.className = 'tile-muted';
  mutedEl.title = 'Microphone off';
  mutedEl.append(icon('i-mic-off'));

  const nameEl = document.createElement('span');
  nameEl.className = 'tile-name';
  const label = document.createElement('div');
  label.className = 'tile-label';
  label.append(mutedEl, nameEl);

  const pinButton = document.createElement('button');
  pinButton.type = 'button';
  pinButton.className = 'tile-pin';
  pinButton.setAttribute('aria-pressed', 'false');
  pinButton.append(icon('i-pin'));

  const paused = document.createElement('span');
  paused.className = 'tile-paused';
  paused.textContent = 'Video paused: low bandwidth';

  const unsupportedEl = document.createElement('span');
  unsupportedEl.className = 'tile-unsupported';

  root.append(video, avatar, paused, unsupportedEl, qualityEl, statsEl, label, pinButton);
  return {
    key: '', participantId, source, local, name: '', order: nextOrder++,
    root, video, avatar, nameEl, mutedEl, qualityEl, statsEl, pinButton, unsupportedEl,
    tracks: new Map(), videoTrackId: null, localVideoOn: false, localAudioOn: false,
    box: null, pip: false,
  };
}

/** `video/H264` → `H.264`, for people. */
export function codecName(mimeType) {
  const name = String(mimeType).split('/').pop();
  return { H264: 'H.264', H265: 'H.265' }[name.toUpperCase()] ?? name.toUpperCase();
}

function setName(tile, name, source) {
  // Our own tiles keep the labels they were created with ("You", "You are presenting").
  if (!name || (tile.local && tile.name)) return;
  const shown = source === 'screen' && !tile.local ? `${name} (presenting)` : name;
  tile.name = name;
  tile.nameEl.textContent = shown;
  setAvatar(tile, name);
  tile.root.setAttribute('aria-label', shown);
  tile.pinButton.setAttribute('aria-label', `Pin ${shown}`);
  tile.pinButton.title = `Pin ${shown} (show large)`;
}

/** The initials shown while the video is off, in a colour of their own. */
function setAvatar(tile, name) {
  tile.avatar.textContent = initials(name);
  tile.avatar.style.setProperty('--hue', String(hueOf(name)));
}

/**
 * Cover (fill the tile, cropping the video's edges) when the video's shape is close to the
 * tile's; contain (all of it, dark bars) when it is far off, and always for screen shares.
 */
function updateFit(tile) {
  const { videoWidth, videoHeight } = tile.video;
  let fit = 'cover';
  if (tile.source === 'screen') {
    fit = 'contain';
  } else if (videoWidth && videoHeight && tile.box?.width && tile.box?.height) {
    const ratio = (videoWidth / videoHeight) / (tile.box.width / tile.box.height);
    if (Math.max(ratio, 1 / ratio) > CROP_LIMIT) fit = 'contain';
  }
  if (tile.root.dataset.fit !== fit) tile.root.dataset.fit = fit;
}

/** Shows `track` (or nothing) in the tile's <video>. */
function setVideo(tile, track) {
  const current = tile.video.srcObject?.getVideoTracks()[0] ?? null;
  if (current === track) return;
  tile.video.srcObject = track ? new MediaStream([track]) : null;
  if (track) tile.video.play().catch(() => {}); // muted video may always play
}

function icon(id) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  const use = document.createElementNS(SVG, 'use');
  use.setAttribute('href', `#${id}`);
  svg.append(use);
  return svg;
}

/** Up to two initials of a name, for avatars. */
export function initials(name) {
  const words = String(name).trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((word) => [...word][0].toUpperCase()).join('') || '?';
}

/** A stable hue (0–359) per name, for avatar colours. */
export function hueOf(name) {
  let hash = 0;
  for (const char of String(name)) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return hash % 360;
}

/**
 * The grid: the column count that makes tiles largest. Tiles are 16:9, except on narrow
 * screens where they may grow taller (down to 3:4, or as far as landscape videos still
 * fill them) to use the height.
 */
export function gridLayout(tiles, width, height) {
  // Landscape cameras gain nothing from tiles taller than they can fill without bars.
  const landscape = tiles.every(isLandscape);
  const minAspect = width >= NARROW_PX ? WIDE : landscape ? WIDE / CROP_LIMIT : NARROW_MIN_ASPECT;
  const count = tiles.length;
  let best = null;
  for (let cols = 1; cols <= count; cols++) {
    const rows = Math.ceil(count / cols);
    const cell = fit((width - GAP * (cols - 1)) / cols, (height - GAP * (rows - 1)) / rows, minAspect, WIDE);
    if (!best || cell.width * cell.height > best.width * best.height) best = { cols, rows, ...cell };
  }
  const placements = new Map();
  const top = (height - best.rows * best.height - GAP * (best.rows - 1)) / 2;
  tiles.forEach((tile, i) => {
    const row = Math.floor(i / best.cols);
    const inRow = Math.min(best.cols, count - row * best.cols);
    const left = (width - inRow * best.width - GAP * (inRow - 1)) / 2;
    placements.set(tile, {
      x: Math.round(left + (i % best.cols) * (best.width + GAP)),
      y: Math.round(top + row * (best.height + GAP)),
      width: Math.floor(best.width),
      height: Math.floor(best.height),
    });
  });
  return placements;
}

/** Whether a tile shows a landscape video; a tile without a picture (avatar) fits any shape. */
function isLandscape(tile) {
  const { videoWidth, videoHeight } = tile.video;
  return !videoWidth || tile.root.classList.contains('video-muted') || videoWidth > videoHeight;
}

/**
 * A phone's grid, like Meet's: the other tiles share the stage (one fills it, two are
 * stacked, more make two columns) and our own camera floats in the bottom-right corner,
 * shaped like its video (16:9 or 3:4).
 */
function pipLayout(self, others, width, height) {
  const placements = new Map();
  const cols = others.length > 2 ? 2 : 1;
  const rows = Math.ceil(others.length / cols);
  const cellWidth = Math.floor((width - GAP * (cols - 1)) / cols);
  // Two columns of tiles taller than 3:4 would be mostly bars: keep them to 3:4, centred.
  // Two landscape cameras stacked stay as tall as they can fill (no bars), centred.
  let minAspect = cols > 1 ? NARROW_MIN_ASPECT : 0;
  if (others.length === 2 && others.every(isLandscape)) minAspect = WIDE / CROP_LIMIT;
  const cellHeight = Math.floor(Math.min((height - GAP * (rows - 1)) / rows,
    minAspect ? cellWidth / minAspect : Infinity));
  const top = Math.max(0, (height - rows * cellHeight - GAP * (rows - 1)) / 2);
  others.forEach((tile, i) => {
    const row = Math.floor(i / cols);
    const inRow = Math.min(cols, others.length - row * cols);
    const left = (width - inRow * cellWidth - GAP * (inRow - 1)) / 2;
    placements.set(tile, {
      x: Math.round(left + (i % cols) * (cellWidth + GAP)),
      y: Math.round(top + row * (cellHeight + GAP)),
      width: cellWidth,
      height: cellHeight,
    });
  });
  const { videoWidth, videoHeight } = self.video;
  const aspect = videoWidth && videoHeight
    ? Math.min(WIDE, Math.max(NARROW_MIN_ASPECT, videoWidth / videoHeight))
    : NARROW_MIN_ASPECT;
  let pipWidth = width * (aspect >= 1 ? PIP_LANDSCAPE_SHARE : PIP_PORTRAIT_SHARE);
  let pipHeight = pipWidth / aspect;
  if (pipHeight > height * 0.3) {
    pipHeight = height * 0.3;
    pipWidth = pipHeight * aspect;
  }
  placements.set(self, {
    x: Math.round(width - pipWidth - PIP_MARGIN),
    y: Math.round(height - pipHeight - PIP_MARGIN),
    width: Math.round(pipWidth),
    height: Math.round(pipHeight),
    pip: true,
  });
  return placements;
}

/**
 * The speaker view: `featured` large, the others in a filmstrip on the right, or below on
 * portrait screens (as many rows as the large tile leaves room for). Tiles that do not fit
 * the filmstrip are hidden.
 */
function speakerLayout(featured, others, width, height) {
  return width < NARROW_PX || width < height
    ? speakerBelow(featured, others, width, height)
    : speakerBeside(featured, others, width, height);
}

function speakerBeside(featured, others, width, height) {
  const placements = new Map();
  const tileWidth = Math.round(Math.min(260, Math.max(160, width * 0.2)));
  const tileHeight = Math.round(tileWidth * 9 / 16);
  const count = Math.min(others.length, Math.max(1, Math.floor((height + GAP) / (tileHeight + GAP))));
  const top = (height - count * tileHeight - (count - 1) * GAP) / 2;
  const slots = Array.from({ length: count }, (_, i) => ({
    x: width - tileWidth, y: Math.round(top + i * (tileHeight + GAP)), width: tileWidth, height: tileHeight,
  }));
  fillSlots(placements, others, slots);
  const mainWidth = width - tileWidth - GAP;
  const cell = fit(mainWidth, height, WIDE, WIDE);
  placements.set(featured, {
    x: Math.round((mainWidth - cell.width) / 2),
    y: Math.round((height - cell.height) / 2),
    width: Math.floor(cell.width),
    height: Math.floor(cell.height),
    large: true,
  });
  return placements;
}

function speakerBelow(featured, others, width, height) {
  const placements = new Map();
  const perRow = Math.min(others.length, 2);
  const tileWidth = Math.floor(Math.min(220, (width - GAP * (perRow - 1)) / perRow));
  const tileHeight = Math.round(tileWidth * 9 / 16);
  // A camera may grow taller than 16:9 on a phone; a screen share would only get black bars.
  const minAspect = featured.source === 'screen' ? WIDE : NARROW_MIN_ASPECT;
  const cell = fit(width, height - tileHeight - GAP, minAspect, WIDE);
  const neededRows = Math.ceil(others.length / perRow);
  const rows = Math.max(1, Math.min(neededRows, Math.floor((height - cell.height) / (tileHeight + GAP))));
  const blockHeight = cell.height + rows * (tileHeight + GAP);
  const top = Math.max(0, (height - blockHeight) / 2);
  placements.set(featured, {
    x: Math.round((width - cell.width) / 2),
    y: Math.round(top),
    width: Math.floor(cell.width),
    height: Math.floor(cell.height),
    large: true,
  });
  const count = Math.min(others.length, rows * perRow);
  const slots = Array.from({ length: count }, (_, i) => {
    const row = Math.floor(i / perRow);
    const inRow = Math.min(perRow, count - row * perRow);
    const left = (width - inRow * tileWidth - (inRow - 1) * GAP) / 2;
    return {
      x: Math.round(left + (i % perRow) * (tileWidth + GAP)),
      y: Math.round(top + cell.height + GAP + row * (tileHeight + GAP)),
      width: tileWidth,
      height: tileHeight,
    };
  });
  fillSlots(placements, others, slots);
  return placements;
}

/**
 * Puts the filmstrip's tiles into its slots. When they do not all fit, the last slot says
 * how many more there are (under the key MORE) and the rest stay hidden.
 */
function fillSlots(placements, tiles, slots) {
  const overflow = tiles.length > slots.length;
  const shown = overflow ? slots.length - 1 : tiles.length;
  tiles.slice(0, shown).forEach((tile, i) => placements.set(tile, slots[i]));
  if (overflow) placements.set(MORE, { ...slots[shown], count: tiles.length - shown });
}

/** The largest box inside `width`×`height` whose aspect lies in [minAspect, maxAspect]. */
function fit(width, height, minAspect, maxAspect) {
  let w = Math.max(0, width);
  let h = Math.max(0, height);
  if (w / h > maxAspect) w = h * maxAspect;
  else if (w / h < minAspect) h = w / minAspect;
  return { width: w, height: h };
}
