#!/usr/bin/env node
// Simulcast through the server with two real browsers, each running its own small protocol
// client written here (not the web client in web/), the way an outside checker would.
//
// A subscriber page joins `--room` first. A publisher page (its own browser context) joins,
// takes the fake camera at 1280x720 plus the microphone, and publishes the camera as three
// simulcast encodings: rid q (1/4, 150 kbps), h (1/2, 500 kbps), f (full, 1.5 Mbps). It
// honours `publisher_layers` by setting `encodings[i].active`. The subscriber then asks for
// `low`, `medium`, `high` and `off` in turn, sampling its inbound-rtp stats every
// `--sample-ms`: after each request it waits (at most `--switch-timeout-ms`) for the decoded
// frameWidth of that layer (320, 640, 1280), holds `--hold-ms`, and after `off` checks that
// framesDecoded stops rising. The publisher's outbound-rtp stats are sampled per rid.
//
// stdout, one JSON object per line: progress events (`{"event":"joined",...}`,
// `{"event":"publisher_layers",...}`, `{"event":"phase",...}`, ...) then one result,
// `{"ok":true,...}` (exit 0) or `{"ok":false,"error":"…",...}` (exit 1). `ok` means the script
// ran to the end; whether the widths, freezes and layers are right is for the caller to judge
// from the result (see tests/browser_simulcast.rs). stderr: the pages' console errors.

import { launch, openPage, summarize, waitFor, sleep, parseArgs } from './lib.mjs';

const USAGE = `usage: node simulcast.mjs --url http://localhost:PORT [--room simulcast]
       [--timeout-ms 80000] [--switch-timeout-ms 15000] [--layers-timeout-ms 10000] [--sustain-ms 2000]
       [--hold-ms 3000] [--off-grace-ms 1500] [--off-check-ms 2500] [--sample-ms 100]`;

/** Expected decoded width per requested quality, for the 1280x720 camera. */
const WIDTHS = { low: 320, medium: 640, high: 1280 };
const RID_WIDTHS = { q: 320, h: 640, f: 1280 };

function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

// ---- The protocol client, evaluated inside each page (self-contained). ----

function pageClient() {
  const sc = {
    participantId: null,
    events: [], // server messages of interest, with their arrival time
    errors: [],
    remoteTracks: [], // { participantId, track } from joined / track_published
    received: [], // ontrack: { streamId, trackId, kind, mid }
    layerUpdates: [], // publisher_layers applied: { t, mid, rids, active }
    samples: [], // subscriber inbound video samples
    pubStats: null, // publisher per-rid stats
    connectionState: 'new',
  };
  window.sc = sc;
  let ws;
  let pc;
  let chain = Promise.resolve();
  let grantWaiter = null;
  let publishing = false;
  let offerOutstanding = false;
  let needOffer = false;
  const send = (message) => ws.send(JSON.stringify(message));
  const enqueue = (step) => {
    chain = chain.then(step).catch((e) => {
      sc.errors.push(`negotiation: ${e.message}`);
      console.error('negotiation step failed', e);
    });
    return chain;
  };

  async function offer() {
    if (pc.signalingState !== 'stable') {
      needOffer = true;
      return;
    }
    needOffer = false;
    const tracks = [];
    await pc.setLocalDescription();
    for (const t of pc.getTransceivers()) {
      if (t.sender.track && t.mid !== null) {
        tracks.push({ mid: t.mid, source: t.sender.track.kind === 'video' ? 'camera' : 'microphone' });
      }
    }
    offerOutstanding = true;
    send({ type: 'offer', sdp: pc.localDescription.sdp, tracks });
  }

  async function requestOffer() {
    // Take the server's negotiation lock; offer anyway if no grant comes in 3 s.
    const granted = new Promise((resolve) => {
      grantWaiter = resolve;
      setTimeout(resolve, 3000);
    });
    send({ type: 'negotiate_request' });
    await granted;
    grantWaiter = null;
    await enqueue(offer);
  }

  async function onMessage(m) {
    switch (m.type) {
      case 'joined':
        sc.participantId = m.participant_id;
        for (const p of m.participants) {
          for (const track of p.tracks) sc.remoteTracks.push({ participantId: p.id, track });
        }
        sc.joined?.(m);
        break;
      case 'track_published':
        sc.remoteTracks.push({ participantId: m.participant_id, track: m.track });
        break;
      case 'offer':
        enqueue(async () => {
          const collided = pc.signalingState === 'have-local-offer';
          // Polite peer: an implicit rollback of our own offer, which the server drops.
          await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
          await pc.setLocalDescription();
          send({ type: 'answer', sdp: pc.localDescription.sdp });
          if (collided) {
            offerOutstanding = false;
            needOffer = true;
          }
          if (needOffer && publishing) requestOffer();
        });
        break;
      case 'answer':
        enqueue(async () => {
          if (pc.signalingState !== 'have-local-offer') return;
          await pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
          offerOutstanding = false;
          if (needOffer && publishing) requestOffer();
        });
        break;
      case 'candidate':
        enqueue(async () => {
          if (!m.candidate || !m.candidate.candidate) return;
          await pc.addIceCandidate(m.candidate).catch((e) => sc.errors.push(`candidate: ${e.message}`));
        });
        break;
      case 'negotiate_grant':
        grantWaiter?.();
        break;
      case 'publisher_layers':
        sc.events.push({ t: Date.now(), type: m.type, track_id: m.track_id, mid: m.mid, rids: m.rids });
        enqueue(() => applyLayers(m));
        break;
      case 'error':
        sc.errors.push(`${m.code}: ${m.message}`);
        console.error(`server error ${m.code}: ${m.message}`);
        break;
      case 'track_paused':
      case 'track_resumed':
      case 'track_unpublished':
      case 'participant_left':
        sc.events.push({ t: Date.now(), ...m });
        break;
      default:
        break;
    }
  }

  async function applyLayers({ mid, rids }) {
    const transceiver = pc.getTransceivers().find((t) => t.mid === mid);
    if (!transceiver) {
      sc.errors.push(`publisher_layers for unknown mid ${mid}`);
      return;
    }
    const params = transceiver.sender.getParameters();
    for (const encoding of params.encodings) encoding.active = rids.includes(encoding.rid);
    await transceiver.sender.setParameters(params);
    sc.layerUpdates.push({
      t: Date.now(),
      mid,
      rids,
      active: Object.fromEntries(params.encodings.map((e) => [e.rid, e.active])),
    });
  }

  /** Connects and joins; resolves with the `joined` message. */
  sc.join = (wsUrl, room, name) => new Promise((resolve, reject) => {
    sc.joined = resolve;
    ws = new WebSocket(wsUrl);
    ws.onerror = () => reject(new Error('websocket error'));
    ws.onclose = (e) => sc.errors.push(`websocket closed ${e.code}`);
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === 'joined') {
        pc = new RTCPeerConnection({ iceServers: m.ice_servers, bundlePolicy: 'max-bundle' });
        sc.pc = pc;
        pc.onicecandidate = (ev) => send({ type: 'candidate', candidate: ev.candidate ? ev.candidate.toJSON() : null });
        pc.onconnectionstatechange = () => { sc.connectionState = pc.connectionState; };
        pc.ontrack = (ev) => {
          sc.received.push({ streamId: ev.streams[0]?.id ?? null, trackId: ev.track.id, kind: ev.track.kind, mid: ev.transceiver.mid });
          if (ev.track.kind === 'video') {
            const video = document.createElement('video');
            video.muted = true;
            video.autoplay = true;
            video.playsInline = true;
            video.srcObject = new MediaStream([ev.track]);
            document.body.append(video);
            video.play().catch(() => {});
          }
        };
      }
      onMessage(m);
    };
    ws.onopen = () => send({ type: 'join', room, name });
  });

  /** Publishes the fake camera (1280x720, three simulcast encodings) and microphone. */
  sc.publish = async () => {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: { exact: 1280 }, height: { exact: 720 }, frameRate: 30 },
    });
    const [video] = stream.getVideoTracks();
    const [audio] = stream.getAudioTracks();
    const settings = video.getSettings();
    sc.videoTransceiver = pc.addTransceiver(video, {
      direction: 'sendonly',
      streams: [stream],
      sendEncodings: [
        { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
        { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
        { rid: 'f', maxBitrate: 1500000 },
      ],
    });
    pc.addTransceiver(audio, { direction: 'sendonly', streams: [stream] });
    publishing = true;
    await requestOffer();
    return { width: settings.width, height: settings.height, frameRate: settings.frameRate };
  };

  /** Samples the publisher's outbound video per rid every `intervalMs`. */
  sc.samplePublisher = (intervalMs) => {
    const rids = {};
    sc.pubStats = { rids, timeline: [], candidatePair: null };
    let lastTimeline = 0;
    const loop = async () => {
      if (sc.stopped) return;
      const report = await sc.videoTransceiver.sender.getStats();
      const now = Date.now();
      const widths = {};
      const remote = new Map();
      for (const s of report.values()) {
        if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) {
          const r = rids[s.rid] ?? (rids[s.rid] = {
            max_frame_width: 0, max_frame_height: 0, first_sent_ms: null, last_bytes: 0, last_frames: 0,
            sending: false, sending_since: null, longest_sending_ms: 0,
          });
          const bytes = s.bytesSent ?? 0;
          const frames = s.framesEncoded ?? 0;
          // Sending: bytes and encoded frames rose since the previous sample.
          r.sending = bytes > r.last_bytes && frames > r.last_frames && (s.frameWidth ?? 0) > 0;
          if (r.sending && r.first_sent_ms === null) r.first_sent_ms = now;
          if (r.sending) {
            r.sending_since ??= now;
            r.longest_sending_ms = Math.max(r.longest_sending_ms, now - r.sending_since);
          } else {
            r.sending_since = null;
          }
          r.last_bytes = bytes;
          r.last_frames = frames;
          r.bytes_sent = bytes;
          r.frame_width = s.frameWidth ?? 0;
          r.frame_height = s.frameHeight ?? 0;
          if (r.sending) {
            r.max_frame_width = Math.max(r.max_frame_width, r.frame_width);
            r.max_frame_height = Math.max(r.max_frame_height, r.frame_height);
          }
          r.retransmitted_bytes_sent = s.retransmittedBytesSent ?? null;
          r.nack_count = s.nackCount ?? null;
          r.pli_count = s.pliCount ?? null;
          r.remote_id = s.remoteId ?? null;
          r.frames_encoded = s.framesEncoded ?? 0;
          r.frames_per_second = s.framesPerSecond ?? null;
          r.target_bitrate = s.targetBitrate ?? null;
          r.quality_limitation_reason = s.qualityLimitationReason ?? null;
          r.active = s.active ?? null;
          r.encoder = s.encoderImplementation ?? null;
          r.ssrc = s.ssrc;
          widths[s.rid] = r.sending ? r.frame_width : 0;
        } else if (s.type === 'remote-inbound-rtp' && s.kind === 'video') {
          remote.set(s.id, { fraction_lost: s.fractionLost ?? null, packets_lost: s.packetsLost ?? null, round_trip_time: s.roundTripTime ?? null });
        } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
          sc.pubStats.candidatePair = {
            available_outgoing_bitrate: s.availableOutgoingBitrate ?? null,
            current_round_trip_time: s.currentRoundTripTime ?? null,
            bytes_sent: s.bytesSent ?? null,
          };
        }
      }
      for (const r of Object.values(rids)) r.remote = remote.get(r.remote_id) ?? null;
      if (now - lastTimeline >= 1000) {
        lastTimeline = now;
        sc.pubStats.timeline.push({
          t: now,
          widths,
          bwe: sc.pubStats.candidatePair?.available_outgoing_bitrate ?? null,
          limitation: rids.q?.quality_limitation_reason ?? null,
          fraction_lost: Object.fromEntries(Object.entries(rids).map(([rid, r]) => [rid, r.remote?.fraction_lost ?? null])),
        });
      }
      setTimeout(loop, intervalMs);
    };
    loop();
  };

  /** The receiver of `publisherId`'s video, once it has arrived. */
  sc.videoReceiverOf = (publisherId) => {
    const entry = [...sc.received].reverse().find((r) => r.streamId === publisherId && r.kind === 'video');
    if (!entry) return null;
    return pc.getTransceivers().find((t) => t.mid === entry.mid)?.receiver ?? null;
  };

  /** Samples the inbound video from `publisherId` every `intervalMs` into `sc.samples`. */
  sc.sampleSubscriber = (publisherId, intervalMs) => {
    const loop = async () => {
      if (sc.stopped) return;
      const receiver = sc.videoReceiverOf(publisherId);
      if (receiver) {
        const report = await receiver.getStats();
        const now = Date.now();
        for (const s of report.values()) {
          if (s.type !== 'inbound-rtp' || s.kind !== 'video') continue;
          sc.samples.push({
            t: now,
            frames_decoded: s.framesDecoded ?? 0,
            frame_width: s.frameWidth ?? 0,
            frame_height: s.frameHeight ?? 0,
            frames_received: s.framesReceived ?? 0,
            bytes_received: s.bytesReceived ?? 0,
            key_frames_decoded: s.keyFramesDecoded ?? 0,
            freeze_count: s.freezeCount ?? null,
            total_freezes_duration: s.totalFreezesDuration ?? null,
            packets_lost: s.packetsLost ?? 0,
            nack_count: s.nackCount ?? 0,
            pli_count: s.pliCount ?? 0,
            ssrc: s.ssrc,
          });
        }
      }
      setTimeout(loop, intervalMs);
    };
    loop();
  };

  sc.setQuality = (trackId, quality) => {
    send({ type: 'set_quality', track_id: trackId, quality });
    return Date.now();
  };

  sc.leave = () => {
    sc.stopped = true;
    try { send({ type: 'leave' }); } catch { /* closed */ }
  };
}

// ---- Orchestration, in node. ----

async function newClient(browser, options, role, deadline) {
  const page = await openPage(browser, new URL('/healthz', options.url).toString(), {
    // The page is /healthz (any page of the server's origin gives getUserMedia); its missing
    // favicon is not worth a line.
    onConsoleError: (text) => {
      if (!text.startsWith('Failed to load resource: the server responded with a status of 404')) process.stderr.write(`[${role}] ${text}\n`);
    },
    timeoutMs: deadline - Date.now(),
  });
  await page.evaluate(pageClient);
  const wsUrl = new URL('/ws', options.url);
  wsUrl.protocol = 'ws:';
  const joined = await page.evaluate(([url, room, name]) => window.sc.join(url, room, name), [wsUrl.toString(), options.room, role]);
  emit({ event: 'joined', role, participant_id: joined.participant_id });
  return { page, id: joined.participant_id };
}

function pubSnapshot(page) {
  return page.evaluate(() => ({ stats: window.sc.pubStats, layers: window.sc.layerUpdates, events: window.sc.events, errors: window.sc.errors, connection: window.sc.connectionState }));
}

/** Subscriber samples the page has taken since `from`. */
async function samplesSince(page, from) {
  return page.evaluate((i) => window.sc.samples.slice(i), from);
}

async function run(options, browser, result) {
  const deadline = Date.now() + options.timeoutMs;
  const sub = await newClient(browser, options, 'subscriber', deadline);
  const pub = await newClient(browser, options, 'publisher', deadline);
  result.publisher_id = pub.id;
  result.subscriber_id = sub.id;

  const camera = await pub.page.evaluate(() => window.sc.publish());
  result.camera = camera;
  emit({ event: 'published', camera });
  await pub.page.evaluate((ms) => window.sc.samplePublisher(ms), 500);

  // The subscriber learns the publisher's video track id and receives it.
  const trackId = await waitFor('the publisher\'s video track at the subscriber', () => sub.page.evaluate((pid) => {
    const t = window.sc.remoteTracks.find((r) => r.participantId === pid && r.track.kind === 'video');
    return t ? t.track.id : null;
  }, pub.id), { deadline });
  result.track_id = trackId;
  await sub.page.evaluate(([pid, ms]) => window.sc.sampleSubscriber(pid, ms), [pub.id, options.sampleMs]);

  // The publisher sends all three layers (the server's transport-cc feedback lets Chrome's
  // bandwidth estimate rise), and the subscriber decodes frames.
  const publishedAt = Date.now();
  let snapshot = null;
  const allLayers = await waitFor('q, h and f sent', async () => {
    snapshot = await pubSnapshot(pub.page);
    const rids = snapshot.stats?.rids ?? {};
    // Sustained: Chrome starts every layer at once, then drops those its estimate does not allow.
    const sustained = (r) => rids[r]?.sending && Date.now() - rids[r].sending_since >= options.sustainMs;
    return ['q', 'h', 'f'].every(sustained) ? true : null;
  }, { deadline: Math.min(deadline, publishedAt + options.layersTimeoutMs), intervalMs: 500 }).catch(() => false);
  result.all_layers_within_ms = allLayers ? Date.now() - publishedAt : null;
  emit({
    event: allLayers ? 'all_layers_sent' : 'layers_missing',
    after_ms: Date.now() - publishedAt,
    rids: Object.fromEntries(Object.entries(snapshot?.stats?.rids ?? {}).map(([rid, r]) => [rid, {
      sending: r.sending, frame_width: r.frame_width, longest_sending_ms: r.longest_sending_ms,
      quality_limitation_reason: r.quality_limitation_reason, target_bitrate: r.target_bitrate, remote: r.remote,
    }])),
    candidate_pair: snapshot?.stats?.candidatePair,
  });

  let samples = [];
  const firstFrame = await waitFor('the first decoded frame at the subscriber', async () => {
    samples = samples.concat(await samplesSince(sub.page, samples.length));
    return samples.find((s) => s.frames_decoded > 0) ?? null;
  }, { deadline, intervalMs: 200 });
  emit({ event: 'first_frame', after_ms: firstFrame.t - publishedAt, frame_width: firstFrame.frame_width });

  // The phases: each request, the switch to its width, a hold.
  const phases = [];
  for (const quality of ['low', 'medium', 'high']) {
    const want = WIDTHS[quality];
    const sentAt = await sub.page.evaluate(([id, q]) => window.sc.setQuality(id, q), [trackId, quality]);
    samples = samples.concat(await samplesSince(sub.page, samples.length));
    const widthBefore = [...samples].reverse().find((s) => s.t <= sentAt)?.frame_width ?? 0;
    const phase = { quality, want_width: want, width_before: widthBefore, sent_at: sentAt, switch_ms: null, widths_seen: [], widths_after_switch: [] };
    phases.push(phase);
    const switchDeadline = Math.min(deadline, sentAt + options.switchTimeoutMs);
    let switched = null;
    while (!switched && Date.now() < switchDeadline) {
      await sleep(options.sampleMs);
      samples = samples.concat(await samplesSince(sub.page, samples.length));
      switched = samples.find((s) => s.t > sentAt && s.frame_width === want) ?? null;
    }
    if (switched) {
      phase.switch_ms = switched.t - sentAt;
      await sleep(Math.max(0, Math.min(options.holdMs, deadline - Date.now())));
      samples = samples.concat(await samplesSince(sub.page, samples.length));
    }
    const during = samples.filter((s) => s.t > sentAt);
    phase.widths_seen = [...new Set(during.map((s) => s.frame_width))];
    if (switched) phase.widths_after_switch = [...new Set(during.filter((s) => s.t >= switched.t).map((s) => s.frame_width))];
    const last = during.at(-1) ?? samples.at(-1);
    phase.final_width = last?.frame_width ?? 0;
    emit({ event: 'phase', quality, width_before: widthBefore, want_width: want, switch_ms: phase.switch_ms, widths_seen: phase.widths_seen, final_width: phase.final_width });
  }

  // Off: framesDecoded must stop rising (after a grace for frames in flight).
  const offAt = await sub.page.evaluate((id) => window.sc.setQuality(id, 'off'), trackId);
  await sleep(Math.max(0, Math.min(options.offGraceMs + options.offCheckMs, deadline - Date.now())));
  samples = samples.concat(await samplesSince(sub.page, samples.length));
  const atOff = [...samples].reverse().find((s) => s.t <= offAt) ?? samples[0];
  const graceEnd = [...samples].reverse().find((s) => s.t <= offAt + options.offGraceMs) ?? atOff;
  const lastSample = samples.at(-1);
  let lastIncrease = null;
  for (let i = 1; i < samples.length; i++) {
    if (samples[i].frames_decoded > samples[i - 1].frames_decoded) lastIncrease = samples[i].t;
  }
  const off = {
    sent_at: offAt,
    frames_after_off: lastSample.frames_decoded - atOff.frames_decoded,
    frames_after_grace: lastSample.frames_decoded - graceEnd.frames_decoded,
    checked_ms: lastSample.t - graceEnd.t,
    last_frame_after_off_ms: lastIncrease !== null && lastIncrease > offAt ? lastIncrease - offAt : null,
    bytes_after_grace: lastSample.bytes_received - graceEnd.bytes_received,
  };
  emit({ event: 'off', ...off });

  // Freezes while on: the longest time without framesDecoded rising, from the first
  // decoded frame to the `off` request, switches included; also per phase (a gap counts
  // for the phase in which it ends, the gap up to the next request included).
  const on = samples.filter((s) => s.t >= firstFrame.t && s.t <= offAt);
  const increases = [firstFrame.t];
  for (let i = 1; i < on.length; i++) {
    if (on[i].frames_decoded > on[i - 1].frames_decoded) increases.push(on[i].t);
  }
  increases.push(offAt); // a freeze running into the `off` request counts too
  const gaps = [];
  for (let i = 1; i < increases.length; i++) gaps.push({ end: increases[i], ms: increases[i] - increases[i - 1] });
  const maxGap = (from, to) => gaps.filter((g) => g.end > from && g.end <= to).reduce((m, g) => Math.max(m, g.ms), 0);
  result.max_freeze_ms = maxGap(-Infinity, Infinity);
  const bounds = [...phases.map((p) => p.sent_at), offAt];
  phases.forEach((p, i) => {
    p.max_freeze_ms = maxGap(bounds[i], bounds[i + 1]);
    const inPhase = on.filter((s) => s.t > bounds[i] && s.t <= bounds[i + 1]);
    p.frames_decoded = inPhase.length ? inPhase.at(-1).frames_decoded - inPhase[0].frames_decoded : 0;
  });
  // The subscriber must see one continuous stream: one SSRC across every switch.
  result.subscriber_ssrcs = [...new Set(samples.map((s) => s.ssrc))];
  result.samples_on = on.length;
  result.sample_interval_ms = on.length > 1 ? Math.round((on.at(-1).t - on[0].t) / (on.length - 1)) : null;
  result.first_frame_width = firstFrame.frame_width;
  result.frames_decoded_on = (on.at(-1)?.frames_decoded ?? 0) - firstFrame.frames_decoded;
  result.chrome_freeze_count = on.at(-1)?.freeze_count ?? null;
  result.chrome_total_freezes_duration = on.at(-1)?.total_freezes_duration ?? null;
  result.phases = phases.map(({ sent_at: _, ...p }) => p);
  result.off = (({ sent_at: _, ...o }) => o)(off);
  // Width timeline: one entry per change, ms after the first request.
  const t0 = phases[0].sent_at;
  result.width_changes = [];
  for (const s of samples) {
    if (result.width_changes.at(-1)?.[1] !== s.frame_width) result.width_changes.push([s.t - t0, s.frame_width]);
  }
  result.requests_ms = Object.fromEntries([...phases.map((p) => [p.quality, p.sent_at - t0]), ['off', offAt - t0]]);

  snapshot = await pubSnapshot(pub.page);
  const rids = snapshot.stats?.rids ?? {};
  result.publisher = {
    rids: Object.fromEntries(Object.entries(rids).map(([rid, r]) => [rid, {
      max_frame_width: r.max_frame_width,
      max_frame_height: r.max_frame_height,
      expected_width: RID_WIDTHS[rid] ?? null,
      bytes_sent: r.bytes_sent,
      first_sent_ms: r.first_sent_ms === null ? null : r.first_sent_ms - publishedAt,
      longest_sending_ms: r.longest_sending_ms,
      remote: r.remote,
      nack_count: r.nack_count,
      pli_count: r.pli_count,
      retransmitted_bytes_sent: r.retransmitted_bytes_sent,
      frame_width_now: r.frame_width,
      active_now: r.active,
      quality_limitation_reason: r.quality_limitation_reason,
      target_bitrate: r.target_bitrate,
      encoder: r.encoder,
    }])),
    candidate_pair: snapshot.stats?.candidatePair ?? null,
    layer_updates: snapshot.layers.map((u) => ({ ms: u.t - t0, rids: u.rids })),
    timeline: snapshot.stats?.timeline.map(({ t, ...e }) => ({ ms: t - t0, ...e })) ?? [],
  };
  const subErrors = await sub.page.evaluate(() => window.sc.errors);
  result.errors = [...snapshot.errors.map((e) => `publisher: ${e}`), ...subErrors.map((e) => `subscriber: ${e}`)];
  result.subscriber_events = await sub.page.evaluate((t) => window.sc.events.map((e) => ({ ...e, t: e.t - t })), t0);
  await Promise.all([pub.page, sub.page].map((p) => p.evaluate(() => window.sc.leave()).catch(() => {})));
  result.ok = true;
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2), {
      url: '',
      room: 'simulcast',
      timeoutMs: 80000,
      switchTimeoutMs: 15000,
      layersTimeoutMs: 10000,
      sustainMs: 2000,
      holdMs: 3000,
      offGraceMs: 1500,
      offCheckMs: 2500,
      sampleMs: 100,
    }, USAGE);
    if (!options.url) throw new Error(`missing --url\n${USAGE}`);
  } catch (error) {
    emit({ ok: false, error: error.message });
    process.exit(1);
  }

  const browser = await launch();
  const stop = async (signal) => {
    await browser.close().catch(() => {});
    emit({ ok: false, error: `interrupted by ${signal}` });
    process.exit(1);
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));

  const result = { ok: false };
  try {
    await run(options, browser, result);
  } catch (error) {
    result.ok = false;
    result.error = summarize(error);
  }
  await browser.close().catch(() => {});
  emit(result);
  process.exit(result.ok ? 0 : 1);
}

main().catch((error) => {
  emit({ ok: false, error: String(error?.stack ?? error) });
  process.exit(1);
});
