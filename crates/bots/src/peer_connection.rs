//! How a bot's one PeerConnection is built: the codecs and header extensions it speaks, the
//! interceptors a browser would also run, its own media socket (whose kernel timestamps
//! its transport-cc feedback reports, see `socket_arrivals.rs`), and ICE kept on loopback
//! for a loopback server.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use roomcast_protocol::IceServer;
use roomcast_udp::UdpMux;
use tokio_tungstenite::tungstenite::http::Uri;
use webrtc::api::interceptor_registry::{configure_rtcp_reports, configure_twcc_sender_only};
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_mux::UDPMux;
use webrtc::ice::udp_network::UDPNetwork;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::nack::generator::Generator;
use webrtc::interceptor::nack::responder::Responder;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::policy::bundle_policy::RTCBundlePolicy;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RTPCodecType,
};
use webrtc::rtp_transceiver::{RTCPFeedback, TYPE_RTCP_FB_TRANSPORT_CC};
use webrtc::sdp::extmap::{
    ABS_SEND_TIME_URI, AUDIO_LEVEL_URI, SDES_MID_URI, SDES_RTP_STREAM_ID_URI,
};

use crate::socket_arrivals::SocketArrivals;
use crate::transport_cc::ReceivePath;
use crate::{BotError, VideoCodec};

// Payload types as roomcast's server numbers them, so the bot's offers and the server's share
// one numbering inside the BUNDLE group.
const OPUS_PAYLOAD_TYPE: u8 = 111;
const VP8_PAYLOAD_TYPE: u8 = 96;
/// H.264 profiles the bot receives, all with packetization-mode=1.
const H264_PROFILES: [(u8, &str); 3] = [(102, "42001f"), (108, "42e01f"), (127, "4d001f")];
/// The one it publishes: constrained baseline 3.1, what `media/make-loops.sh` encodes.
const H264_PUBLISHED_PROFILE: (u8, &str) = H264_PROFILES[1];

/// Audio is always Opus.
pub(crate) fn opus() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        capability: RTCRtpCodecCapability {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PAYLOAD_TYPE,
        ..Default::default()
    }
}

/// The codec a published video track uses.
pub(crate) fn video(codec: VideoCodec) -> RTCRtpCodecParameters {
    match codec {
        VideoCodec::Vp8 => video_codec(MIME_TYPE_VP8, String::new(), VP8_PAYLOAD_TYPE),
        VideoCodec::H264 => h264(H264_PUBLISHED_PROFILE),
    }
}

/// Every video codec the bot registers, VP8 first.
fn video_codecs() -> Vec<RTCRtpCodecParameters> {
    let mut codecs = vec![video(VideoCodec::Vp8)];
    codecs.extend(H264_PROFILES.into_iter().map(h264));
    codecs
}

/// What a published m-line offers: the codec the bot sends first, then every other codec of
/// its kind, as a browser offers them. Not the sent codec alone: webrtc-rs fixes a
/// connection's codecs at the first description with that kind of m-line in it, and for a
/// bot that publishes before anything is offered to it that is this offer, so the server
/// could never offer it another video codec.
///
/// webrtc-rs offers a preference as it is, without the feedback the interceptor setup
/// registers, so video's NACK is added here: without it neither the server's NACK generator
/// nor the bot's responder binds to the published stream, and its losses are never repaired.
pub(crate) fn codec_preferences(published: &RTCRtpCodecParameters) -> Vec<RTCRtpCodecParameters> {
    let video = published.capability.mime_type != MIME_TYPE_OPUS;
    let same_kind = if video { video_codecs() } else { vec![opus()] };
    std::iter::once(published.clone())
        .chain(
            same_kind
                .into_iter()
                .filter(|c| c.payload_type != published.payload_type),
        )
        .map(|mut codec| {
            if video {
                for parameter in ["", "pli"] {
                    codec.capability.rtcp_feedback.push(RTCPFeedback {
                        typ: "nack".to_owned(),
                        parameter: parameter.to_owned(),
                    });
                }
            }
            codec
        })
        .collect()
}

/// How many packets back the bot's NACK generator remembers (webrtc-rs: 64 << this). It asks
/// again for every missing packet in that window each 100 ms, with no retry limit, so
/// webrtc-rs's default (8,192) asks for one lost audio packet about 1,600 times. 64 stops
/// after about ten asks at the loops' rates, as a browser does (libwebrtc: 10 retries). With
/// the default, a bot falling behind in the 50-person meeting (f) sent the server about 4
/// million NACKed sequence numbers a second, and the replies and NACKs kept it behind.
const NACK_LOG2_SIZE_MINUS_6: u8 = 0;

/// webrtc-rs's `configure_nack` with the bounded generator above.
fn configure_nack(mut registry: Registry, media: &mut MediaEngine) -> Registry {
    for parameter in ["", "pli"] {
        media.register_feedback(
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: parameter.to_owned(),
            },
            RTPCodecType::Video,
        );
    }
    registry.add(Box::new(Responder::builder()));
    registry.add(Box::new(
        Generator::builder().with_log2_size_minus_6(NACK_LOG2_SIZE_MINUS_6),
    ));
    registry
}

fn h264((payload_type, profile_level_id): (u8, &str)) -> RTCRtpCodecParameters {
    let fmtp = format!(
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile_level_id}"
    );
    video_codec(MIME_TYPE_H264, fmtp, payload_type)
}

/// NACK, PLI and transport-cc feedback are added by the interceptor setup.
fn video_codec(mime_type: &str, fmtp: String, payload_type: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        capability: RTCRtpCodecCapability {
            mime_type: mime_type.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: fmtp,
            rtcp_feedback: vec![RTCPFeedback {
                typ: "ccm".to_owned(),
                parameter: "fir".to_owned(),
            }],
        },
        payload_type,
        ..Default::default()
    }
}

/// Connectivity checks per candidate pair (one per 200 ms) before the bot gives the pair up.
const ICE_CHECKS_PER_PAIR: u16 = 40;

/// Whether the server is on this machine; then ICE uses loopback addresses only.
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether an ICE candidate (`candidate:…`, with or without `a=`) has a loopback address.
/// A bot of a server on this machine pairs only with those: the server announces every
/// address of the host, and a pair on any other one breaks when that address goes away (a
/// container's or a test namespace's interface removed), with every track sent over it,
/// which would measure the host's interfaces rather than the server.
pub(crate) fn is_loopback_candidate(candidate: &str) -> bool {
    let value = candidate.strip_prefix("a=").unwrap_or(candidate);
    value
        .strip_prefix("candidate:")
        .and_then(|rest| rest.split_whitespace().nth(4))
        .and_then(|address| address.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

/// `sdp` without the candidates that [`is_loopback_candidate`] refuses.
pub(crate) fn keep_loopback_candidates(sdp: &str) -> String {
    let mut kept = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        if !line.starts_with("a=candidate:") || is_loopback_candidate(line) {
            kept.push_str(line);
        }
    }
    kept
}

/// Whether the server is reached by an IPv6 address; then ICE uses IPv6 (IPv4 otherwise).
pub(crate) fn is_ipv6_url(url: &str) -> bool {
    url.parse::<Uri>()
        .ok()
        .and_then(|uri| {
            let host = uri
                .host()?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            host.parse::<IpAddr>().ok()
        })
        .is_some_and(|ip| ip.is_ipv6())
}

/// `simulcast`: the bot publishes simulcast, so it also speaks the rid header extension.
/// Only then: once rid is negotiated, webrtc-rs 0.17 probes every SSRC that arrives before
/// the description announcing it for mid/rid, and a probe that finds no rid (any forwarded
/// track) closes the SRTP stream, even when the receiver of the announced track has meanwhile
/// started reading it; that track then ends ("buffer: closed") seconds before its time.
pub(crate) async fn new_peer_connection(
    ice_servers: &[IceServer],
    loopback_only: bool,
    ipv6: bool,
    simulcast: bool,
) -> Result<(Arc<RTCPeerConnection>, ReceivePath), BotError> {
    let mut media = MediaEngine::default();
    media.register_codec(opus(), RTPCodecType::Audio)?;
    for codec in video_codecs() {
        media.register_codec(codec, RTPCodecType::Video)?;
    }
    let mut extensions = vec![
        (
            SDES_MID_URI,
            &[RTPCodecType::Audio, RTPCodecType::Video][..],
        ),
        (
            ABS_SEND_TIME_URI,
            &[RTPCodecType::Audio, RTPCodecType::Video],
        ),
        (AUDIO_LEVEL_URI, &[RTPCodecType::Audio]),
    ];
    if simulcast {
        // Each encoding's packets carry their rid (and the mid, above).
        extensions.push((SDES_RTP_STREAM_ID_URI, &[RTPCodecType::Video]));
    }
    for (uri, kinds) in extensions {
        for &kind in kinds {
            let extension = RTCRtpHeaderExtensionCapability {
                uri: uri.to_owned(),
            };
            media.register_header_extension(extension, kind, None)?;
        }
    }
    let mut registry = Registry::new();
    registry = configure_nack(registry, &mut media);
    registry = configure_rtcp_reports(registry);
    // Transport-cc sequence numbers on what the bot sends; the feedback on what it receives
    // is ours (`transport_cc.rs`), with arrival times from the socket.
    registry = configure_twcc_sender_only(registry, &mut media)?;
    for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
        media.register_feedback(
            RTCPFeedback {
                typ: TYPE_RTCP_FB_TRANSPORT_CC.to_owned(),
                ..Default::default()
            },
            kind,
        );
    }

    let bind = if ipv6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let mux = UdpMux::bind(bind, 0).map_err(|e| BotError::Socket(e.to_string()))?;
    mux.start().map_err(|e| BotError::Socket(e.to_string()))?;
    let receive = ReceivePath::new(
        Arc::clone(&mux),
        Arc::new(SocketArrivals::new(Instant::now())),
    );
    let mut settings = SettingEngine::default();
    settings.set_udp_network(UDPNetwork::Muxed(mux as Arc<dyn UDPMux + Send + Sync>));
    settings.set_network_types(vec![if ipv6 {
        NetworkType::Udp6
    } else {
        NetworkType::Udp4
    }]);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    // Keep checking a pair for 8 s, not webrtc-ice's 1.6 s: a bot on a busy machine (the
    // load tester's own) must not give up on a server that answers late.
    settings.set_ice_max_binding_requests(Some(ICE_CHECKS_PER_PAIR));
    if loopback_only {
        settings.set_include_loopback_candidate(true);
        settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    }

    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    let config = RTCConfiguration {
        // STUN/TURN servers are off the machine: a loopback call must not reach for them.
        ice_servers: if loopback_only {
            vec![]
        } else {
            ice_servers
                .iter()
                .map(|server| RTCIceServer {
                    urls: server.urls.clone(),
                    username: server.username.clone().unwrap_or_default(),
                    credential: server.credential.clone().unwrap_or_default(),
                })
                .collect()
        },
        bundle_policy: RTCBundlePolicy::MaxBundle,
        ..Default::default()
    };
    Ok((Arc::new(api.new_peer_connection(config).await?), receive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls() {
        assert!(is_loopback_url("ws://127.0.0.1:8080/ws"));
        assert!(is_loopback_url("ws://127.3.2.1:1/ws"));
        assert!(is_loopback_url("ws://localhost:8080/ws"));
        assert!(is_loopback_url("ws://LOCALHOST/ws"));
        assert!(is_loopback_url("ws://[::1]:8080/ws"));
        assert!(!is_loopback_url("ws://10.0.0.1:8080/ws"));
        assert!(!is_loopback_url("wss://example.com/ws"));
        assert!(!is_loopback_url("not a url"));
    }

    #[test]
    fn only_loopback_candidates_are_kept() {
        assert!(is_loopback_candidate(
            "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"
        ));
        assert!(is_loopback_candidate(
            "a=candidate:2 1 udp 2130706431 ::1 5000 typ host\r\n"
        ));
        assert!(!is_loopback_candidate(
            "candidate:3 1 udp 2130706431 fd53:7::1 5000 typ host"
        ));
        assert!(!is_loopback_candidate(
            "candidate:4 1 udp 2130706431 10.214.7.1 5000 typ host"
        ));
        assert!(!is_loopback_candidate(
            "candidate:5 1 udp 1 host.local 5000 typ host"
        ));
        assert!(!is_loopback_candidate("not a candidate"));
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
            a=candidate:1 1 udp 2130706431 192.0.2.2 5000 typ host\r\n\
            a=candidate:2 1 udp 2130706431 127.0.0.1 5000 typ host\r\n\
            a=candidate:3 1 udp 2130706431 fd53:7::1 5000 typ host\r\n\
            a=end-of-candidates\r\n";
        assert_eq!(
            keep_loopback_candidates(sdp),
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
            a=candidate:2 1 udp 2130706431 127.0.0.1 5000 typ host\r\n\
            a=end-of-candidates\r\n"
        );
    }

    #[test]
    fn ipv6_urls() {
        assert!(is_ipv6_url("ws://[::1]:8080/ws"));
        assert!(is_ipv6_url("ws://[fd00::2]/ws"));
        assert!(!is_ipv6_url("ws://127.0.0.1:8080/ws"));
        assert!(!is_ipv6_url("ws://localhost:8080/ws"));
        assert!(!is_ipv6_url("not a url"));
    }
}
