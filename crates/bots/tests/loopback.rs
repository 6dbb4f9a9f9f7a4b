//! Bots against a minimal fake server on loopback, until the real one exists: the fake speaks
//! the contract's join, negotiation lock, trickle ICE, server offers and leave, and echoes
//! every track a bot publishes back to it under the msid `echo-publisher echo-<kind>`.
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use roomcast_bots::{
    Bot, BotConfig, BotError, LayerStats, PublishedTrackStats, RemoteTrackStats, VideoCodec,
};
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
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpHeaderExtensionCapability, RTPCodecType};
use webrtc::rtp_transceiver::rtp_receiver::RTCRtpReceiver;
use webrtc::sdp::extmap::{AUDIO_LEVEL_URI, SDES_MID_URI, SDES_RTP_STREAM_ID_URI};
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_remote::TrackRemote;

const ECHO_PUBLISHER: &str = "echo-publisher";
const WAIT: Duration = Duration::from_secs(15);

/// What the fake server observed, for the test to check, and how to reach its latest client.
#[derive(Default)]
struct Observed {
    offered_tracks: Vec<PublishedMid>,
    offer_sdps: Vec<String>,
    grants: usize,
    client_candidates: usize,
    audio_levels: HashSet<u8>,
    /// SSRC of each simulcast layer received, by rid.
    layer_ssrcs: HashMap<String, u32>,
    /// Packets received per rid (`""` for tracks without one).
    packets_by_rid: HashMap<String, u64>,
    client: Option<Client>,
}

/// Weak, so that the connection still ends when its handler does.
#[derive(Clone)]
struct Client {
    out: mpsc::WeakUnboundedSender<Message>,
    pc: std::sync::Weak<RTCPeerConnection>,
}

impl Client {
    fn pc(&self) -> Arc<RTCPeerConnection> {
        self.pc.upgrade().expect("the client is connected")
    }

    fn send_text(&self, text: String) {
        self.out
            .upgrade()
            .expect("the client is connected")
            .send(Message::text(text))
            .unwrap();
    }
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
        for uri in [AUDIO_LEVEL_URI, SDES_MID_URI, SDES_RTP_STREAM_ID_URI] {
            media
                .register_header_extension(
                    RTCRtpHeaderExtensionCapability {
                        uri: uri.to_owned(),
                    },
                    kind,
                    None,
                )
                .unwrap();
        }
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
    observed.lock().client = Some(Client {
        out: out.downgrade(),
        pc: Arc::downgrade(&pc),
    });
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
                                role: None,
                                room_settings: None,
                                session_token: None,
                            });
                        }
                    }
                    ClientMessage::NegotiateRequest => {
                        observed.lock().grants += 1;
                        send(&out, &ServerMessage::NegotiateGrant);
                    }
                    ClientMessage::Offer { sdp, tracks } => {
                        observed.lock().offered_tracks.extend(tracks);
                        observed.lock().offer_sdps.push(sdp.clone());
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
                let rid = remote.rid().to_owned();
                if !rid.is_empty() {
                    observed.lock().layer_ssrcs.insert(rid.clone(), remote.ssrc());
                }
                let audio_level_id = receiver
                    .get_parameters()
                    .await
                    .header_extensions
                    .iter()
                    .find(|e| e.uri == AUDIO_LEVEL_URI)
                    .map(|e| e.id as u8);
                let levels = Arc::clone(&observed);
                // Each simulcast layer comes back as a track of its own.
                let echo_id = if rid.is_empty() {
                    format!("echo-{kind}")
                } else {
                    format!("echo-{kind}-{rid}")
                };
                let local = Arc::new(TrackLocalStaticRTP::new(
                    remote.codec().capability,
                    echo_id,
                    ECHO_PUBLISHER.to_owned(),
                ));
                let forward_to = Arc::clone(&local);
                tokio::spawn(async move {
                    while let Ok((packet, _)) = remote.read_rtp().await {
                        *levels.lock().packets_by_rid.entry(rid.clone()).or_default() += 1;
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
async fn publishes_receives_its_echo_and_leaves() {
    let (url, observed) = start_fake_server().await;
    let bot = Bot::join(BotConfig::new(&url, "room", "alice"))
        .await
        .unwrap();
    assert_eq!(bot.participant_id(), "id-alice");

    let tracks = bot
        .wait_for_media(
            |tracks| {
                let video = tracks
                    .iter()
                    .find(|t| t.kind == TrackKind::Video && t.keyframes >= 1);
                let audio = tracks
                    .iter()
                    .find(|t| t.kind == TrackKind::Audio && t.packets >= 50);
                video.is_some() && audio.is_some()
            },
            WAIT,
        )
        .await
        .unwrap();
    for track in &tracks {
        assert_eq!(track.publisher_id, ECHO_PUBLISHER);
        assert!(!track.ended);
        assert_eq!(track.seq_gaps, 0, "{track:?}");
    }
    let video = tracks.iter().find(|t| t.kind == TrackKind::Video).unwrap();
    assert_eq!(video.track_id, "echo-video");
    assert_eq!(video.codec_mime.to_lowercase(), "video/vp8");
    assert_eq!((video.vp8_width, video.vp8_height), (Some(640), Some(360)));

    let published = bot.published_tracks();
    assert_eq!(published.len(), 2);
    assert!(published.iter().all(|t| t.frames_sent > 0));
    {
        let observed = observed.lock();
        assert_eq!(observed.grants, 1);
        let sources: Vec<TrackSource> = observed.offered_tracks.iter().map(|t| t.source).collect();
        assert_eq!(sources, [TrackSource::Microphone, TrackSource::Camera]);
        assert!(observed.client_candidates > 0, "no trickled candidates");
    }
    assert!(bot
        .messages()
        .iter()
        .any(|m| matches!(m, ServerMessage::Offer { .. })));

    // The loop speaks for 2 s, then is silent for 1 s.
    bot.wait_for_media(
        |tracks| {
            tracks
                .iter()
                .any(|t| t.kind == TrackKind::Audio && t.packets >= 175)
        },
        WAIT,
    )
    .await
    .unwrap();
    let levels = observed.lock().audio_levels.clone();
    assert!(levels.iter().any(|&l| l < 50), "{levels:?}");
    assert!(levels.contains(&127), "{levels:?}");

    bot.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_publishes_and_counts_idr() {
    let (url, _) = start_fake_server().await;
    let config = BotConfig::new(&url, "room", "h264").with_publish(false, Some(VideoCodec::H264));
    let bot = Bot::join(config).await.unwrap();
    let tracks = bot
        .wait_for_media(|tracks| tracks.iter().any(|t| t.keyframes >= 1), WAIT)
        .await
        .unwrap();
    assert_eq!(tracks[0].codec_mime.to_lowercase(), "video/h264");
    bot.drop_connection().await;
}

#[tokio::test]
async fn refused_join_and_bad_input() {
    let (url, _) = start_fake_server().await;
    let refused = Bot::join(BotConfig::new(&url, "room", "refuse-me")).await;
    assert!(
        matches!(
            refused,
            Err(BotError::Refused {
                code: ErrorCode::Unauthorized,
                ..
            })
        ),
        "{:?}",
        refused.err()
    );

    let bot = Bot::join(BotConfig::new(&url, "room", "quiet").with_publish(false, None))
        .await
        .unwrap();
    let cursor = bot.message_cursor();
    bot.send_raw("{nope").await.unwrap();
    let error = bot
        .wait_for_message_after(cursor, |m| matches!(m, ServerMessage::Error { .. }), WAIT)
        .await
        .unwrap();
    assert!(matches!(
        error,
        ServerMessage::Error {
            code: ErrorCode::BadRequest,
            ..
        }
    ));
    bot.leave().await.unwrap();

    let unreachable =
        Bot::join(BotConfig::new("ws://127.0.0.1:1/ws", "room", "x").with_connect_timeout(WAIT))
            .await;
    assert!(matches!(unreachable, Err(BotError::Connect { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_and_drop_connection_end_every_task() {
    let (url, _) = start_fake_server().await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    for round in 0..2 {
        let bot = Bot::join(BotConfig::new(&url, "room", format!("leaky-{round}")))
            .await
            .unwrap();
        bot.wait_for_media(|tracks| tracks.iter().any(|t| t.packets > 10), WAIT)
            .await
            .unwrap();
        if round == 0 {
            bot.leave().await.unwrap();
        } else {
            bot.drop_connection().await;
        }
    }
    // Both sides' webrtc-rs tasks wind down shortly after close.
    let deadline = tokio::time::Instant::now() + WAIT;
    while metrics.num_alive_tasks() > baseline && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), baseline);
}

fn layer<'a>(tracks: &'a [PublishedTrackStats], rid: &str) -> &'a LayerStats {
    tracks[0]
        .layers
        .iter()
        .find(|l| l.rid == rid)
        .unwrap_or_else(|| panic!("no layer {rid}: {tracks:?}"))
}

fn echo<'a>(tracks: &'a [RemoteTrackStats], rid: &str) -> Option<&'a RemoteTrackStats> {
    tracks
        .iter()
        .find(|t| t.track_id == format!("echo-video-{rid}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_layers_have_their_sizes_pause_resume_and_answer_their_own_plis() {
    let (url, observed) = start_fake_server().await;
    let config = BotConfig::new(&url, "room", "sim")
        .with_publish(false, Some(VideoCodec::Vp8))
        .with_simulcast(true);
    let bot = Bot::join(config).await.unwrap();
    let sdp = observed.lock().offer_sdps[0].clone();
    assert!(sdp.contains("a=simulcast:send q;h;f"), "{sdp}");
    for rid in ["q", "h", "f"] {
        assert!(sdp.contains(&format!("a=rid:{rid} send")), "{sdp}");
    }

    // Each layer comes back as its own echo, sized by its loop.
    let sizes = [("q", 320, 180), ("h", 640, 360), ("f", 1280, 720)];
    let tracks = bot
        .wait_for_media(
            |tracks| {
                sizes
                    .iter()
                    .all(|(rid, ..)| echo(tracks, rid).is_some_and(|t| t.frame_width > 0))
            },
            WAIT,
        )
        .await
        .unwrap();
    for (rid, width, height) in sizes {
        let t = echo(&tracks, rid).unwrap();
        assert_eq!((t.frame_width, t.frame_height), (width, height), "{rid}");
        assert_eq!(t.keyframe_sizes[0].width, width);
        assert_eq!(t.seq_gaps, 0, "{t:?}");
    }
    let published = bot.published_tracks();
    let mid = published[0].mid.clone();
    let ssrcs = observed.lock().layer_ssrcs.clone();
    for rid in ["q", "h", "f"] {
        let l = layer(&published, rid);
        assert!(l.active && l.frames_sent > 0 && l.bytes_sent > 0, "{l:?}");
        assert_eq!(Some(&l.ssrc), ssrcs.get(rid), "{rid}");
    }
    assert_eq!(
        published[0].frames_sent,
        published[0]
            .layers
            .iter()
            .map(|l| l.frames_sent)
            .sum::<u64>()
    );

    // A PLI for `h` reaches `h` only.
    let client = observed.lock().client.clone().unwrap();
    client
        .pc()
        .write_rtcp(&[Box::new(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrcs["h"],
        })])
        .await
        .unwrap();
    let after_pli = bot
        .wait_for_published(|t| layer(t, "h").keyframe_requests == 1, WAIT)
        .await
        .unwrap();
    assert_eq!(layer(&after_pli, "q").keyframe_requests, 0);
    assert_eq!(layer(&after_pli, "f").keyframe_requests, 0);

    // publisher_layers: only `q` is needed. The effect is visible with the message.
    let send_layers = |rids: &[&str]| {
        let message = ServerMessage::PublisherLayers {
            track_id: "TR_video".into(),
            mid: mid.clone(),
            rids: rids.iter().map(|r| (*r).to_owned()).collect(),
        };
        client.send_text(message.to_json());
    };
    let cursor = bot.message_cursor();
    send_layers(&["q"]);
    bot.wait_for_message_after(
        cursor,
        |m| matches!(m, ServerMessage::PublisherLayers { .. }),
        WAIT,
    )
    .await
    .unwrap();
    let paused = bot.published_tracks();
    let active: Vec<bool> = paused[0].layers.iter().map(|l| l.active).collect();
    assert_eq!(active, [true, false, false]);
    // A second of `q` later, `h` and `f` sent at most the frame in flight.
    let later = bot
        .wait_for_published(
            |t| layer(t, "q").frames_sent >= layer(&paused, "q").frames_sent + 30,
            WAIT,
        )
        .await
        .unwrap();
    for rid in ["h", "f"] {
        assert!(
            layer(&later, rid).frames_sent <= layer(&paused, rid).frames_sent + 1,
            "{rid} kept sending: {later:?}"
        );
    }
    let f_echo_paused = echo(&bot.remote_tracks(), "f").unwrap().clone();
    let h_packets_paused = observed.lock().packets_by_rid["h"];

    // `f` is needed again: it resumes at once, with a keyframe, its sequence numbers
    // running on without a gap.
    send_layers(&["q", "f"]);
    let resumed = bot
        .wait_for_published(
            |t| layer(t, "f").frames_sent > layer(&later, "f").frames_sent,
            WAIT,
        )
        .await
        .unwrap();
    assert!(layer(&resumed, "f").active);
    assert!(!layer(&resumed, "h").active);
    assert!(layer(&resumed, "f").keyframes_sent > layer(&later, "f").keyframes_sent);
    let tracks = bot
        .wait_for_media(
            |tracks| {
                echo(tracks, "f").is_some_and(|t| {
                    t.keyframes > f_echo_paused.keyframes && t.packets > f_echo_paused.packets + 100
                })
            },
            WAIT,
        )
        .await
        .unwrap();
    let f_echo = echo(&tracks, "f").unwrap();
    assert_eq!(f_echo.seq_gaps, 0, "{f_echo:?}");
    assert_eq!(f_echo.max_seq_jump, 1, "{f_echo:?}");
    assert_eq!((f_echo.frame_width, f_echo.frame_height), (1280, 720));
    assert_eq!(
        observed.lock().packets_by_rid["h"],
        h_packets_paused,
        "h still paused"
    );
    bot.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attenuated_speakers_send_quieter_levels_and_extension_messages_are_logged() {
    let (url, observed) = start_fake_server().await;
    let config = BotConfig::new(&url, "room", "quiet-speaker")
        .with_publish(true, None)
        .with_audio_attenuation_db(40);
    let bot = Bot::join(config).await.unwrap();
    bot.wait_for_media(
        |tracks| {
            tracks
                .iter()
                .any(|t| t.kind == TrackKind::Audio && t.packets >= 175)
        },
        WAIT,
    )
    .await
    .unwrap();
    let levels = observed.lock().audio_levels.clone();
    // The loop's loudest frames are under 40 -dBov; 40 dB quieter they are not.
    assert!(levels.iter().all(|&l| l >= 40), "{levels:?}");
    assert!(levels.contains(&127), "{levels:?}");

    // Extension messages reach the log and change nothing else.
    let client = observed.lock().client.clone().unwrap();
    let cursor = bot.message_cursor();
    for json in [
        r#"{"type":"active_speakers","speakers":[{"participant_id":"a","level":0.5}]}"#,
        r#"{"type":"track_paused","track_id":"TR_1","reason":"bandwidth"}"#,
        r#"{"type":"track_resumed","track_id":"TR_1"}"#,
        r#"{"type":"publisher_layers","track_id":"TR_1","mid":"7","rids":["q"]}"#,
        r#"{"type":"chat","participant_id":"p","name":"n","text":"last","ts":0}"#,
    ] {
        client.send_text(json.to_owned());
    }
    bot.wait_for_message_after(cursor, |m| matches!(m, ServerMessage::Chat { .. }), WAIT)
        .await
        .unwrap();
    let kinds: Vec<&str> = bot
        .messages()
        .iter()
        .filter_map(|m| match m {
            ServerMessage::ActiveSpeakers { .. } => Some("active_speakers"),
            ServerMessage::TrackPaused { .. } => Some("track_paused"),
            ServerMessage::TrackResumed { .. } => Some("track_resumed"),
            ServerMessage::PublisherLayers { .. } => Some("publisher_layers"),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "active_speakers",
            "track_paused",
            "track_resumed",
            "publisher_layers"
        ]
    );
    assert!(bot.closed().is_none());
    assert_eq!(bot.published_tracks()[0].layers, []);
    bot.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_simulcast_layers_are_sized_by_their_sps() {
    let (url, observed) = start_fake_server().await;
    let config = BotConfig::new(&url, "room", "h264-sim")
        .with_publish(false, Some(VideoCodec::H264))
        .with_simulcast(true);
    let bot = Bot::join(config).await.unwrap();
    let sizes = [("q", 320, 180), ("h", 640, 360), ("f", 1280, 720)];
    let tracks = bot
        .wait_for_media(
            |tracks| {
                sizes
                    .iter()
                    .all(|(rid, ..)| echo(tracks, rid).is_some_and(|t| t.frame_width > 0))
            },
            WAIT,
        )
        .await
        .unwrap();
    for (rid, width, height) in sizes {
        let t = echo(&tracks, rid).unwrap();
        assert_eq!(t.codec_mime.to_lowercase(), "video/h264");
        assert_eq!((t.frame_width, t.frame_height), (width, height), "{rid}");
        assert_eq!((t.vp8_width, t.vp8_height), (None, None));
    }
    assert!(observed.lock().offer_sdps[0].contains("a=simulcast:send q;h;f"));
    bot.leave().await.unwrap();
}
