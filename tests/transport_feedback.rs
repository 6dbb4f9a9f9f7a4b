//! A publisher's transport-cc feedback acknowledges every packet that reached the server
//! with a transport-wide sequence number, whatever its SSRC. Chrome probes its bandwidth
//! with padding on SSRCs the server never binds (RTX streams, SSRC 0); a probe missing
//! from the feedback counts as lost, and Chrome then keeps its estimate (and its camera)
//! low. Here a bare webrtc-rs client publishes an audio stream and, between its packets,
//! padding-only probes on SSRC 0, both numbered by one transport-wide counter, and decodes
//! the feedback the server sends back.
mod common;

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use roomcast_protocol::{ClientMessage, IceCandidate, ServerMessage};
use tokio::sync::{watch, Mutex};
use tokio_tungstenite::tungstenite::Message;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::APIBuilder;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, SymbolTypeTcc, TransportLayerCc,
};
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RTPCodecType,
};
use webrtc::sdp::extmap::TRANSPORT_CC_URI;
use webrtc::track::track_local::{TrackLocal, TrackLocalContext, TrackLocalWriter};

/// What the probe track learns when the connection binds it.
#[derive(Clone)]
struct Binding {
    ssrc: u32,
    payload_type: u8,
    transport_cc: u8,
    writer: Arc<dyn TrackLocalWriter + Send + Sync>,
}

/// An audio track that writes whole RTP packets, any SSRC, straight to the connection.
struct ProbeTrack {
    bound: watch::Sender<Option<Binding>>,
}

#[async_trait::async_trait]
impl TrackLocal for ProbeTrack {
    async fn bind(&self, t: &TrackLocalContext) -> webrtc::error::Result<RTCRtpCodecParameters> {
        let codec = t
            .codec_parameters()
            .first()
            .cloned()
            .ok_or(webrtc::error::Error::ErrCodecNotFound)?;
        let transport_cc = t
            .header_extensions()
            .iter()
            .find(|e| e.uri == TRANSPORT_CC_URI)
            .and_then(|e| u8::try_from(e.id).ok())
            .ok_or(webrtc::error::Error::ErrCodecNotFound)?;
        self.bound.send_replace(Some(Binding {
            ssrc: t.ssrc(),
            payload_type: codec.payload_type,
            transport_cc,
            writer: t.write_stream(),
        }));
        Ok(codec)
    }

    async fn unbind(&self, _: &TrackLocalContext) -> webrtc::error::Result<()> {
        Ok(())
    }

    fn id(&self) -> &str {
        "probe-audio"
    }

    fn rid(&self) -> Option<&str> {
        None
    }

    fn stream_id(&self) -> &str {
        "probe"
    }

    fn kind(&self) -> RTPCodecType {
        RTPCodecType::Audio
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &Mutex<Socket>, message: &ClientMessage) {
    let text = serde_json::to_string(message).expect("JSON");
    ws.lock()
        .await
        .send(Message::Text(text.into()))
        .await
        .expect("sent");
}

async fn next_message(ws: &Mutex<Socket>) -> ServerMessage {
    loop {
        let frame = tokio::time::timeout(common::MESSAGE_TIMEOUT, ws.lock().await.next())
            .await
            .expect("a server message in time");
        if let Some(Ok(Message::Text(text))) = frame {
            return serde_json::from_str(&text).expect("a server message");
        }
        assert!(
            matches!(frame, Some(Ok(_))),
            "the connection ended: {frame:?}"
        );
    }
}

/// The transport-wide sequence numbers a feedback reports as received.
fn received(feedback: &TransportLayerCc) -> Vec<u16> {
    let mut statuses = Vec::new();
    for chunk in &feedback.packet_chunks {
        match chunk {
            PacketStatusChunk::RunLengthChunk(run) => statuses.extend(std::iter::repeat_n(
                run.packet_status_symbol,
                usize::from(run.run_length),
            )),
            PacketStatusChunk::StatusVectorChunk(v) => {
                statuses.extend(v.symbol_list.iter().copied())
            }
        }
    }
    statuses.truncate(usize::from(feedback.packet_status_count));
    statuses
        .into_iter()
        .enumerate()
        .filter(|(_, s)| *s != SymbolTypeTcc::PacketNotReceived)
        .map(|(i, _)| feedback.base_sequence_number.wrapping_add(i as u16))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_on_ssrcs_the_server_never_bound_are_acknowledged() {
    let server = common::start_server().await;

    let mut media = MediaEngine::default();
    media.register_default_codecs().expect("codecs");
    media
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: TRANSPORT_CC_URI.into(),
            },
            RTPCodecType::Audio,
            None,
        )
        .expect("transport-cc");
    // No interceptors: the packets leave exactly as written, numbered by this test.
    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(Registry::new())
        .build();
    let pc = Arc::new(
        api.new_peer_connection(RTCConfiguration::default())
            .await
            .expect("a peer connection"),
    );
    let (connected, mut state) = watch::channel(pc.connection_state());
    pc.on_peer_connection_state_change(Box::new(move |s| {
        connected.send_replace(s);
        Box::pin(async {})
    }));
    let (bound, mut binding) = watch::channel(None);
    let sender = pc
        .add_track(Arc::new(ProbeTrack { bound }))
        .await
        .expect("track added");

    let (ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("websocket connects");
    let ws = Mutex::new(ws);
    send(
        &ws,
        &ClientMessage::Join {
            room: "probes".into(),
            name: "prober".into(),
            role: None,
            token: None,
            room_settings: None,
        },
    )
    .await;
    // Candidates that come before the answer wait for it; later ones are added as they come.
    let mut candidates = Vec::new();
    loop {
        match next_message(&ws).await {
            ServerMessage::Joined { .. } => send(&ws, &ClientMessage::NegotiateRequest).await,
            ServerMessage::NegotiateGrant => {
                let offer = pc.create_offer(None).await.expect("offer");
                let mut gathered = pc.gathering_complete_promise().await;
                pc.set_local_description(offer).await.expect("local offer");
                let _ = gathered.recv().await;
                let sdp = pc.local_description().await.expect("an offer").sdp;
                send(
                    &ws,
                    &ClientMessage::Offer {
                        sdp,
                        tracks: vec![],
                    },
                )
                .await;
            }
            ServerMessage::Answer { sdp } => {
                let answer = RTCSessionDescription::answer(sdp).expect("an answer");
                pc.set_remote_description(answer)
                    .await
                    .expect("answer applied");
                break;
            }
            ServerMessage::Candidate { candidate: Some(c) } => candidates.push(c),
            _ => {}
        }
    }
    let add = |pc: Arc<RTCPeerConnection>, c: IceCandidate| async move {
        let init = RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            username_fragment: c.username_fragment,
        };
        pc.add_ice_candidate(init).await.expect("candidate");
    };
    for c in candidates {
        add(Arc::clone(&pc), c).await;
    }
    let signaling = {
        let pc = Arc::clone(&pc);
        tokio::spawn(async move {
            loop {
                if let ServerMessage::Candidate { candidate: Some(c) } = next_message(&ws).await {
                    add(Arc::clone(&pc), c).await;
                }
            }
        })
    };
    tokio::time::timeout(
        common::MEDIA_TIMEOUT,
        state.wait_for(|s| *s == RTCPeerConnectionState::Connected),
    )
    .await
    .expect("connected in time")
    .expect("connection state");
    let binding = binding
        .wait_for(Option::is_some)
        .await
        .expect("track bound")
        .clone()
        .expect("a binding");

    // Every 5 ms an Opus packet on the track's SSRC, then a padding-only probe on SSRC 0.
    let probes = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let sending = {
        let probes = Arc::clone(&probes);
        tokio::spawn(async move {
            let mut transport_seq = 0u16;
            for i in 0u16.. {
                for ssrc in [binding.ssrc, 0] {
                    let mut packet = webrtc::rtp::packet::Packet::default();
                    packet.header.version = 2;
                    packet.header.payload_type = binding.payload_type;
                    packet.header.ssrc = ssrc;
                    packet.header.sequence_number = i;
                    packet.header.timestamp = u32::from(i).wrapping_mul(960);
                    if ssrc == 0 {
                        packet.header.padding = true;
                        probes.lock().expect("probes").insert(transport_seq);
                    } else {
                        packet.payload = Bytes::from_static(&[0xf8, 0xff, 0xfe]);
                    }
                    packet
                        .header
                        .set_extension(
                            binding.transport_cc,
                            Bytes::copy_from_slice(&transport_seq.to_be_bytes()),
                        )
                        .expect("extension");
                    let _ = binding.writer.write_rtp(&packet).await;
                    transport_seq = transport_seq.wrapping_add(1);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    // Read the feedback until it has acknowledged 100 probes.
    let mut acknowledged = HashSet::new();
    let mut feedbacks = 0;
    let read = tokio::time::timeout(common::MEDIA_TIMEOUT, async {
        loop {
            let (packets, _) = sender.read_rtcp().await.expect("RTCP");
            for packet in packets {
                if let Some(feedback) = packet.as_any().downcast_ref::<TransportLayerCc>() {
                    feedbacks += 1;
                    acknowledged.extend(received(feedback));
                }
            }
            let probes = probes.lock().expect("probes");
            if acknowledged.iter().filter(|s| probes.contains(s)).count() >= 100 {
                return;
            }
        }
    })
    .await;
    sending.abort();
    signaling.abort();
    let probes = probes.lock().expect("probes").clone();
    let acked_probes = acknowledged.intersection(&probes).count();
    let acked_media = acknowledged.len() - acked_probes;
    assert!(
        read.is_ok(),
        "{feedbacks} feedbacks acknowledged {acked_media} media packets and {acked_probes} of \
         {} SSRC 0 probes",
        probes.len()
    );
    assert!(acked_media > 0, "the media stream is acknowledged too");
    pc.close().await.expect("closed");
}
