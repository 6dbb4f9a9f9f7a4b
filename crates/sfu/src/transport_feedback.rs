//! Transport-cc feedback towards a publisher, from what the media socket received.
//!
//! The browser's bandwidth estimate (GoogCC) counts every packet it numbered with a
//! transport-wide sequence number that the feedback does not acknowledge as lost. Chrome
//! numbers more than its media streams: bandwidth probes are padding on RTX streams or on
//! SSRC 0, and simulcast layers send before the server has bound them by rid. webrtc-rs's
//! transport-cc receiver only saw packets of bound streams, and stamped them when a track
//! reader pulled them, not when they arrived: Chrome read its probes as lost and the
//! server's scheduling as queueing, and kept its estimate near 100 kbit/s.
//!
//! So every RTP datagram of the connection is looked at on the socket's reader task (the
//! connection's [`FastPath`] on the shared [`UdpMux`]), whatever its SSRC: its sequence
//! number and the kernel's arrival time go into a [`FeedbackRecorder`], and one timer per
//! connection sends what was recorded every [`INTERVAL`]. The datagram then goes on to
//! the connection's receive fast path ([`Ingress`]), which forwards the RTP of the layers
//! it knows and leaves the rest to webrtc-rs unchanged. The same timer sends the fast
//! path's NACKs and receiver reports.
//!
//! The timer ticks only once the peer has sent media: a connection that only subscribes
//! has nothing to report, and a webinar's audience of 150 ticking every 50 ms for nothing
//! was 3,000 wake-ups a second (`docs/benchmarks.md`, section 11).
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use roomcast_feedback::{transport_sequence_number, FeedbackRecorder};
use roomcast_udp::{FastPath, Received, UdpMux, Verdict};
use rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::sdp::extmap::TRANSPORT_CC_URI;

use crate::egress::{Egress, SendError};
use crate::ingress::Ingress;

/// How often feedback is sent: Chrome's own rate at video bitrates is 50–100 ms.
pub const INTERVAL: Duration = Duration::from_millis(50);

/// What arrived since the last feedback.
struct Arrivals {
    recorder: FeedbackRecorder,
    /// The latest non-zero SSRC that carried a transport-wide number: one the publisher
    /// sends on, for the feedback's media SSRC (a sender may drop feedback naming a stream
    /// it does not know, and SSRC 0 is none).
    media_ssrc: u32,
}

/// One connection's transport-cc receiver.
pub struct TransportFeedback {
    mux: Arc<UdpMux>,
    /// The transport-cc extension id this connection negotiated (0: none). One id for the
    /// whole BUNDLE group.
    extension_id: AtomicU8,
    arrivals: Mutex<Arrivals>,
    /// Our SSRC in the feedback.
    sender_ssrc: u32,
    running: Mutex<Running>,
    /// Offered every datagram after it is recorded.
    ingress: Arc<Ingress>,
    /// Set by the peer's first RTP datagram (not RTCP); until then the timer waits on
    /// `media` instead of ticking.
    receiving: AtomicBool,
    media: Arc<Notify>,
}

#[derive(Default)]
struct Running {
    /// The local ICE ufrag the fast path is installed under (an ICE restart changes it).
    ufrag: Option<String>,
    timer: Option<JoinHandle<()>>,
}

impl TransportFeedback {
    /// `egress` is the same connection's send side (whose estimator the peer's feedback
    /// feeds).
    pub fn new(mux: Arc<UdpMux>, egress: Arc<Egress>, epoch: Instant) -> Self {
        TransportFeedback {
            mux,
            extension_id: AtomicU8::new(0),
            arrivals: Mutex::new(Arrivals {
                recorder: FeedbackRecorder::new(epoch),
                media_ssrc: 0,
            }),
            sender_ssrc: rand::random::<u32>().max(1),
            running: Mutex::default(),
            ingress: Arc::new(Ingress::new(egress, epoch)),
            receiving: AtomicBool::new(false),
            media: Arc::new(Notify::new()),
        }
    }

    /// Whether the peer has sent media (RTP, not only RTCP) on the fast path.
    pub fn receiving(&self) -> bool {
        self.receiving.load(Ordering::Relaxed)
    }

    fn note_media(&self, packet: &[u8]) {
        if self.receiving() {
            return;
        }
        if packet.len() >= 2 && !crate::ingress::is_rtcp(packet) {
            self.receiving.store(true, Ordering::Relaxed);
            self.media.notify_one();
        }
    }

    /// The connection's receive fast path.
    pub fn ingress(&self) -> &Arc<Ingress> {
        &self.ingress
    }

    /// Notes one datagram received at `at` (the kernel's time).
    pub fn on_datagram(&self, packet: &[u8], at: Instant) {
        let id = self.extension_id.load(Ordering::Relaxed);
        let Some((ssrc, seq)) = transport_sequence_number(packet, id) else {
            return;
        };
        let mut arrivals = self.arrivals.lock();
        arrivals.recorder.record(seq, at);
        if ssrc != 0 {
            arrivals.media_ssrc = ssrc;
        }
    }

    /// Appends the feedback for what arrived since the last call (nothing if nothing did).
    pub fn build(&self, out: &mut Vec<TransportLayerCc>) {
        let mut arrivals = self.arrivals.lock();
        let media_ssrc = arrivals.media_ssrc;
        arrivals.recorder.build(self.sender_ssrc, media_ssrc, out);
    }

    pub fn set_extension_id(&self, id: Option<u8>) {
        self.extension_id.store(id.unwrap_or(0), Ordering::Relaxed);
    }

    /// Called once the connection is up (again, after an ICE restart): takes the ufrag and
    /// extension id from the local description, installs the fast path under that ufrag,
    /// and starts the timer the first time.
    pub async fn connect(self: &Arc<Self>, pc: &Arc<RTCPeerConnection>) {
        let Some(local) = pc.local_description().await else {
            return;
        };
        let (ufrag, id) = negotiated(&local.sdp);
        self.set_extension_id(id);
        self.ingress.connect(pc).await;
        let mut running = self.running.lock();
        if let Some(ufrag) = ufrag.filter(|u| running.ufrag.as_deref() != Some(*u)) {
            let handler: Arc<dyn FastPath> = Arc::clone(self) as Arc<dyn FastPath>;
            if self.mux.set_fast_path(ufrag, Some(handler)) {
                if let Some(old) = running.ufrag.replace(ufrag.to_owned()) {
                    self.mux.set_fast_path(&old, None);
                }
            } else {
                tracing::warn!(
                    "no media socket connection for this ufrag: no transport-cc feedback"
                );
            }
        }
        if running.timer.is_none() {
            running.timer = Some(tokio::spawn(send_feedback(
                Arc::downgrade(self),
                Arc::downgrade(pc),
            )));
        }
    }

    /// Stops recording and sending (the connection is closing).
    pub fn stop(&self) {
        let mut running = self.running.lock();
        if let Some(timer) = running.timer.take() {
            timer.abort();
        }
        if let Some(ufrag) = running.ufrag.take() {
            self.mux.set_fast_path(&ufrag, None);
        }
        self.ingress.stop();
    }
}

impl FastPath for TransportFeedback {
    fn receive(&self, packet: &mut [u8], received: &Received) -> Verdict {
        self.note_media(packet);
        self.on_datagram(packet, received.at);
        self.ingress.receive(packet, received.at)
    }
}

/// The connection's timer: sends the feedback, and the fast path's NACKs and receiver
/// reports, through the connection's RTCP path until the connection or the receiver is
/// gone. A gap in a publisher's stream sends its NACK at once, between ticks.
async fn send_feedback(feedback: Weak<TransportFeedback>, pc: Weak<RTCPeerConnection>) {
    let Some((gaps, media)) = feedback
        .upgrade()
        .map(|f| (f.ingress.gaps(), Arc::clone(&f.media)))
    else {
        return;
    };
    // Woken by the first RTP datagram, or by the receiver's drop.
    media.notified().await;
    // In phase with every other connection's timer (one wake-up for all).
    let mut ticks = crate::ticks::in_phase(INTERVAL);
    let mut built = Vec::new();
    let mut buf = Vec::new();
    loop {
        let tick = tokio::select! {
            _ = ticks.tick() => true,
            _ = gaps.notified() => false,
        };
        let (Some(feedback), Some(pc)) = (feedback.upgrade(), pc.upgrade()) else {
            return;
        };
        if tick {
            feedback.build(&mut built);
        }
        let mut packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>> = built
            .drain(..)
            .map(|p| Box::new(p) as Box<dyn rtcp::packet::Packet + Send + Sync>)
            .collect();
        feedback.ingress.build_rtcp(Instant::now(), &mut packets);
        if packets.is_empty() {
            continue;
        }
        // Protected and sent here; through webrtc-rs only before the route is known.
        match feedback.ingress.egress().send_rtcp(&packets, &mut buf) {
            Ok(()) => continue,
            Err(SendError::NotConnected) => {}
            Err(e) => {
                tracing::debug!(error = ?e, "transport-cc feedback not sent");
                continue;
            }
        }
        if let Err(e) = pc.write_rtcp(&packets).await {
            tracing::debug!(error = %e, "transport-cc feedback not sent");
        }
    }
}

impl Drop for TransportFeedback {
    /// A timer still waiting for media wakes, finds the receiver gone and ends.
    fn drop(&mut self) {
        self.media.notify_one();
    }
}

/// The local ICE ufrag and the transport-cc extension id of a session description.
fn negotiated(sdp: &str) -> (Option<&str>, Option<u8>) {
    let mut ufrag = None;
    let mut id = None;
    for line in sdp.lines() {
        if let Some(value) = line.strip_prefix("a=ice-ufrag:") {
            ufrag = ufrag.or(Some(value.trim()));
        } else if let Some(extmap) = line.strip_prefix("a=extmap:") {
            let mut fields = extmap.split_whitespace();
            let number = fields.next().and_then(|n| n.split('/').next());
            if fields.next() == Some(TRANSPORT_CC_URI) {
                id = id.or(number.and_then(|n| n.parse().ok()).filter(|&n| n != 0));
            }
        }
    }
    (ufrag, id)
}

#[cfg(test)]
mod tests;
