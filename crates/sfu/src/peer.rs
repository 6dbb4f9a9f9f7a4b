//! Builds each participant's one RTCPeerConnection: codecs, header extensions, an
//! interceptor chain with nothing in it, and the one UDP port all peers share
//! ([`roomcast_udp::UdpMux`]). Feedback to publishers (NACKs, receiver reports,
//! transport-cc) is [`crate::transport_feedback`]'s; what goes to subscribers is sent by
//! [`crate::egress`].
//!
//! Each connection gets its own webrtc-rs `API`, because reusing an inactive transceiver
//! for a new track needs a new `RTCRtpSender` built on that connection's own media engine
//! and interceptor chain, which webrtc-rs does not otherwise expose.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use interceptor::registry::Registry;
use interceptor::{Interceptor, InterceptorBuilder};
use parking_lot::Mutex;
use roomcast_udp::UdpMux;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_mux::UDPMux;
use webrtc::ice::udp_network::UDPNetwork;
use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::sdp::extmap;
use webrtc::track::track_local::TrackLocal;

use crate::egress::Egress;
use crate::error::SfuError;
use crate::transport_feedback::TransportFeedback;

/// Packets a publisher's retransmission may be behind the newest and still be accepted.
const SRTP_REPLAY_WINDOW: usize = 1024;

/// Where media flows: one UDP socket, and what the server tells peers about it.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub udp_ip: IpAddr,
    pub udp_port: u16,
    /// NAT 1:1: the addresses announced instead of the local ones.
    pub public_ips: Vec<String>,
    /// Also announce loopback candidates (handy on one machine, harmless elsewhere).
    pub include_loopback: bool,
}

pub struct PeerFactory {
    settings: SettingEngine,
    /// The media socket every peer's ICE shares, which [`Egress`] also sends through.
    mux: Arc<UdpMux>,
}

impl PeerFactory {
    pub async fn bind(config: &MediaConfig) -> Result<Self, SfuError> {
        let bind_error = |e: std::io::Error| {
            SfuError::Bind(format!("UDP {}:{}: {e}", config.udp_ip, config.udp_port))
        };
        let mux = UdpMux::bind(config.udp_ip, config.udp_port).map_err(bind_error)?;
        mux.start().map_err(bind_error)?;
        let mut settings = SettingEngine::default();
        settings.set_udp_network(UDPNetwork::Muxed(
            Arc::clone(&mux) as Arc<dyn UDPMux + Send + Sync>
        ));
        settings.set_network_types(network_types(config, mux.has_ipv6()));
        settings
            .set_include_loopback_candidate(config.include_loopback || config.udp_ip.is_loopback());
        let bound = config.udp_ip;
        settings.set_ip_filter(Box::new(move |ip| announced(bound, ip)));
        if !config.public_ips.is_empty() {
            settings.set_nat_1to1_ips(config.public_ips.clone(), RTCIceCandidateType::Host);
        }
        // ICE-lite, as SFUs with public host candidates usually are: the client is always
        // the controlling agent. A full agent on both sides can end up both controlling
        // after a rolled-back offer (Chrome keeps the role of its abandoned offer), and
        // webrtc-rs does not resolve that conflict: checks go unanswered.
        settings.set_lite(true);
        settings.set_ice_timeouts(
            Some(Duration::from_secs(5)),
            Some(Duration::from_secs(15)),
            Some(Duration::from_secs(2)),
        );
        // The server is always the DTLS server: its offers say `actpass` (clients answer
        // `active`) and its answers say `passive`. webrtc-rs would otherwise answer every
        // re-offer with `active`, flipping the role it took when it offered first, which
        // browsers reject ("Failed to set SSL role").
        settings
            .set_answering_dtls_role(webrtc::dtls_transport::dtls_role::DTLSRole::Server)
            .map_err(SfuError::WebRtc)?;
        // A publisher's retransmission arrives a NACK interval and a round trip after the
        // packet it repairs; by then a keyframe burst may have brought more than webrtc-srtp's
        // default window of 64 packets, and the repair would be dropped as a replay.
        settings.set_srtp_replay_protection_window(SRTP_REPLAY_WINDOW);
        // The per-connection API below owns its media engine: no copy needed.
        settings.disable_media_engine_copy(true);
        Ok(PeerFactory { settings, mux })
    }

    pub fn udp_port(&self) -> u16 {
        self.mux.local_addr().port()
    }

    /// The media socket's mux: its drop counters, and where fast paths are installed.
    pub fn mux(&self) -> &Arc<UdpMux> {
        &self.mux
    }

    pub async fn new_peer(&self) -> Result<Peer, SfuError> {
        let mut media = MediaEngine::default();
        register_codecs(&mut media)?;
        let interceptor = Arc::new(Mutex::new(None));
        let mut registry = Registry::new();
        registry.add(Box::new(CaptureChain {
            inner: interceptor_registry(),
            captured: Arc::clone(&interceptor),
        }));
        let api = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(self.settings.clone())
            .build();
        let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
        let interceptor = interceptor
            .lock()
            .take()
            .ok_or_else(|| SfuError::Internal("interceptor chain was not built".into()))?;
        let egress = Arc::new(Egress::new(Arc::clone(&self.mux)));
        Ok(Peer {
            pc,
            api,
            interceptor,
            feedback: Arc::new(TransportFeedback::new(
                Arc::clone(&self.mux),
                Arc::clone(&egress),
                Instant::now(),
            )),
            egress,
        })
    }
}

impl Drop for PeerFactory {
    fn drop(&mut self) {
        self.mux.shutdown();
    }
}

/// The address families candidates are gathered for: those the socket serves, and with
/// NAT 1:1 only those of the public addresses (a local address of another family has
/// nothing to map to).
fn network_types(config: &MediaConfig, socket_has_ipv6: bool) -> Vec<NetworkType> {
    let public: Vec<IpAddr> = config
        .public_ips
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    let wants = |v6: bool| public.is_empty() || public.iter().any(|ip| ip.is_ipv6() == v6);
    let serves_ipv4 = match config.udp_ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.is_unspecified(),
    };
    let mut types = Vec::new();
    if serves_ipv4 && wants(false) {
        types.push(NetworkType::Udp4);
    }
    if socket_has_ipv6 && wants(true) {
        types.push(NetworkType::Udp6);
    }
    types
}

/// Whether a local address gets a host candidate: the bound one if the socket is bound
/// to one; otherwise every address but IPv6 link-local ones, which need an interface to
/// be reachable and which candidates cannot carry.
fn announced(bound: IpAddr, ip: IpAddr) -> bool {
    if !bound.is_unspecified() {
        return ip == bound;
    }
    match ip {
        IpAddr::V6(v6) => !v6.is_unicast_link_local(),
        IpAddr::V4(_) => true,
    }
}

/// A participant's connection plus what is needed to give it new senders.
pub struct Peer {
    pub pc: Arc<RTCPeerConnection>,
    api: API,
    interceptor: Arc<dyn Interceptor + Send + Sync>,
    /// Sends everything this connection receives from the room.
    pub egress: Arc<Egress>,
    /// Acknowledges what the socket received from this participant (transport-cc).
    pub feedback: Arc<TransportFeedback>,
}

impl Peer {
    /// A fresh sender for `track` on this connection, to put on a reused transceiver.
    pub async fn new_sender(&self, track: Arc<dyn TrackLocal + Send + Sync>) -> Arc<RTCRtpSender> {
        Arc::new(
            self.api
                .new_rtp_sender(
                    Some(track),
                    self.pc.dtls_transport(),
                    Arc::clone(&self.interceptor),
                )
                .await,
        )
    }

    /// The codecs negotiated on each of the client's m-lines in `mids` (publisher side:
    /// what it may send), by mid, the one it sends first first.
    ///
    /// A receiver's parameters are the connection's codec list for its kind (or its
    /// transceiver's codec preferences): a client that first answered our offer of every
    /// codec, and then publishes H.264 alone, would show VP8 first. So each list is narrowed
    /// to the payload types the client's latest description has on that m-line, in its
    /// order. One pass over the transceivers and one parse of the description, however many
    /// m-lines.
    pub async fn receive_codecs(
        &self,
        mids: &[&str],
    ) -> HashMap<String, Vec<RTCRtpCodecParameters>> {
        let mut codecs = HashMap::with_capacity(mids.len());
        for t in self.pc.get_transceivers().await {
            if let Some(mid) = t.mid().filter(|m| mids.contains(&m.as_str())) {
                let negotiated = t.receiver().await.get_parameters().await.codecs;
                codecs.insert(mid.to_string(), negotiated);
            }
        }
        let Some(Ok(parsed)) = self.pc.remote_description().await.map(|d| d.unmarshal()) else {
            return codecs;
        };
        for section in &parsed.media_descriptions {
            let Some(Some(mid)) = section.attribute("mid") else {
                continue;
            };
            let Some(negotiated) = codecs.get_mut(mid) else {
                continue;
            };
            let on_this_line: Vec<RTCRtpCodecParameters> = section
                .media_name
                .formats
                .iter()
                .filter_map(|pt| pt.parse::<u8>().ok())
                .filter_map(|pt| negotiated.iter().find(|c| c.payload_type == pt).cloned())
                .collect();
            if !on_this_line.is_empty() {
                *negotiated = on_this_line;
            }
        }
        codecs
    }
}

/// Builds the real interceptor chain and keeps a handle on it for [`Peer::new_sender`].
struct CaptureChain {
    inner: Registry,
    captured: Arc<Mutex<Option<Arc<dyn Interceptor + Send + Sync>>>>,
}

impl InterceptorBuilder for CaptureChain {
    fn build(&self, id: &str) -> Result<Arc<dyn Interceptor + Send + Sync>, interceptor::Error> {
        let chain: Arc<dyn Interceptor + Send + Sync> = Arc::new(self.inner.build_chain(id)?);
        *self.captured.lock() = Some(Arc::clone(&chain));
        Ok(chain)
    }
}

/// No interceptor: the socket's fast path (`crate::ingress`) receives a publisher's layers
/// from their first packets on (webrtc-rs reads at most the few before `on_track`), and
/// [`crate::transport_feedback`] sends their NACKs, receiver reports and transport-cc
/// feedback. Subscribers' RTP goes out through `Egress`, which numbers it for
/// transport-cc; sender reports go with the forwarded packets, and NACKs are answered from
/// our own per-track cache. webrtc-rs's NACK generator, here before, ticked every 100 ms
/// on every connection (1,500 wake-ups a second in a webinar of 150) for those few
/// packets.
fn interceptor_registry() -> Registry {
    Registry::new()
}

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    }
}

fn register_codecs(m: &mut MediaEngine) -> Result<(), SfuError> {
    let video_fb = vec![
        feedback("goog-remb", ""),
        feedback("transport-cc", ""),
        feedback("ccm", "fir"),
        feedback("nack", ""),
        feedback("nack", "pli"),
    ];
    let codec = |mime: &str, clock_rate, channels, fmtp: &str, fb: Vec<RTCPFeedback>, pt| {
        RTCRtpCodecParameters {
            capability: RTCRtpCodecCapability {
                mime_type: mime.into(),
                clock_rate,
                channels,
                sdp_fmtp_line: fmtp.into(),
                rtcp_feedback: fb,
            },
            payload_type: pt,
            ..Default::default()
        }
    };
    m.register_codec(
        codec(
            MIME_TYPE_OPUS,
            48000,
            2,
            "minptime=10;useinbandfec=1",
            vec![feedback("transport-cc", "")],
            111,
        ),
        RTPCodecType::Audio,
    )?;
    // RED (RFC 2198) over that Opus, after it so a publisher keeps sending plain Opus (the
    // first codec of the answer): the server builds RED from it for every subscriber that
    // takes RED (Chrome does), strips a publisher's RED for those that do not
    // (`media/red.rs`). Same payload type and fmtp as Chrome's.
    m.register_codec(
        codec(
            crate::media::red::MIME_TYPE_RED,
            48000,
            2,
            "111/111",
            vec![],
            63,
        ),
        RTPCodecType::Audio,
    )?;
    m.register_codec(
        codec(MIME_TYPE_VP8, 90000, 0, "", video_fb.clone(), 96),
        RTPCodecType::Video,
    )?;
    for (pt, fmtp) in [
        (
            102,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        ),
        (
            108,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
        (
            127,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f",
        ),
    ] {
        m.register_codec(
            codec(MIME_TYPE_H264, 90000, 0, fmtp, video_fb.clone(), pt),
            RTPCodecType::Video,
        )?;
    }
    // webrtc-rs numbers extensions in registration order (id = position + 1). They are
    // registered so every id is the one Chrome picks by default for the same URI: when the
    // server offers first, Chrome keeps our ids, then adds its defaults for any m-line it
    // publishes later, and a default id already taken by another URI would make Chrome
    // reject its own offer ("BUNDLE group contains a codec collision for header extension").
    // Ids 9 and 12 are placeholders that keep the numbering aligned.
    const A: (bool, bool) = (true, false);
    const V: (bool, bool) = (false, true);
    const AV: (bool, bool) = (true, true);
    let extensions: [(&str, (bool, bool)); 13] = [
        (extmap::AUDIO_LEVEL_URI, A),
        (extmap::ABS_SEND_TIME_URI, AV),
        (extmap::TRANSPORT_CC_URI, AV),
        (extmap::SDES_MID_URI, AV),
        (
            "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
            V,
        ),
        (
            "http://www.webrtc.org/experiments/rtp-hdrext/video-content-type",
            V,
        ),
        (
            "http://www.webrtc.org/experiments/rtp-hdrext/video-timing",
            V,
        ),
        (
            "http://www.webrtc.org/experiments/rtp-hdrext/color-space",
            V,
        ),
        ("urn:roomcast:rtp-hdrext:reserved-9", V),
        (extmap::SDES_RTP_STREAM_ID_URI, V),
        (extmap::SDES_REPAIR_RTP_STREAM_ID_URI, V),
        ("urn:roomcast:rtp-hdrext:reserved-12", V),
        (extmap::VIDEO_ORIENTATION_URI, V),
    ];
    for (uri, (audio, video)) in extensions {
        let ext = RTCRtpHeaderExtensionCapability { uri: uri.into() };
        if audio {
            m.register_header_extension(ext.clone(), RTPCodecType::Audio, None)?;
        }
        if video {
            m.register_header_extension(ext, RTPCodecType::Video, None)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn media(udp_ip: &str, public_ips: &[&str]) -> MediaConfig {
        MediaConfig {
            udp_ip: udp_ip.parse().expect("address"),
            udp_port: 0,
            public_ips: public_ips.iter().map(|s| s.to_string()).collect(),
            include_loopback: true,
        }
    }

    #[test]
    fn candidates_are_gathered_for_the_families_the_socket_serves() {
        use NetworkType::{Udp4, Udp6};
        assert_eq!(network_types(&media("0.0.0.0", &[]), true), [Udp4, Udp6]);
        assert_eq!(network_types(&media("0.0.0.0", &[]), false), [Udp4]);
        assert_eq!(network_types(&media("::", &[]), true), [Udp4, Udp6]);
        assert_eq!(network_types(&media("127.0.0.1", &[]), false), [Udp4]);
        assert_eq!(network_types(&media("::1", &[]), true), [Udp6]);
        // NAT 1:1 maps local addresses to public ones of the same family only.
        assert_eq!(
            network_types(&media("0.0.0.0", &["203.0.113.7"]), true),
            [Udp4]
        );
        assert_eq!(
            network_types(&media("0.0.0.0", &["203.0.113.7", "2001:db8::7"]), true),
            [Udp4, Udp6]
        );
    }

    #[test]
    fn every_address_but_link_local_ones_is_announced() {
        let any: IpAddr = "0.0.0.0".parse().expect("address");
        for ip in ["127.0.0.1", "192.0.2.2", "::1", "fd00::2", "2001:db8::1"] {
            assert!(announced(any, ip.parse().expect("address")), "{ip}");
        }
        assert!(!announced(any, "fe80::1".parse().expect("address")));
        let one: IpAddr = "192.0.2.2".parse().expect("address");
        assert!(announced(one, one));
        assert!(!announced(one, "127.0.0.1".parse().expect("address")));
    }

    fn ice_ufrag(sdp: &str) -> Option<&str> {
        sdp.lines()
            .find_map(|line| line.strip_prefix("a=ice-ufrag:"))
    }

    /// Applying a description only queues the start of the transports. A client may send
    /// its next offer as soon as it has the answer (the contract allows it), so the second
    /// offer can arrive before that start has run, while the ICE agent still has no remote
    /// credentials. It must be answered as an ordinary renegotiation, not refused and not
    /// taken for an ICE restart.
    #[tokio::test]
    async fn an_offer_applied_before_the_transports_started_is_not_an_ice_restart() {
        let factory = PeerFactory::bind(&media("127.0.0.1", &[])).await.unwrap();
        let server = factory.new_peer().await.unwrap();
        let client = APIBuilder::new()
            .with_media_engine({
                let mut media = MediaEngine::default();
                media.register_default_codecs().unwrap();
                media
            })
            .build()
            .new_peer_connection(RTCConfiguration::default())
            .await
            .unwrap();

        client
            .add_transceiver_from_kind(RTPCodecType::Audio, None)
            .await
            .unwrap();
        let first = client.create_offer(None).await.unwrap();
        let first_sdp = first.sdp.clone();
        client.set_local_description(first.clone()).await.unwrap();
        // Without yielding to the runtime, so that the start the first offer queued on the
        // server has not run when the second arrives (as on a busy server).
        let (answer, second, applied) = tokio::task::unconstrained(async {
            server.pc.set_remote_description(first).await.unwrap();
            let answer = server.pc.create_answer(None).await.unwrap();
            server
                .pc
                .set_local_description(answer.clone())
                .await
                .unwrap();
            client.set_remote_description(answer.clone()).await.unwrap();
            client
                .add_transceiver_from_kind(RTPCodecType::Video, None)
                .await
                .unwrap();
            let second = client.create_offer(None).await.unwrap();
            client.set_local_description(second.clone()).await.unwrap();
            let applied = server.pc.set_remote_description(second.clone()).await;
            (answer, second, applied)
        })
        .await;
        assert_eq!(
            ice_ufrag(&second.sdp),
            ice_ufrag(&first_sdp),
            "not a restart"
        );
        applied.expect("the second offer is applied");
        let second_answer = server.pc.create_answer(None).await.unwrap();
        assert_eq!(
            ice_ufrag(&second_answer.sdp),
            ice_ufrag(&answer.sdp),
            "the server restarted ICE"
        );
        server.pc.close().await.unwrap();
        client.close().await.unwrap();
    }

    #[tokio::test]
    async fn offered_extension_ids_match_chromes_defaults() {
        let factory = PeerFactory::bind(&MediaConfig {
            udp_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            udp_port: 0,
            public_ips: vec![],
            include_loopback: true,
        })
        .await
        .unwrap();
        let peer = factory.new_peer().await.unwrap();
        for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
            peer.pc.add_transceiver_from_kind(kind, None).await.unwrap();
        }
        let offer = peer.pc.create_offer(None).await.unwrap();
        for expected in [
            format!("a=extmap:1 {}", extmap::AUDIO_LEVEL_URI),
            format!("a=extmap:3 {}", extmap::TRANSPORT_CC_URI),
            format!("a=extmap:4 {}", extmap::SDES_MID_URI),
            format!("a=extmap:10 {}", extmap::SDES_RTP_STREAM_ID_URI),
            format!("a=extmap:11 {}", extmap::SDES_REPAIR_RTP_STREAM_ID_URI),
            format!("a=extmap:13 {}", extmap::VIDEO_ORIENTATION_URI),
        ] {
            assert!(
                offer.sdp.contains(&expected),
                "missing {expected} in\n{}",
                offer.sdp
            );
        }
        peer.pc.close().await.unwrap();
    }
}
