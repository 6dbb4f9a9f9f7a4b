//! The receive fast path: a publisher's RTP taken off the media socket and forwarded on
//! the socket's reader task, without webrtc-rs.
//!
//! webrtc-rs passed each packet through the UDP mux queue, the ICE agent, its DTLS/SRTP
//! mux, its SRTP session, a stream buffer, its interceptors and `TrackRemote::read`: five
//! task hops per packet, and on a busy machine seconds of queue ("buffer: full"). Here
//! each SRTP datagram of a layer whose reader started is decrypted in place with the
//! connection's remote keys (replay-protected), parsed, and handed to
//! [`PublishedTrack::receive`] at once: the only copy is the one the NACK cache keeps.
//!
//! What webrtc-rs's receive interceptors did for those streams is ours too: NACKs to the
//! publisher ([`NackGenerator`]) and receiver reports ([`ReceptionStats`], with LSR from
//! the publisher's sender reports). They are sent by the connection's transport-cc timer
//! ([`crate::transport_feedback`]), whose fast path offers every datagram here after
//! recording it.
//!
//! The peer's SRTCP is read here too ([`rtcp`]): a subscriber's NACKs are answered from
//! the publisher's cache, its PLI/FIR become keyframe requests, and its receiver reports,
//! transport-cc feedback and REMB go to the connection's estimator, all on the socket's
//! reader task.
//!
//! Everything else still goes to webrtc-rs unchanged: RTCP the fast path does not know,
//! and RTP of SSRCs without a reader (a new simulcast layer before webrtc-rs has announced
//! it, bandwidth probes), since webrtc-rs must see a stream's first packets to announce it.
pub mod nack_generator;
pub mod reception_stats;
pub mod rtcp;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::rtcp::receiver_report::ReceiverReport;
use ::rtcp::transport_feedbacks::transport_layer_nack::{
    nack_pairs_from_sequence_numbers, TransportLayerNack,
};
use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;
use roomcast_udp::Verdict;
use rtp::packet::Packet;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::util::Unmarshal;

use crate::egress::Egress;
use crate::media::down_track::DownTrack;
use crate::media::published_track::{LayerInput, PublishedTrack, SEND_BUFFER_BYTES};
use crate::srtp::index::roc_of;
use crate::srtp::{RtpIndex, SrtpSession};
pub use nack_generator::{Arrival, NackGenerator};
pub use reception_stats::ReceptionStats;

/// How long before a packet asked for is asked for again: about a round trip.
pub const NACK_RETRY: Duration = Duration::from_millis(100);
/// How often receiver reports go to the publisher (webrtc-rs's interval).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Keyframe requests waiting for the connection's task; more are dropped (the next packet
/// of a waiting subscriber asks again).
const KEYFRAME_QUEUE: usize = 64;
/// RFC 3550 allows 31 report blocks in one receiver report.
const MAX_REPORT_BLOCKS: usize = 31;

/// A layer some subscriber waits for a keyframe of.
type KeyframeRequest = (Arc<PublishedTrack>, u8);

/// One layer the fast path forwards.
struct Stream {
    track: Arc<PublishedTrack>,
    input: LayerInput,
    state: Mutex<StreamState>,
}

/// A track the connection sends to its peer, found by the SSRC the peer knows it by.
#[derive(Clone)]
struct Subscribed {
    track: Arc<PublishedTrack>,
    down: Arc<DownTrack>,
}

struct StreamState {
    index: RtpIndex,
    nacks: NackGenerator,
    stats: ReceptionStats,
}

/// What happened to the datagrams offered, for tests and diagnosis.
#[derive(Debug, Default)]
pub struct IngressCounters {
    /// Forwarded from the socket.
    pub forwarded: AtomicU64,
    /// Refused by the replay window (a duplicate, or too old).
    pub replayed: AtomicU64,
    /// Did not authenticate (left to webrtc-rs, which drops it too).
    pub unauthenticated: AtomicU64,
    /// Sequence numbers asked for again.
    pub nacked: AtomicU64,
    /// Arrived after being missing.
    pub recovered: AtomicU64,
    /// SRTCP compound packets handled here.
    pub rtcp: AtomicU64,
    /// SRTCP refused by the replay window.
    pub rtcp_replayed: AtomicU64,
}

/// One publisher connection's receive fast path.
pub struct Ingress {
    /// The peer's SRTP keys, once DTLS has given them.
    keys: ArcSwapOption<SrtpSession>,
    streams: ArcSwap<Vec<Arc<Stream>>>,
    /// The tracks the connection sends (its subscriptions), for the peer's RTCP.
    subscribed: ArcSwap<Vec<Subscribed>>,
    /// The connection's send side: its estimator and round trip.
    egress: Arc<Egress>,
    rtcp: Mutex<rtcp::RtcpState>,
    /// Where each subscriber's copy is built. Only the socket's reader task takes it.
    scratch: Mutex<Vec<u8>>,
    keyframes: mpsc::Sender<KeyframeRequest>,
    keyframe_queue: Mutex<Option<mpsc::Receiver<KeyframeRequest>>>,
    keyframe_task: Mutex<Option<JoinHandle<()>>>,
    /// Our SSRC in NACKs and receiver reports.
    sender_ssrc: u32,
    epoch: Instant,
    next_report: Mutex<Instant>,
    /// Woken when a publisher's stream shows a gap, so its NACK goes at once rather than
    /// at the connection's next feedback tick (up to 50 ms later).
    gaps: Arc<tokio::sync::Notify>,
    pub counters: IngressCounters,
}

impl Ingress {
    /// `egress` is the same connection's send side.
    pub fn new(egress: Arc<Egress>, epoch: Instant) -> Self {
        let (keyframes, queue) = mpsc::channel(KEYFRAME_QUEUE);
        Ingress {
            keys: ArcSwapOption::empty(),
            streams: ArcSwap::from_pointee(Vec::new()),
            subscribed: ArcSwap::from_pointee(Vec::new()),
            egress,
            rtcp: Mutex::default(),
            scratch: Mutex::new(Vec::with_capacity(SEND_BUFFER_BYTES)),
            keyframes,
            keyframe_queue: Mutex::new(Some(queue)),
            keyframe_task: Mutex::new(None),
            sender_ssrc: rand::random::<u32>().max(1),
            epoch,
            next_report: Mutex::new(epoch),
            gaps: Arc::default(),
            counters: IngressCounters::default(),
        }
    }

    /// The same connection's send side.
    pub fn egress(&self) -> &Arc<Egress> {
        &self.egress
    }

    /// Takes the peer's SRTP keys from the finished DTLS handshake, and starts the task
    /// that sends keyframe requests (once).
    pub async fn connect(&self, pc: &RTCPeerConnection) {
        match crate::egress::srtp_keys(pc).await.and_then(|k| k.remote()) {
            Ok(keys) => self.set_keys(keys),
            Err(e) => {
                tracing::warn!(error = %e, "no receive fast path: media goes through webrtc-rs")
            }
        }
        let mut task = self.keyframe_task.lock();
        if task.is_none() {
            if let Some(queue) = self.keyframe_queue.lock().take() {
                *task = Some(tokio::spawn(request_keyframes(queue)));
            }
        }
    }

    /// Decrypts with `keys` from now on ([`Ingress::connect`] calls it; tests can too).
    pub fn set_keys(&self, keys: SrtpSession) {
        self.keys.store(Some(Arc::new(keys)));
    }

    /// Forwards `input`'s layer of `track` from the socket from now on.
    pub fn register(&self, track: &Arc<PublishedTrack>, input: LayerInput) {
        let stream = Arc::new(Stream {
            track: Arc::clone(track),
            state: Mutex::new(StreamState {
                index: RtpIndex::default(),
                nacks: NackGenerator::default(),
                stats: ReceptionStats::new(input.clock_rate, self.epoch),
            }),
            input,
        });
        self.streams.rcu(|streams| {
            let mut next: Vec<Arc<Stream>> = streams
                .iter()
                .filter(|s| s.input.ssrc != stream.input.ssrc && !s.track.is_closed())
                .cloned()
                .collect();
            next.push(Arc::clone(&stream));
            next
        });
    }

    /// Hands the peer's RTCP about `down` (sent on this connection) to it from now on.
    pub fn subscribe(&self, track: &Arc<PublishedTrack>, down: &Arc<DownTrack>) {
        let sub = Subscribed {
            track: Arc::clone(track),
            down: Arc::clone(down),
        };
        self.subscribed.rcu(|list| {
            let mut next = Vec::with_capacity(list.len() + 1);
            next.extend(list.iter().cloned());
            next.push(sub.clone());
            next
        });
    }

    /// No more RTCP about `down` here (the subscription ended).
    pub fn unsubscribe(&self, down: &Arc<DownTrack>) {
        self.subscribed.rcu(|list| {
            list.iter()
                .filter(|s| !Arc::ptr_eq(&s.down, down))
                .cloned()
                .collect::<Vec<_>>()
        });
    }

    /// Forgets the keys, the streams and the keyframe task (the connection is closing).
    pub fn stop(&self) {
        let c = &self.counters;
        tracing::debug!(
            forwarded = c.forwarded.load(Ordering::Relaxed),
            replayed = c.replayed.load(Ordering::Relaxed),
            unauthenticated = c.unauthenticated.load(Ordering::Relaxed),
            nacked = c.nacked.load(Ordering::Relaxed),
            recovered = c.recovered.load(Ordering::Relaxed),
            rtcp = c.rtcp.load(Ordering::Relaxed),
            rtcp_replayed = c.rtcp_replayed.load(Ordering::Relaxed),
            "receive fast path stopped"
        );
        self.keys.store(None);
        self.streams.store(Arc::new(Vec::new()));
        self.subscribed.store(Arc::new(Vec::new()));
        if let Some(task) = self.keyframe_task.lock().take() {
            task.abort();
        }
    }

    fn stream(&self, ssrc: u32) -> Option<Arc<Stream>> {
        self.streams
            .load()
            .iter()
            .find(|s| s.input.ssrc == ssrc)
            .cloned()
    }

    /// One SRTP or SRTCP datagram from the peer, arrived at `at`.
    pub fn receive(&self, packet: &mut [u8], at: Instant) -> Verdict {
        if packet.len() < 2 {
            return Verdict::Pass;
        }
        if is_rtcp(packet) {
            return self.receive_rtcp(packet, at);
        }
        self.receive_rtp(packet, at)
    }

    fn receive_rtp(&self, packet: &mut [u8], at: Instant) -> Verdict {
        let Some(header) = RtpFields::parse(packet) else {
            return Verdict::Pass;
        };
        let Some(stream) = self.stream(header.ssrc) else {
            return Verdict::Pass;
        };
        if stream.track.is_closed() {
            return Verdict::Pass;
        }
        let keys = self.keys.load();
        let Some(keys) = keys.as_ref() else {
            return Verdict::Pass;
        };
        let c = &self.counters;
        let (plain_len, arrival) = {
            let mut state = stream.state.lock();
            let Ok(index) = state.index.estimate(header.seq) else {
                c.replayed.fetch_add(1, Ordering::Relaxed);
                return Verdict::Consumed;
            };
            let roc = roc_of(index);
            let Ok(plain_len) =
                keys.unprotect_rtp(packet, header.len, header.ssrc, header.seq, roc)
            else {
                // Unchanged: webrtc-rs gets it, and drops it too.
                c.unauthenticated.fetch_add(1, Ordering::Relaxed);
                return Verdict::Pass;
            };
            state.index.accept(index);
            let arrival = state.nacks.on_packet(index, at);
            state.stats.on_packet(index, header.timestamp, at);
            (plain_len, arrival)
        };
        match arrival {
            Arrival::Recovered => {
                c.recovered.fetch_add(1, Ordering::Relaxed);
            }
            Arrival::Gap => self.gaps.notify_one(),
            Arrival::InOrder | Arrival::TooLarge => {}
        }
        // The one copy: the NACK cache keeps it, and the header's extensions and the
        // payload are views of it.
        let mut bytes = bytes::Bytes::copy_from_slice(&packet[..plain_len]);
        let Ok(rtp) = Packet::unmarshal(&mut bytes) else {
            return Verdict::Consumed;
        };
        let mut wanted = {
            let mut scratch = self.scratch.lock();
            // Read once per packet: when every subscriber's copy is sent, for the send
            // history its transport-cc feedback is read against.
            let now = Instant::now();
            stream
                .track
                .receive(rtp, &stream.input, at, now, &mut scratch)
        };
        c.forwarded.fetch_add(1, Ordering::Relaxed);
        if arrival == Arrival::TooLarge {
            wanted.insert(stream.input.layer);
        }
        for layer in wanted.iter() {
            // Throttled by the track; a full queue drops it, and the next packet asks again.
            let _ = self.keyframes.try_send((Arc::clone(&stream.track), layer));
        }
        Verdict::Consumed
    }

    /// Notified when a stream shows a gap: [`Ingress::build_rtcp`] has a NACK to send.
    pub fn gaps(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.gaps)
    }

    /// Appends the RTCP due at `now` towards the publisher: NACKs for what is missing, and
    /// every [`REPORT_INTERVAL`] a receiver report.
    pub fn build_rtcp(
        &self,
        now: Instant,
        out: &mut Vec<Box<dyn ::rtcp::packet::Packet + Send + Sync>>,
    ) {
        let streams = self.streams.load();
        if streams.is_empty() {
            return;
        }
        let report = {
            let mut next = self.next_report.lock();
            let due = now >= *next;
            if due {
                *next = now + REPORT_INTERVAL;
            }
            due
        };
        let mut lost = Vec::new();
        let mut blocks = Vec::new();
        for stream in streams.iter() {
            let mut state = stream.state.lock();
            lost.clear();
            state.nacks.due(now, NACK_RETRY, &mut lost);
            if !lost.is_empty() {
                self.counters
                    .nacked
                    .fetch_add(lost.len() as u64, Ordering::Relaxed);
                out.push(Box::new(TransportLayerNack {
                    sender_ssrc: self.sender_ssrc,
                    media_ssrc: stream.input.ssrc,
                    nacks: nack_pairs_from_sequence_numbers(&lost),
                }));
            }
            if report && blocks.len() < MAX_REPORT_BLOCKS {
                blocks.extend(state.stats.report(stream.input.ssrc, now));
            }
        }
        if !blocks.is_empty() {
            out.push(Box::new(ReceiverReport {
                ssrc: self.sender_ssrc,
                reports: blocks,
                profile_extensions: bytes::Bytes::new(),
            }));
        }
    }
}

/// What the fast path reads of an RTP header before decrypting (all of it is clear).
#[derive(Debug, Clone, Copy)]
struct RtpFields {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// With CSRCs and extensions: where the payload starts.
    len: usize,
}

impl RtpFields {
    fn parse(packet: &[u8]) -> Option<RtpFields> {
        let fixed = packet.get(..12)?;
        if fixed[0] >> 6 != 2 {
            return None;
        }
        let csrcs = usize::from(fixed[0] & 0x0f);
        let mut len = 12 + 4 * csrcs;
        if fixed[0] & 0x10 != 0 {
            let ext = packet.get(len..len + 4)?;
            len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        }
        if len > packet.len() {
            return None;
        }
        Some(RtpFields {
            seq: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
            len,
        })
    }
}

/// The connection's keyframe requests, sent one after another off the socket's task.
async fn request_keyframes(mut queue: mpsc::Receiver<KeyframeRequest>) {
    while let Some((track, layer)) = queue.recv().await {
        track.request_keyframe(layer).await;
    }
}

/// Whether a datagram multiplexed with RTP on one port is RTCP: its second byte is an
/// RTCP packet type (RFC 5761 §4), which no RTP payload type takes.
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram
        .get(1)
        .is_some_and(|second| (192..=223).contains(second))
}

#[cfg(test)]
mod tests;
