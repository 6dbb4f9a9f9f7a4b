// Which simulcast layer a remote video tile asks for (`set_quality`), from how large it is
// drawn on screen, and a small controller that sends only changes. No DOM lookups: the
// stage hands over the tile elements.

import { support } from './support.js';

/** Rendered video heights (device pixels) below which a lower layer is enough. */
export const LOW_BELOW_PX = 240;
export const MEDIUM_BELOW_PX = 480;

/**
 * The quality a tile needs.
 *
 * @param {{ width: number, height: number, devicePixelRatio?: number, visible: boolean }} size
 *   the tile's CSS size, the screen's pixel ratio, and whether any of it is on screen
 * @returns {'off' | 'low' | 'medium' | 'high'}
 */
export function qualityFor({ width, height, devicePixelRatio = 1, visible }) {
  if (!visible || width <= 0 || height <= 0) return 'off';
  const pixels = height * devicePixelRatio;
  if (pixels < LOW_BELOW_PX) return 'low';
  if (pixels < MEDIUM_BELOW_PX) return 'medium';
  return 'high';
}

const DEBOUNCE_MS = 300;

/**
 * Watches remote video tiles and calls `setQuality(trackId, quality)` when what a tile
 * needs changes (debounced, so a resize drag sends one message, not fifty).
 */
export class QualityController {
  #setQuality;
  /** element → `{ trackId, visible }` */
  #watched = new Map();
  /** trackId → the last quality sent */
  #sent = new Map();
  #timer = null;
  /** Without ResizeObserver, the window's resizes stand in for the tiles' (layouts follow them). */
  #resize = support.resizeObserver ? new ResizeObserver(() => this.#schedule()) : null;
  /** Without IntersectionObserver, every tile counts as visible. */
  #intersection = support.intersectionObserver ? new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const watched = this.#watched.get(entry.target);
      if (watched) watched.visible = entry.isIntersecting;
    }
    this.#schedule();
  }) : null;

  /** @param {(trackId: string, quality: string) => void} setQuality */
  constructor(setQuality) {
    this.#setQuality = setQuality;
    if (!this.#resize) globalThis.addEventListener?.('resize', () => this.#schedule());
  }

  /** Follows `element` for the remote video track `trackId` (null: nothing to ask for). */
  watch(element, trackId) {
    const watched = this.#watched.get(element);
    if (watched) {
      watched.trackId = trackId;
    } else {
      this.#watched.set(element, { trackId, visible: true });
      this.#resize?.observe(element);
      this.#intersection?.observe(element);
    }
    this.#schedule();
  }

  unwatch(element) {
    if (!this.#watched.delete(element)) return;
    this.#resize?.unobserve(element);
    this.#intersection?.unobserve(element);
  }

  /** The last quality sent for a track, or null. */
  sentFor(trackId) {
    return this.#sent.get(trackId) ?? null;
  }

  /** Re-evaluates soon (e.g. after the layout moved tiles in or out of view). */
  refresh() {
    this.#schedule();
  }

  /** Forgets what was sent, so every tile's quality goes out again (a new server session). */
  resend() {
    this.#sent.clear();
    this.#schedule();
  }

  /** Stops watching everything (the meeting ended). */
  clear() {
    for (const element of [...this.#watched.keys()]) this.unwatch(element);
    this.#sent.clear();
    clearTimeout(this.#timer);
  }

  #schedule() {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#evaluate(), DEBOUNCE_MS);
  }

  #evaluate() {
    for (const [element, { trackId, visible }] of this.#watched) {
      if (!trackId) continue;
      const rect = element.getBoundingClientRect();
      const shown = visible && element.isConnected && element.offsetParent !== null;
      const quality = qualityFor({
        width: rect.width,
        height: rect.height,
        devicePixelRatio: window.devicePixelRatio || 1,
        visible: shown,
      });
      if (this.#sent.get(trackId) === quality) continue;
      this.#sent.set(trackId, quality);
      this.#setQuality(trackId, quality);
    }
  }
}
