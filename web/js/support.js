// What this browser offers of the features the client uses beyond the basics, checked once,
// so that each use can fall back instead of failing. Checked by feature, never by user agent.
// Firefox has all of the first group; older Safari lacks some. What differs between the
// browsers that have a feature is handled where it is used (see each entry).

const RTCRtpSenderClass = globalThis.RTCRtpSender;
const RTCPeerConnectionClass = globalThis.RTCPeerConnection;

export const support = Object.freeze({
  /**
   * `RTCRtpSender.setParameters`: pausing simulcast layers nobody watches (`publisher_layers`).
   * Without it every layer keeps being sent, which costs upload but breaks nothing.
   */
  senderParameters: typeof RTCRtpSenderClass?.prototype?.setParameters === 'function',
  /** `restartIce()`; without it a failed connection waits for the page to re-join. */
  restartIce: typeof RTCPeerConnectionClass?.prototype?.restartIce === 'function',
  /** Tile sizes and visibility for the layer each tile asks for; without them, window resizes. */
  resizeObserver: typeof globalThis.ResizeObserver === 'function',
  intersectionObserver: typeof globalThis.IntersectionObserver === 'function',
  /** `MediaStreamTrack.contentHint` ('detail' for a screen share); Firefox has none. */
  contentHint: 'contentHint' in (globalThis.MediaStreamTrack?.prototype ?? {}),
});

/**
 * Whether the simulcast layer `rid` of an outbound-rtp `report` is being sent. Chrome says so
 * in `report.active`; Firefox's report has no `active`, so the sender's own encodings (from
 * `getParameters()`) decide, and without either the layer counts as active.
 */
export function layerActive(report, encodings = []) {
  if (typeof report.active === 'boolean') return report.active;
  const encoding = encodings.find((e) => e.rid === report.rid);
  return encoding?.active ?? true;
}

/**
 * The candidate pair a connection uses, from a `getStats()` report: the transport's
 * `selectedCandidatePairId` (Chrome), else the pair marked `selected` (Firefox), else the
 * nominated pair that succeeded.
 */
export function selectedCandidatePair(stats) {
  for (const report of stats.values()) {
    if (report.type === 'transport' && report.selectedCandidatePairId) return stats.get(report.selectedCandidatePairId);
  }
  let nominated;
  for (const report of stats.values()) {
    if (report.type !== 'candidate-pair') continue;
    if (report.selected) return report;
    if (report.nominated && report.state === 'succeeded') nominated ??= report;
  }
  return nominated;
}
