//! The bot's transport-cc feedback, from arrival times taken at its socket
//! ([`SocketArrivals`]): what a browser sends back so the server can estimate the bot's
//! bandwidth, every [`FEEDBACK_INTERVAL`].
//!
//! The fast path is installed on the bot's mux by the connection's local ICE ufrag, and
//! the transport-cc header extension's id comes from the negotiated description; both are
//! read again after each negotiation (an ICE restart changes the ufrag).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use roomcast_udp::{FastPath, UdpMux};
use tokio::task::JoinHandle;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::packet::Packet as RtcpPacket;
use webrtc::sdp::extmap::TRANSPORT_CC_URI;

use crate::socket_arrivals::SocketArrivals;

/// Chrome sends it every 50 ms once its target rate is above about 220 kbit/s (libwebrtc's
/// `RemoteEstimatorProxy` lets the feedback take 5 % of that rate, at most every 50 ms and
/// at least every 250 ms); 100 ms is webrtc-rs's interval, which the benchmarks' figures were
/// measured with, so the bots keep it. The server's estimator works from either.
pub(crate) const FEEDBACK_INTERVAL: Duration = Duration::from_millis(100);
/// The bot's SSRC in the feedback (receivers ignore it).
const SENDER_SSRC: u32 = 1;

/// The bot's receive side: its socket, what arrived there, and the feedback task.
pub(crate) struct ReceivePath {
    pub(crate) mux: Arc<UdpMux>,
    pub(crate) arrivals: Arc<SocketArrivals>,
    /// Set after each negotiation: the ufrag and extension id are read again.
    renegotiated: Arc<AtomicBool>,
    task: Option<JoinHandle<()>>,
}

impl ReceivePath {
    pub(crate) fn new(mux: Arc<UdpMux>, arrivals: Arc<SocketArrivals>) -> Self {
        ReceivePath {
            mux,
            arrivals,
            renegotiated: Arc::new(AtomicBool::new(true)),
            task: None,
        }
    }

    /// What `on_signaling_state_change` sets when a negotiation completes.
    pub(crate) fn renegotiated(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.renegotiated)
    }

    /// Starts sending feedback on `pc`.
    pub(crate) fn start(&mut self, pc: Arc<RTCPeerConnection>) {
        let mux = Arc::clone(&self.mux);
        let arrivals = Arc::clone(&self.arrivals);
        let renegotiated = Arc::clone(&self.renegotiated);
        self.task = Some(tokio::spawn(async move {
            let mut installed: Option<String> = None;
            let mut feedback = Vec::new();
            let mut ticks = tokio::time::interval(FEEDBACK_INTERVAL);
            loop {
                ticks.tick().await;
                if renegotiated.swap(false, Ordering::Relaxed) {
                    let sdp = pc.local_description().await.map(|d| d.sdp);
                    let (ufrag, id) = sdp.as_deref().map(negotiated).unwrap_or_default();
                    arrivals.set_extension_id(id.unwrap_or(0));
                    if ufrag.is_some() && ufrag != installed {
                        let handler = Arc::clone(&arrivals) as Arc<dyn FastPath>;
                        let name = ufrag.as_deref().unwrap_or_default();
                        if mux.set_fast_path(name, Some(handler)) {
                            installed = ufrag;
                        } else {
                            // ICE has not opened its share of the mux yet: next tick.
                            renegotiated.store(true, Ordering::Relaxed);
                        }
                    }
                }
                arrivals.feedback(SENDER_SSRC, &mut feedback);
                if feedback.is_empty() {
                    continue;
                }
                let packets: Vec<Box<dyn RtcpPacket + Send + Sync>> = feedback
                    .drain(..)
                    .map(|p| Box::new(p) as Box<dyn RtcpPacket + Send + Sync>)
                    .collect();
                if pc.write_rtcp(&packets).await.is_err() {
                    // Not connected yet, or closed: the next tick tries again.
                    continue;
                }
            }
        }));
    }

    /// Stops the feedback and closes the socket.
    pub(crate) fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.mux.shutdown();
    }
}

impl Drop for ReceivePath {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The local ICE ufrag and the transport-cc extension id in a session description.
fn negotiated(sdp: &str) -> (Option<String>, Option<u8>) {
    let mut ufrag = None;
    let mut id = None;
    for line in sdp.lines() {
        if let Some(value) = line.strip_prefix("a=ice-ufrag:") {
            ufrag.get_or_insert_with(|| value.trim().to_owned());
        } else if let Some(extmap) = line.strip_prefix("a=extmap:") {
            let mut parts = extmap.split_whitespace();
            let number = parts.next().and_then(|n| n.split('/').next());
            if parts.next() == Some(TRANSPORT_CC_URI) {
                id = id.or(number.and_then(|n| n.parse().ok()));
            }
        }
    }
    (ufrag, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ufrag_and_the_transport_cc_id_of_a_description() {
        let sdp = format!(
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:AbCd\r\n\
             a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
             a=extmap:5/sendrecv {TRANSPORT_CC_URI}\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
             a=ice-ufrag:AbCd\r\na=extmap:5 {TRANSPORT_CC_URI}\r\n"
        );
        assert_eq!(negotiated(&sdp), (Some("AbCd".to_owned()), Some(5)));
        assert_eq!(negotiated("v=0\r\n"), (None, None));
    }
}
