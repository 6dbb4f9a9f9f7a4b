//! A client that looks to the server like another browser: a webrtc-rs PeerConnection whose
//! codecs and header-extension ids are that browser's, and whose offer is sent as that
//! browser writes it (a text template filled with this connection's ICE and DTLS values).
//! The numbering the template uses must be the connection's own, so the media that follows
//! the answer matches what the offer said. It joins over a bare WebSocket, answers every
//! server offer, and keeps every server message.
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::interceptor::registry::Registry;
use webrtc::media::io::h264_reader::H264Reader;
use webrtc::media::Sample;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::policy::bundle_policy::RTCBundlePolicy;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;
use webrtc::track::track_local::TrackLocal;

use super::MESSAGE_TIMEOUT;

/// Header-extension URIs in the order that gives each its libwebrtc default id (1, 2, …), as
/// Chrome and Safari number them; `None` keeps an id unused.
pub const LIBWEBRTC_EXTENSION_IDS: [Option<&str>; 14] = [
    Some("urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
    Some("http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
    Some("http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"),
    Some("urn:ietf:params:rtp-hdrext:sdes:mid"),
    Some("http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"),
    Some("http://www.webrtc.org/experiments/rtp-hdrext/video-content-type"),
    Some("http://www.webrtc.org/experiments/rtp-hdrext/video-timing"),
    Some("http://www.webrtc.org/experiments/rtp-hdrext/color-space"),
    None,
    Some("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
    Some("urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"),
    None,
    Some("urn:3gpp:video-orientation"),
    Some("urn:ietf:params:rtp-hdrext:toffset"),
];

/// What the client's connection speaks: codecs (with their payload types) per kind.
pub struct Codecs {
    pub audio: Vec<RTCRtpCodecParameters>,
    pub video: Vec<RTCRtpCodecParameters>,
}

pub fn codec(
    mime: &str,
    clock_rate: u32,
    channels: u16,
    fmtp: &str,
    pt: u8,
) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        capability: RTCRtpCodecCapability {
            mime_type: mime.into(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.into(),
            rtcp_feedback: vec![],
        },
        payload_type: pt,
        ..Default::default()
    }
}

pub struct ShapedClient {
    pub participant_id: String,
    pub pc: Arc<RTCPeerConnection>,
    messages: Arc<Mutex<Vec<Value>>>,
    outgoing: mpsc::UnboundedSender<Value>,
    tasks: Vec<JoinHandle<()>>,
}

impl ShapedClient {
    /// Joins `room` on the server at `ws_url` with a connection that speaks `codecs`.
    pub async fn join(ws_url: &str, room: &str, name: &str, codecs: Codecs) -> ShapedClient {
        let pc = peer_connection(codecs).await;
        let (socket, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .expect("websocket connects");
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut to_send) = mpsc::unbounded_channel::<Value>();
        let writer = tokio::spawn(async move {
            while let Some(message) = to_send.recv().await {
                if sink
                    .send(Message::Text(message.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        outgoing
            .send(json!({"type": "join", "room": room, "name": name}))
            .expect("writer runs");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&messages);
        let answering = Arc::clone(&pc);
        let replies = outgoing.clone();
        // Every server message is kept; server offers are answered, answers and candidates
        // applied, in arrival order.
        let reader = tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Message::Text(text) = frame else { continue };
                let Ok(message) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                kept.lock().expect("messages").push(message.clone());
                if let Err(e) = on_signal(&answering, &replies, &message).await {
                    panic!("the client could not apply {}: {e}", message["type"]);
                }
            }
        });
        let joined = wait_for(&messages, 0, |m| {
            m["type"] == "joined" || m["type"] == "error"
        })
        .await;
        assert_eq!(joined["type"], "joined", "{name} joins: {joined}");
        ShapedClient {
            participant_id: joined["participant_id"].as_str().expect("id").to_owned(),
            pc,
            messages,
            outgoing,
            tasks: vec![writer, reader],
        }
    }

    /// Every server message so far.
    pub fn messages(&self) -> Vec<Value> {
        self.messages.lock().expect("messages").clone()
    }

    /// Waits for a server message matching `pred` (it may have come already).
    pub async fn wait_for(&self, pred: impl Fn(&Value) -> bool) -> Value {
        wait_for(&self.messages, 0, pred).await
    }

    /// Publishes under the negotiation lock: the connection's own offer (for the transceivers
    /// already added) goes out as `shape(own offer)`, with `tracks`. Returns the server's answer.
    pub async fn publish(&self, tracks: Value, shape: impl FnOnce(&str) -> String) -> String {
        let seen = self.messages().len();
        self.outgoing
            .send(json!({"type": "negotiate_request"}))
            .expect("writer runs");
        wait_for(&self.messages, seen, |m| m["type"] == "negotiate_grant").await;
        let offer = self.pc.create_offer(None).await.expect("an offer");
        let mut gathered = self.pc.gathering_complete_promise().await;
        self.pc
            .set_local_description(offer)
            .await
            .expect("local offer");
        let _ = gathered.recv().await;
        let own = self.pc.local_description().await.expect("local offer").sdp;
        let seen = self.messages().len();
        self.outgoing
            .send(json!({"type": "offer", "sdp": shape(&own), "tracks": tracks}))
            .expect("writer runs");
        let reply = wait_for(&self.messages, seen, |m| {
            m["type"] == "answer" || m["type"] == "error"
        })
        .await;
        assert_eq!(reply["type"], "answer", "the offer is answered: {reply}");
        let answer = reply["sdp"].as_str().expect("sdp").to_owned();
        // The reader applies it; wait until it has.
        let answered = tokio::time::timeout(MESSAGE_TIMEOUT, async {
            while self
                .pc
                .remote_description()
                .await
                .is_none_or(|d| d.sdp != answer)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(answered.is_ok(), "the answer was applied");
        answer
    }

    pub async fn leave(self) {
        let _ = self.outgoing.send(json!({"type": "leave"}));
        tokio::time::sleep(Duration::from_millis(100)).await;
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.pc.close().await;
    }
}

/// The first server message from the `from`-th on that matches `pred`, waiting for it.
async fn wait_for(
    messages: &Mutex<Vec<Value>>,
    from: usize,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let found = tokio::time::timeout(MESSAGE_TIMEOUT, async {
        loop {
            let seen = messages
                .lock()
                .expect("messages")
                .iter()
                .skip(from)
                .find(|m| pred(m))
                .cloned();
            if let Some(m) = seen {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "no such server message in time; got {:?}",
            messages.lock().expect("messages")
        )
    })
}

async fn on_signal(
    pc: &RTCPeerConnection,
    replies: &mpsc::UnboundedSender<Value>,
    message: &Value,
) -> Result<(), webrtc::Error> {
    let sdp = || message["sdp"].as_str().unwrap_or_default().to_owned();
    match message["type"].as_str() {
        Some("offer") => {
            pc.set_remote_description(RTCSessionDescription::offer(sdp())?)
                .await?;
            let answer = pc.create_answer(None).await?;
            let mut gathered = pc.gathering_complete_promise().await;
            pc.set_local_description(answer).await?;
            let _ = gathered.recv().await;
            let local = pc
                .local_description()
                .await
                .ok_or(webrtc::Error::ErrNoRemoteDescription)?;
            let _ = replies.send(json!({"type": "answer", "sdp": local.sdp}));
        }
        Some("answer") => {
            pc.set_remote_description(RTCSessionDescription::answer(sdp())?)
                .await?;
        }
        Some("candidate") => {
            if let Some(candidate) = message["candidate"]["candidate"]
                .as_str()
                .filter(|c| !c.is_empty())
            {
                pc.add_ice_candidate(RTCIceCandidateInit {
                    candidate: candidate.to_owned(),
                    sdp_mid: message["candidate"]["sdpMid"].as_str().map(str::to_owned),
                    sdp_mline_index: message["candidate"]["sdpMLineIndex"]
                        .as_u64()
                        .map(|i| i as u16),
                    username_fragment: None,
                })
                .await?;
            }
        }
        _ => {}
    }
    Ok(())
}

async fn peer_connection(codecs: Codecs) -> Arc<RTCPeerConnection> {
    let mut media = MediaEngine::default();
    for (kind, list) in [
        (RTPCodecType::Audio, codecs.audio),
        (RTPCodecType::Video, codecs.video),
    ] {
        for codec in list {
            media.register_codec(codec, kind).expect("codec registers");
        }
    }
    // Registration order is the id order; placeholders keep the unused ids free.
    for (index, uri) in LIBWEBRTC_EXTENSION_IDS.iter().enumerate() {
        let uri = uri.map_or_else(
            || format!("urn:roomcast:test:unused-{}", index + 1),
            str::to_owned,
        );
        let audio = uri.contains("audio-level") || index < 4;
        let video = !uri.contains("audio-level");
        for (wanted, kind) in [(audio, RTPCodecType::Audio), (video, RTPCodecType::Video)] {
            if wanted {
                media
                    .register_header_extension(
                        RTCRtpHeaderExtensionCapability { uri: uri.clone() },
                        kind,
                        None,
                    )
                    .expect("extension registers");
            }
        }
    }
    let registry =
        register_default_interceptors(Registry::new(), &mut media).expect("interceptors");
    let mut settings = SettingEngine::default();
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    // Check a pair for 8 s, as the bots do, not webrtc-ice's 1.6 s: the browser tests run
    // this client beside two browsers on a 2-core machine, and one run's ICE never
    // connected (the server logged `Failed`, docs/network.md).
    settings.set_ice_max_binding_requests(Some(40));
    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    Arc::new(
        api.new_peer_connection(RTCConfiguration {
            bundle_policy: RTCBundlePolicy::MaxBundle,
            ..Default::default()
        })
        .await
        .expect("peer connection"),
    )
}

/// A `sendonly` video transceiver with one encoding per rid (in that order), each playing its
/// Annex-B H.264 loop from `loops` at 30 frames a second; and a silent `sendonly` audio one
/// before it. Returns the tasks that play.
pub async fn add_simulcast_h264(
    pc: &RTCPeerConnection,
    codec: &RTCRtpCodecParameters,
    audio: &RTCRtpCodecParameters,
    layers: &[(&str, &Path)],
) -> Vec<JoinHandle<()>> {
    let sendonly = || RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Sendonly,
        send_encodings: vec![],
    };
    let microphone: Arc<dyn TrackLocal + Send + Sync> = Arc::new(TrackLocalStaticSample::new(
        audio.capability.clone(),
        "microphone".into(),
        "safari".into(),
    ));
    pc.add_transceiver_from_track(microphone, Some(sendonly()))
        .await
        .expect("audio transceiver");
    let mut sender = None;
    let mut players = Vec::new();
    for (rid, path) in layers {
        let track = Arc::new(TrackLocalStaticSample::new_with_rid(
            codec.capability.clone(),
            "camera".into(),
            (*rid).into(),
            "safari".into(),
        ));
        match &sender {
            None => {
                let t = pc
                    .add_transceiver_from_track(Arc::clone(&track) as _, Some(sendonly()))
                    .await
                    .expect("video transceiver");
                sender = Some(t.sender().await);
            }
            Some(s) => s
                .add_encoding(Arc::clone(&track) as _)
                .await
                .expect("encoding"),
        }
        let frames = access_units(path);
        players.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / 30);
            for data in frames.iter().cycle() {
                tick.tick().await;
                let sample = Sample {
                    data: data.clone(),
                    duration: Duration::from_secs(1) / 30,
                    ..Default::default()
                };
                if track.write_sample(&sample).await.is_err() {
                    break;
                }
            }
        }));
    }
    players
}

/// The loop's frames, each with the parameter sets before it, in Annex-B form (the loops
/// have one slice per frame).
fn access_units(path: &Path) -> Vec<Bytes> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = H264Reader::new(std::io::BufReader::new(file), 1 << 16);
    let mut frames = Vec::new();
    let mut current = BytesMut::new();
    while let Ok(nal) = reader.next_nal() {
        let kind = nal.data.first().map_or(0, |h| h & 0x1f);
        if kind == 9 {
            continue; // access unit delimiter
        }
        current.extend_from_slice(&[0, 0, 0, 1]);
        current.extend_from_slice(&nal.data);
        if (1..=5).contains(&kind) {
            frames.push(current.split().freeze());
        }
    }
    assert!(!frames.is_empty(), "{} has frames", path.display());
    frames
}
