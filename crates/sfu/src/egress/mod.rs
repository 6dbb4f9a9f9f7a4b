//! The server's own send path for forwarded RTP: each packet is written into the forwarding
//! task's buffer, protected in place with the connection's SRTP keys and sent on the shared
//! media socket to the address ICE selected, from the local address that peer sends to,
//! all synchronously.
//!
//! webrtc-rs would pass every packet through a chain of async interceptors, a mutex around
//! its SRTP context, two buffer copies and the ICE agent's lookups; measured on a ten-person
//! meeting that was about 60% of the server's CPU (see `docs/benchmarks.md`). webrtc-rs
//! still does everything else on the connection: ICE, DTLS, RTCP in both directions, and
//! receiving.
pub mod retransmit_budget;
pub mod rtp_header;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use roomcast_udp::{Path, UdpMux};
use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use webrtc::dtls_transport::dtls_role::DTLSRole;
use webrtc::ice_transport::ice_candidate::RTCIceCandidate;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::srtp::protection_profile::ProtectionProfile;

use crate::bandwidth::SubscriberBandwidth;
use crate::srtp::{SrtpProfile, SrtpSession};
use retransmit_budget::RetransmitBudget;

/// Why a packet was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// DTLS has not finished (or the connection is gone): no keys or no address yet.
    NotConnected,
    Protect,
    /// The socket refused it, e.g. its send buffer is full.
    Socket(std::io::ErrorKind),
}

/// Where and how one subscriber connection's RTP goes.
struct Route {
    path: Arc<Path>,
    srtp: Arc<SrtpSession>,
}

impl Route {
    fn protect(
        &self,
        packet: &mut Vec<u8>,
        header_len: usize,
        ssrc: u32,
        seq: u16,
        roc: u32,
    ) -> Result<(), SendError> {
        self.srtp
            .protect_rtp(packet, header_len, ssrc, seq, roc)
            .map_err(|_| SendError::Protect)
    }
}

/// A packet written for one subscriber into the send buffer (header, then payload), ready
/// for [`Egress::send`].
#[derive(Debug, Clone, Copy)]
pub struct Prepared {
    pub header_len: usize,
    /// Where the header leaves room for this packet's transport-wide sequence number, when
    /// the subscriber uses transport-cc: the egress numbers packets in the order it sends
    /// them.
    pub transport_seq_at: Option<usize>,
    pub ssrc: u32,
    pub sequence_number: u16,
    pub roc: u32,
    /// A NACK answer, which spends the retransmission budget instead of earning it.
    pub resend: bool,
}

/// Until a receiver report says otherwise.
/// See `Egress::rtcp_index`: webrtc-rs numbers a stream's SRTCP from 0 and sends a few
/// packets at most before the route is known.
const FIRST_RTCP_INDEX: u32 = 1 << 16;
/// SRTCP indices are 31 bits.
const MAX_RTCP_INDEX: u32 = 0x7fff_ffff;

const DEFAULT_RTT: Duration = Duration::from_millis(100);

/// One connection's outgoing RTP.
pub struct Egress {
    mux: Arc<UdpMux>,
    route: ArcSwapOption<Route>,
    /// Whether `route` is set: the forwarding path's early check, a plain load (an
    /// `ArcSwap` load is two atomic read-modify-writes, each a full barrier on x86).
    connected: AtomicBool,
    /// Transport-wide sequence numbers (transport-cc) across all streams of the connection.
    transport_seq: AtomicU16,
    /// The SRTCP index of the next RTCP packet [`Egress::send_rtcp`] protects: one counter
    /// for every SSRC it sends from, so each SSRC's indices still only go up (a gap is
    /// allowed). None of those SSRCs is one webrtc-rs sends SRTCP from. It starts above
    /// what webrtc-rs may have used for them before the route was known.
    rtcp_index: AtomicU32,
    /// The round trip to the peer in microseconds, from its receiver reports; 0 = unknown.
    rtt_micros: AtomicU32,
    /// RTP bytes forwarded (not resent), which earn the retransmission budget.
    forwarded_bytes: AtomicU64,
    retransmit_budget: Mutex<RetransmitBudget>,
    /// What was sent when, and the estimate the subscriber's feedback gives.
    pub bandwidth: SubscriberBandwidth,
    /// A simulcast track sent on this connection started a layer (or started at all): the
    /// session tells the subscriber now (`track_layer`) rather than at its next layer tick.
    /// A cascade edge waits for that message before it takes a relay's stream as the layer.
    pub layer_switched: tokio::sync::Notify,
}

impl Egress {
    pub fn new(mux: Arc<UdpMux>) -> Self {
        Egress {
            mux,
            route: ArcSwapOption::empty(),
            connected: AtomicBool::new(false),
            transport_seq: AtomicU16::new(rand::random()),
            rtcp_index: AtomicU32::new(FIRST_RTCP_INDEX),
            rtt_micros: AtomicU32::new(0),
            forwarded_bytes: AtomicU64::new(0),
            retransmit_budget: Mutex::new(RetransmitBudget::default()),
            bandwidth: SubscriberBandwidth::new(std::time::Instant::now()),
            layer_switched: tokio::sync::Notify::new(),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    fn next_transport_seq(&self) -> u16 {
        self.transport_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The round trip to the peer, as its receiver reports last said (100 ms until then).
    pub fn rtt(&self) -> Duration {
        match self.rtt_micros.load(Ordering::Relaxed) {
            0 => DEFAULT_RTT,
            us => Duration::from_micros(u64::from(us)),
        }
    }

    pub fn set_rtt(&self, rtt: Duration) {
        let us = rtt.as_micros().clamp(1, u128::from(u32::MAX)) as u32;
        self.rtt_micros.store(us, Ordering::Relaxed);
    }

    /// Counts `bytes` of forwarded (first-time) RTP towards the retransmission budget.
    fn note_forwarded(&self, bytes: usize) {
        self.forwarded_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Whether a retransmission of `bytes` fits this subscriber's budget (and spends it).
    pub fn allow_retransmission(&self, bytes: usize) -> bool {
        self.retransmit_budget
            .lock()
            .allow(self.forwarded_bytes.load(Ordering::Relaxed), bytes)
    }

    /// Sends the packet a down track wrote into `buf`, at `now`: numbers it for
    /// transport-cc, protects it in place, sends it, and records it in the send history
    /// (which the subscriber's feedback is read against) and the retransmission budget.
    pub fn send(
        &self,
        packet: &Prepared,
        buf: &mut Vec<u8>,
        now: Instant,
    ) -> Result<(), SendError> {
        let route = self.route.load();
        let route = route.as_ref().ok_or(SendError::NotConnected)?;
        let transport_seq = packet.transport_seq_at.and_then(|at| {
            let slot = buf.get_mut(at..at + 2)?;
            let seq = self.next_transport_seq();
            slot.copy_from_slice(&seq.to_be_bytes());
            Some(seq)
        });
        route.protect(
            buf,
            packet.header_len,
            packet.ssrc,
            packet.sequence_number,
            packet.roc,
        )?;
        self.mux
            .send(buf, &route.path)
            .map_err(|e| SendError::Socket(e.kind()))?;
        if let Some(seq) = transport_seq {
            self.bandwidth.history.record(seq, buf.len(), now);
        }
        if !packet.resend {
            self.note_forwarded(buf.len());
        }
        Ok(())
    }

    /// Takes the SRTP keys from the finished DTLS handshake and the address from ICE's
    /// selected pair, and follows ICE if it later selects another pair.
    pub async fn connect(self: &Arc<Self>, pc: &RTCPeerConnection) -> Result<(), String> {
        let keys = srtp_keys(pc).await?;
        let profile = keys.profile;
        let srtp = keys.local()?;
        let dtls = pc.dtls_transport();
        let ice = dtls.ice_transport();
        let pair = ice
            .get_selected_candidate_pair()
            .await
            .ok_or("ICE has no selected pair")?;
        let remote = address_of(&pair.remote)?;
        self.set_route(remote, srtp);
        let egress: Weak<Egress> = Arc::downgrade(self);
        ice.on_selected_candidate_pair_change(Box::new(move |pair| {
            if let (Some(egress), Ok(remote)) = (egress.upgrade(), address_of(&pair.remote)) {
                let path = egress.mux.path(remote);
                egress.route.rcu(|route| {
                    route.as_ref().map(|r| {
                        Arc::new(Route {
                            path: Arc::clone(&path),
                            srtp: Arc::clone(&r.srtp),
                        })
                    })
                });
                tracing::debug!(%remote, "ICE selected another pair");
            }
            Box::pin(async {})
        }));
        tracing::debug!(%remote, ?profile, "egress connected");
        Ok(())
    }

    /// Sends to `remote` with `srtp` from now on. [`Egress::connect`] calls it; tests and
    /// benchmarks without a PeerConnection can too.
    pub fn set_route(&self, remote: SocketAddr, srtp: SrtpSession) {
        self.route.store(Some(Arc::new(Route {
            path: self.mux.path(remote),
            srtp: Arc::new(srtp),
        })));
        self.connected.store(true, Ordering::Release);
    }

    /// Protects a packet in place (what [`Egress::send`] does before the socket write;
    /// benchmarks call it alone) and says where it goes.
    pub fn protect_rtp(
        &self,
        packet: &mut Vec<u8>,
        header_len: usize,
        ssrc: u32,
        seq: u16,
        roc: u32,
    ) -> Result<SocketAddr, SendError> {
        let route = self.route.load();
        let route = route.as_ref().ok_or(SendError::NotConnected)?;
        route.protect(packet, header_len, ssrc, seq, roc)?;
        Ok(route.path.remote())
    }

    /// Sends `packets` as one compound SRTCP packet, protected with the connection's keys,
    /// from the reader's side of the socket: no webrtc-rs session, interceptor or task.
    /// `NotConnected` until the route is known (the caller may then use webrtc-rs).
    pub fn send_rtcp(
        &self,
        packets: &[Box<dyn rtcp::packet::Packet + Send + Sync>],
        buf: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        if !self.is_connected() {
            return Err(SendError::NotConnected);
        }
        let compound = rtcp::packet::marshal(packets).map_err(|_| SendError::Protect)?;
        buf.clear();
        buf.extend_from_slice(&compound);
        self.protect_and_send_rtcp(buf)
    }

    /// Sends one RTCP packet, marshalled straight into `buf` (the forwarding path's
    /// buffer: nothing is allocated), protected and sent like [`Egress::send_rtcp`].
    pub fn send_rtcp_packet(
        &self,
        packet: &impl webrtc::util::Marshal,
        buf: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        buf.clear();
        buf.resize(packet.marshal_size(), 0);
        packet.marshal_to(buf).map_err(|_| SendError::Protect)?;
        self.protect_and_send_rtcp(buf)
    }

    fn protect_and_send_rtcp(&self, buf: &mut Vec<u8>) -> Result<(), SendError> {
        let route = self.route.load();
        let route = route.as_ref().ok_or(SendError::NotConnected)?;
        let index = self.rtcp_index.fetch_add(1, Ordering::Relaxed) & MAX_RTCP_INDEX;
        route
            .srtp
            .protect_rtcp(buf, index)
            .map_err(|_| SendError::Protect)?;
        self.mux
            .send(buf, &route.path)
            .map_err(|e| SendError::Socket(e.kind()))
    }

    /// Stops sending (the connection closed).
    pub fn disconnect(&self) {
        self.connected.store(false, Ordering::Release);
        self.route.store(None);
    }
}

/// The SRTP master keys of both directions, exported from a connection's finished DTLS
/// handshake (RFC 5764 §4.2).
pub struct SrtpKeys {
    pub profile: SrtpProfile,
    keys: webrtc::srtp::config::SessionKeys,
}

impl SrtpKeys {
    /// What the server sends with.
    pub fn local(&self) -> Result<SrtpSession, String> {
        SrtpSession::new(
            self.profile,
            &self.keys.local_master_key,
            &self.keys.local_master_salt,
        )
        .map_err(|e| e.to_string())
    }

    /// What the peer sends with.
    pub fn remote(&self) -> Result<SrtpSession, String> {
        SrtpSession::new(
            self.profile,
            &self.keys.remote_master_key,
            &self.keys.remote_master_salt,
        )
        .map_err(|e| e.to_string())
    }
}

/// Exports the SRTP keys once DTLS has finished (an error before).
pub async fn srtp_keys(pc: &RTCPeerConnection) -> Result<SrtpKeys, String> {
    let dtls = pc.dtls_transport();
    let conn = dtls.conn().await.ok_or("DTLS has not started")?;
    let (profile, theirs) = match conn.selected_srtpprotection_profile() {
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => {
            (SrtpProfile::AeadAes128Gcm, ProtectionProfile::AeadAes128Gcm)
        }
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => (
            SrtpProfile::Aes128CmHmacSha1_80,
            ProtectionProfile::Aes128CmHmacSha1_80,
        ),
        other => return Err(format!("unsupported SRTP profile {other:?}")),
    };
    let mut config = webrtc::srtp::config::Config {
        profile: theirs,
        ..Default::default()
    };
    config
        .extract_session_keys_from_dtls(
            conn.connection_state().await,
            dtls.role().await == DTLSRole::Client,
        )
        .await
        .map_err(|e| format!("cannot export SRTP keys: {e}"))?;
    Ok(SrtpKeys {
        profile,
        keys: config.keys,
    })
}

fn address_of(candidate: &RTCIceCandidate) -> Result<SocketAddr, String> {
    let ip: IpAddr = candidate
        .address
        .parse()
        .map_err(|_| format!("remote candidate address {:?}", candidate.address))?;
    Ok(SocketAddr::new(ip, candidate.port))
}

#[cfg(test)]
mod tests;
