//! Bots against a minimal fake server on loopback, until the real one exists: the fake speaks
//! the contract's join, negotiation lock, trickle ICE, server offers and leave, and echoes
//! every track a bot publishes back to it under the msid `echo-publisher echo-<kind>`.
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use roomcast_bots::{Bot, BotConfig, BotError, VideoCodec};
use roomcast_protocol::{
    decode_client_message, ClientMessage, ErrorCode, IceCandidate, PublishedMid, ServerMessage,
    TrackKind, TrackSource,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::signaling_state::RTCSignalingState;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpHeaderExtensionCapability, RTPCodecType};
use webrtc::rtp_transceiver::rtp_receiver::RTCRtpReceiver;
use webrtc::sdp::extmap::AUDIO_LEVEL_URI;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_remote::TrackRemote;

const ECHO_PUBLISHER: &str = "echo-publisher";
const WAIT: Duration = Duration::from_secs(15);

/// What the fake server observed, for the test to check.
#[derive(Default)]
struct Observed {
    offered_tracks: Vec<PublishedMid>,
    grants: usize,
    client_candidates: usize,
    audio_levels: HashSet<u8>,
}

async fn start_fake_server() -> (String, Arc<Mutex<Observed>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let observed = Arc::new(Mutex::new(Observed::default()));
    let shared = Arc::clone(&observed);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, Arc::clone(&shared)));
        }
    });
    (url, observed)
}

async fn server_pc() -> Arc<RTCPeerConnection> {
    let mut media = MediaEngine::default();
    media.register_default_codecs().unwrap();
    for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
        media
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: AUDIO_LEVEL_URI.to_owned(),
                },
                kind,
                None,
            )
            .unwrap();
    }
    let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
    let mut settings = SettingEngine::default();
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    Arc::new(api.new_peer_connection(Default::default()).await.unwrap())
}

fn send(out: &mpsc::UnboundedSender<Message>, message: &ServerMessage) {
    let _ = out.send(Message::text(message.to_json()));
}

async fn serve(stream: TcpStream, observed: Arc<Mutex<Observed>>) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });

    let pc = server_pc().await;
    let candidates_out = out.clone();
    pc.on_ice_candidate(Box::new(move |candidate| {
        let candidate = candidate.map(|c| {
            let init = c.to_json().unwrap();
            IceCandidate {
                candidate: init.candidate,
                sdp_mid: None,
                sdp_mline_index: Some(0),
                username_fragment: None,
            }
        });
        send(&candidates_out, &ServerMessage::Candidate { candidate });
        Box::pin(async {})
    }));
    let (tracks_tx, mut incoming_tracks) =
        mpsc::unbounded_channel::<(Arc<TrackRemote>, Arc<RTCRtpReceiver>)>();
    pc.on_track(Box::new(move |track, receiver, _| {
        let _ = tracks_tx.send((track, receiver));
        Box::pin(async {})
    }));

    let mut early_candidates = Vec::new();
    let mut waiting_tracks: Vec<Arc<TrackLocalStaticRTP>> = Vec::new();
    loop {
        tokio::select! {
            frame = source.next() => {
                let Some(Ok(Message::Text(text))) = frame else { break };
                let message = match decode_client_message(&text) {
                    Ok(message) => message,
                    Err(e) => {
                        send(&out, &ServerMessage::error(e.code(), e.message));
                        continue;
                    }
                };
                match message {
                    ClientMessage::Join { room, name, .. } => {
                        if name == "refuse-me" {
                            send(&out, &ServerMessage::error(ErrorCode::Unauthorized, "no"));
                        } else {
                            send(&out, &ServerMessage::Joined {
                                participant_id: format!("id-{name}"),
                                room,
                                participants: vec![],
                                ice_servers: vec![],
                            });
                        }
                    }
                    ClientMessage::NegotiateRequest => {
                        observed.lock().grants += 1;
                        send(&out, &ServerMessage::NegotiateGrant);
                    }
                    ClientMessage::Offer { sdp, tracks } => {
                        observed.lock().offered_tracks.extend(tracks);
                        pc.set_remote_description(RTCSessionDescription::offer(sdp).unwrap()).await.unwrap();
                        for c in early_candidates.drain(..) {
                            pc.add_ice_candidate(c).await.unwrap();
                        }
                        let answer = pc.create_answer(None).await.unwrap();
                        pc.set_local_description(answer).await.unwrap();
                        let sdp = pc.local_description().await.unwrap().sdp;
                        send(&out, &ServerMessage::Answer { sdp });
                    }
                    ClientMessage::Answer { sdp } => {
                        pc.set_remote_description(RTCSessionDescription::answer(sdp).unwrap()).await.unwrap();
                        offer_waiting_tracks(&pc, &mut waiting_tracks, &out).await;
                    }
                    ClientMessage::Candidate { candidate: Some(c) } if !c.is_end_of_candidates() => {
                        observed.lock().client_candidates += 1;
                        let init = RTCIceCandidateInit {
                            candidate: c.candidate,
                            sdp_mid: c.sdp_mid,
                            sdp_mline_index: c.sdp_mline_index,
                            username_fragment: c.username_fragment,
                        };
                        if pc.remote_description().await.is_some() {
                            pc.add_ice_candidate(init).await.unwrap();
                        } else {
                            early_candidates.push(init);
                        }
                    }
                    ClientMessage::Leave => {
                        let _ = out.send(Message::Close(Some(CloseFrame {
                            code: CloseCode::Normal,
                            reason: "bye".into(),
                        })));
                    }
                    _ => {}
                }
            }
            Some((remote, receiver)) = incoming_tracks.recv() => {
                let kind = if remote.kind() == RTPCodecType::Audio { "audio" } else { "video" };
                let audio_level_id = receiver
                    .get_parameters()
                    .await
                    .header_extensions
                    .iter()
                    .find(|e| e.uri == AUDIO_LEVEL_URI)
                    .map(|e| e.id as u8);
                let levels = Arc::clone(&observed);
                let local = Arc::new(TrackLocalStaticRTP::new(
                    remote.codec().capability,
                    format!("echo-{kind}"),
                    ECHO_PUBLISHER.to_owned(),
                ));
                let forward_to = Arc::clone(&local);
                tokio::spawn(async move {
                    while let Ok((packet, _)) = remote.read_rtp().await {
                        if let Some(level) = audio_level_id.and_then(|id| packet.header.get_extension(id)) {
                            levels.lock().audio_levels.insert(level[0] & 0x7f);
                        }
                        if forward_to.write_rtp(&packet).await.is_err() {
                            break;
                        }
                    }
                });
                waiting_tracks.push(local);
                offer_waiting_tracks(&pc, &mut waiting_tracks, &out).await;
            }
        }
    }
    let _ = pc.close().await;
}

/// Offers the tracks waiting to be echoed, one offer at a time.
async fn offer_waiting_tracks(
    pc: &RTCPeerConnection,
    waiting: &mut Vec<Arc<TrackLocalStaticRTP>>,
    out: &mpsc::UnboundedSender<Message>,
) {
    if waiting.is_empty() || pc.signaling_state() != RTCSignalingState::Stable {
        return;
    }
    for track in waiting.drain(..) {
        pc.add_track(track).await.unwrap();
    }
    let offer = pc.create_offer(None).await.unwrap();
    pc.set_local_description(offer).await.unwrap();
    let sdp = pc.local_description().await.unwrap().sdp;
    send(out, &ServerMessage::Offer { sdp });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_probe() {
    let (url, _) = start_fake_server().await;
    let n: usize = std::env::var("BOTS").unwrap().parse().unwrap();
    let mut bots = vec![];
    for i in 0..n {
        bots.push(
            Bot::join(BotConfig::new(&url, "room", format!("b{i}")))
                .await
                .unwrap(),
        );
    }
    let t0 = std::time::Instant::now();
    let r0 = std::fs::read_to_string("/proc/self/stat").unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let r1 = std::fs::read_to_string("/proc/self/stat").unwrap();
    let cpu = |s: &str| {
        let f: Vec<&str> = s.split_whitespace().collect();
        f[13].parse::<u64>().unwrap() + f[14].parse::<u64>().unwrap()
    };
    eprintln!(
        "bots={n} cpu%={:.1}",
        (cpu(&r1) - cpu(&r0)) as f64 / t0.elapsed().as_secs_f64()
    );
    for b in bots {
        let t = b.remote_tracks();
        assert!(
            t.iter().all(|t| t.packets > 100 && t.seq_gaps == 0),
            "{t:?}"
        );
        b.leave().await.unwrap();
    }
}
