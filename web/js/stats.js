// Per-tile connection quality bars (always) and the statistics overlay (when turned on),
// from the Meeting's `trackStats` (remote tiles) and `localStats` (our own tiles).

const OVERLAY_INTERVAL_MS = 1000;
const BARS_INTERVAL_MS = 3000;
const LAYER_OF = { low: 'q', medium: 'h', high: 'f', off: 'off' };

export class StatsMonitor {
  #stage;
  #qualitySent;
  #meeting = null;
  #overlay = false;
  #timer = null;
  #running = false;

  /**
   * @param {import('./tiles.js').Stage} stage
   * @param {(trackId: string) => string | null} qualitySent the last `set_quality` of a track
   */
  constructor(stage, qualitySent) {
    this.#stage = stage;
    this.#qualitySent = qualitySent;
  }

  /** Starts polling for this meeting (null: stop). */
  setMeeting(meeting) {
    this.#meeting = meeting;
    clearTimeout(this.#timer);
    if (meeting) this.#schedule(0);
  }

  get overlay() {
    return this.#overlay;
  }

  /** Turns the overlay on or off; it refreshes every second only while on. */
  setOverlay(on) {
    this.#overlay = on;
    this.#stage.setStatsVisible(on);
    if (this.#meeting) this.#schedule(0);
  }

  #schedule(delay) {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#tick(), delay);
  }

  async #tick() {
    const meeting = this.#meeting;
    if (!meeting) return;
    if (this.#running) {
      // A round for an earlier meeting or setting is still out: come back after it.
      this.#schedule(250);
      return;
    }
    this.#running = true;
    try {
      const targets = this.#stage.statsTargets();
      const local = targets.some((t) => t.local) ? await meeting.localStats().catch(() => null) : null;
      await Promise.all(targets.map(async (target) => {
        if (target.local) {
          this.#show(target, localLevel(local), this.#overlay ? localText(local, target) : '');
          return;
        }
        const trackId = target.videoOff ? target.audioTrackId : (target.videoTrackId ?? target.audioTrackId);
        const stats = trackId ? await meeting.trackStats(trackId).catch(() => null) : null;
        const layer = target.videoTrackId ? this.#qualitySent(target.videoTrackId) : null;
        this.#show(target, remoteLevel(stats, target), this.#overlay ? remoteText(stats, target, layer) : '');
      }));
    } finally {
      this.#running = false;
    }
    if (this.#meeting === meeting) this.#schedule(this.#overlay ? OVERLAY_INTERVAL_MS : BARS_INTERVAL_MS);
  }

  #show(target, level, text) {
    const levelText = String(level);
    if (target.qualityElement.dataset.level !== levelText) {
      target.qualityElement.dataset.level = levelText;
      target.qualityElement.setAttribute('aria-label', `Connection quality ${level} of 3`);
    }
    if (this.#overlay) target.statsElement.textContent = text;
  }
}

/** 0–3 bars for what we receive of a remote tile. */
function remoteLevel(stats, { source, videoOff, paused }) {
  if (paused) return 1;
  if (!stats) return 3;
  const loss = stats.lossPercent ?? 0;
  // A screen share of a still page legitimately sends a frame or two per second.
  const lowFps = source === 'camera' && !videoOff && stats.fps !== undefined && stats.fps < 10;
  if (loss >= 15) return 0;
  if (loss >= 5 || (lowFps && stats.fps < 5)) return 1;
  if (loss >= 2 || lowFps) return 2;
  return 3;
}

/** 0–3 bars for what we send. */
function localLevel(stats) {
  if (!stats) return 3;
  const rtt = stats.rttMs ?? 0;
  if (rtt >= 800) return 0;
  if (rtt >= 400) return 1;
  if (rtt >= 200 || stats.qualityLimitation === 'bandwidth') return 2;
  return 3;
}

function remoteText(stats, { videoOff }, quality) {
  if (!stats) return 'No statistics yet';
  const lines = [];
  if (!videoOff && stats.width) lines.push(`${stats.width}×${stats.height} · ${round(stats.fps)} fps`);
  lines.push(`${round(stats.kbps)} kbps · loss ${(stats.lossPercent ?? 0).toFixed(1)} %`);
  if (stats.jitterMs !== undefined) lines.push(`jitter ${round(stats.jitterMs)} ms · freezes ${stats.freezeCount ?? 0}`);
  // The layer arriving, when the stats know it; else the one asked for.
  const layer = stats.layer ?? LAYER_OF[quality];
  if (layer) lines.push(`layer ${layer}${quality ? ` (asked ${quality})` : ''}`);
  return lines.join('\n');
}

function localText(stats, { source }) {
  if (!stats) return 'No statistics yet';
  const lines = [`↑ ${round(stats.outKbps)} kbps · rtt ${round(stats.rttMs)} ms`];
  if (stats.availableOutKbps) lines.push(`available ${round(stats.availableOutKbps)} kbps`);
  if (source === 'camera') {
    for (const layer of stats.layers ?? []) {
      const size = layer.width ? `${layer.width}×${layer.height} ${round(layer.fps)} fps` : '—';
      lines.push(`${layer.rid ?? 'layer'}: ${layer.active ? size : 'paused'}`);
    }
  }
  if (stats.qualityLimitation && stats.qualityLimitation !== 'none') lines.push(`limited by ${stats.qualityLimitation}`);
  return lines.join('\n');
}

function round(value) {
  return Number.isFinite(value) ? Math.round(value) : 0;
}
