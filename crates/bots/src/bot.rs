//! A headless participant: joins a room over the signaling WebSocket, publishes its loops on
//! one PeerConnection, receives everyone else's tracks and counts what arrives.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use roomcast_protocol::{ClientMessage, Participant, ServerMessage};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, info_span, Span};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::signaling_state::RTCSignalingState;
use webrtc::peer_connection::RTCPeerConnection;

use crate::layers::LayerDirectory;
use crate::message_log::{CloseInfo, MessageCursor, MessageLog};
use crate::publisher::{self, AudioStyle, OutgoingTrack, PublishedTrackStats, Publisher};
use crate::roster::{ListedTrack, Roster};
use crate::session::{Command, Session};
use crate::signaling::Signaling;
use crate::subscriber_stats::{RemoteTrackStats, Subscriptions};
use crate::transport_cc::ReceivePath;
use crate::{peer_connection, subscriber, BotConfig, BotError};

/// The close code with which the server asks a client to resume at once.
pub const RESUME_NOW: u16 = 4000;

/// Server messages not yet taken by the session; the socket reader waits when it is full.
const INBOX_CAPACITY: usize = 256;
const COMMAND_CAPACITY: usize = 64;

pub struct Bot {
    participant_id: String,
    /// From `joined`, renewed by each `resumed`.
    session_token: parking_lot::Mutex<Option<String>>,
    room: String,
    participants: Vec<Participant>,
    roster: Arc<Roster>,
    timeout: Duration,
    log: Arc<MessageLog>,
    signaling: Arc<Signaling>,
    pc: Arc<RTCPeerConnection>,
    /// The bot's socket and its transport-cc feedback.
    receive: ReceivePath,
    subscriptions: Arc<Subscriptions>,
    publisher: Publisher,
    session: JoinHandle<()>,
    commands: mpsc::Sender<Command>,
    config: BotConfig,
    span: Span,
    shut_down: bool,
    /// When `join` went out, after the WebSocket was open.
    join_sent: std::time::Instant,
}

impl Bot {
    /// Connects, joins, sets up the PeerConnection and, if the config says so, publishes
    /// (returning once the server has answered that offer). Each step is bounded by
    /// `config.connect_timeout`. A server `error` in reply to `join` or to the publish is
    /// [`BotError::Refused`].
    pub async fn join(config: BotConfig) -> Result<Bot, BotError> {
        let outgoing = publisher::prepare(&config).await?;
        let timeout = config.connect_timeout;
        let log = Arc::new(MessageLog::new(config.message_log_capacity));
        let layers = Arc::new(LayerDirectory::default());
        let (inbox_tx, inbox) = mpsc::channel(INBOX_CAPACITY);
        let signaling = Arc::new(
            Signaling::connect(
                &config.url,
                timeout,
                Arc::clone(&log),
                inbox_tx,
                Arc::clone(&layers),
            )
            .await?,
        );

        let cursor = log.cursor();
        let join_sent = std::time::Instant::now();
        signaling
            .send(&ClientMessage::Join {
                room: config.room.clone(),
                name: config.name.clone(),
                role: config.role,
                token: config.token.clone(),
                room_settings: config.room_settings,
            })
            .await?;
        let reply = log
            .wait_for(
                cursor,
                |m| {
                    matches!(
                        m,
                        ServerMessage::Joined { .. } | ServerMessage::Error { .. }
                    )
                },
                timeout,
                "joined",
            )
            .await?;
        let (participant_id, room, participants, ice_servers, session_token) = match reply {
            ServerMessage::Joined {
                participant_id,
                room,
                participants,
                ice_servers,
                session_token,
                ..
            } => (
                participant_id,
                room,
                participants,
                ice_servers,
                session_token,
            ),
            ServerMessage::Error { code, message } => {
                return Err(BotError::Refused { code, message })
            }
            other => return Err(BotError::Protocol(format!("not a join reply: {other:?}"))),
        };
        let span = info_span!("bot", name = %config.name, participant_id = %participant_id);

        let loopback = peer_connection::is_loopback_url(&config.url);
        let ipv6 = peer_connection::is_ipv6_url(&config.url);
        let simulcast = config.simulcast && config.publish_video.is_some();
        let (pc, mut receive) =
            peer_connection::new_peer_connection(&ice_servers, loopback, ipv6, simulcast).await?;
        let subscriptions = Arc::new(Subscriptions::new());
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        install_handlers(
            &pc,
            &subscriptions,
            &commands,
            &receive,
            &span,
            config.track_sink.clone(),
        );
        receive.start(Arc::clone(&pc));
        let roster = Arc::new(Roster::new(&participants));
        let session = Session::spawn(
            Arc::clone(&pc),
            Arc::clone(&signaling),
            Arc::clone(&subscriptions),
            Arc::clone(&roster),
            inbox,
            command_rx,
            config.unanswered_server_offers,
            span.clone(),
        );

        let mut bot = Bot {
            participant_id,
            session_token: parking_lot::Mutex::new(session_token),
            room,
            participants,
            roster,
            timeout,
            log,
            signaling,
            pc,
            receive,
            subscriptions,
            publisher: Publisher::new(
                layers,
                AudioStyle {
                    attenuation_db: config.audio_attenuation_db,
                    dtx: config.dtx,
                },
            ),
            session,
            commands,
            config,
            span,
            shut_down: false,
            join_sent,
        };
        if !outgoing.is_empty() {
            if let Err(e) = bot.publish(outgoing).await {
                bot.shutdown().await;
                return Err(e);
            }
        }
        info!(parent: &bot.span, room = %bot.room, loopback, "joined");
        Ok(bot)
    }

    /// Publishes (more) tracks after joining, e.g. once a host promoted this bot from the
    /// audience: offers them under the negotiation lock and starts sending once answered.
    /// Call at most once per bot that joined without publishing.
    pub async fn publish_media(
        &mut self,
        audio: bool,
        video: Option<crate::VideoCodec>,
    ) -> Result<(), BotError> {
        let config = self.config.clone().with_publish(audio, video);
        let outgoing = publisher::prepare(&config).await?;
        self.publish(outgoing).await
    }

    /// Restarts ICE: offers with new ICE credentials (`iceRestart`) under the negotiation
    /// lock, and returns once the server has answered.
    pub async fn restart_ice(&self) -> Result<(), BotError> {
        let (done, result) = oneshot::channel();
        self.commands
            .send(Command::Publish {
                tracks: Vec::new(),
                ice_restart: true,
                done,
            })
            .await
            .map_err(|_| BotError::Closed)?;
        tokio::time::timeout(self.timeout, result)
            .await
            .map_err(|_| BotError::Timeout("the answer to the ICE restart offer"))?
            .map_err(|_| BotError::Closed)??;
        Ok(())
    }

    /// The token `resume` takes, if the server gave one.
    pub fn session_token(&self) -> Option<String> {
        self.session_token.lock().clone()
    }

    /// Whether the server closed the signaling with 4000, asking the client to resume at
    /// once (it fell behind, or left an offer unanswered; docs/protocol.md).
    pub fn was_told_to_resume(&self) -> bool {
        self.closed().is_some_and(|c| c.code == Some(RESUME_NOW))
    }

    /// Cuts only the signaling WebSocket (no `leave`, no close handshake), as a network
    /// blip would; the PeerConnection and its media carry on. [`Bot::resume`] reconnects.
    pub async fn drop_websocket(&self) {
        self.signaling.drop_connection().await;
    }

    /// Opens a new WebSocket and sends `resume` with the session token: the session goes on
    /// there, on the same PeerConnection. Returns the `resumed` message; an `error` in
    /// reply is [`BotError::Refused`].
    pub async fn resume(&self) -> Result<ServerMessage, BotError> {
        let token = self
            .session_token()
            .ok_or_else(|| BotError::Protocol("the server gave no session token".into()))?;
        self.resume_with(&token).await
    }

    /// [`Bot::resume`] with any token (e.g. a wrong one, for tests).
    pub async fn resume_with(&self, token: &str) -> Result<ServerMessage, BotError> {
        self.signaling.reconnect().await?;
        let cursor = self.log.cursor();
        self.signaling
            .send(&ClientMessage::Resume {
                session_token: token.to_owned(),
            })
            .await?;
        let reply = self
            .log
            .wait_for(
                cursor,
                |m| {
                    matches!(
                        m,
                        ServerMessage::Resumed { .. } | ServerMessage::Error { .. }
                    )
                },
                self.timeout,
                "resumed",
            )
            .await?;
        match &reply {
            ServerMessage::Resumed { session_token, .. } => {
                *self.session_token.lock() = Some(session_token.clone());
                info!(parent: &self.span, "resumed");
                Ok(reply)
            }
            ServerMessage::Error { code, message } => Err(BotError::Refused {
                code: *code,
                message: message.clone(),
            }),
            other => Err(BotError::Protocol(format!("not a resume reply: {other:?}"))),
        }
    }

    async fn publish(&mut self, tracks: Vec<OutgoingTrack>) -> Result<(), BotError> {
        let (done, result) = oneshot::channel();
        self.commands
            .send(Command::Publish {
                tracks,
                ice_restart: false,
                done,
            })
            .await
            .map_err(|_| BotError::Closed)?;
        let negotiated = tokio::time::timeout(self.timeout, result)
            .await
            .map_err(|_| BotError::Timeout("the answer to the publish offer"))?
            .map_err(|_| BotError::Closed)??;
        self.publisher.start(negotiated, &self.span).await;
        Ok(())
    }

    /// When the bot sent `join` (its WebSocket was open by then): where a client's join
    /// time starts, as a browser's `join` does.
    pub fn join_sent(&self) -> std::time::Instant {
        self.join_sent
    }

    pub fn participant_id(&self) -> &str {
        &self.participant_id
    }

    pub fn room(&self) -> &str {
        &self.room
    }

    /// The tracks the room lists now (the others'), as the bot was told.
    pub fn listed_tracks(&self) -> Vec<ListedTrack> {
        self.roster.tracks()
    }

    /// The other participants as `joined` listed them.
    pub fn joined_participants(&self) -> &[Participant] {
        &self.participants
    }

    /// Every server message received so far (the newest `message_log_capacity` of them).
    pub fn messages(&self) -> Vec<ServerMessage> {
        self.log.snapshot()
    }

    /// The position after the latest message, for [`Bot::wait_for_message_after`].
    pub fn message_cursor(&self) -> MessageCursor {
        self.log.cursor()
    }

    /// The first server message arriving from now on that matches `pred`.
    pub async fn wait_for_message(
        &self,
        pred: impl Fn(&ServerMessage) -> bool,
        timeout: Duration,
    ) -> Result<ServerMessage, BotError> {
        self.wait_for_message_after(self.log.cursor(), pred, timeout)
            .await
    }

    /// The first server message after `cursor` that matches `pred`, including any that
    /// arrived before this call: take the cursor, cause the message, then wait, race-free.
    pub async fn wait_for_message_after(
        &self,
        cursor: MessageCursor,
        pred: impl Fn(&ServerMessage) -> bool,
        timeout: Duration,
    ) -> Result<ServerMessage, BotError> {
        self.log
            .wait_for(cursor, pred, timeout, "a matching server message")
            .await
    }

    /// The next server message after `cursor`, which moves past it (every message, in
    /// order); `Closed` once the connection ended and everything before was read.
    pub async fn next_message(
        &self,
        cursor: &mut MessageCursor,
    ) -> Result<ServerMessage, BotError> {
        self.log.next(cursor).await
    }

    /// The bot's PeerConnection (for RTCP of its own, e.g. a relay's keyframe requests).
    pub fn peer_connection(&self) -> Arc<RTCPeerConnection> {
        Arc::clone(&self.pc)
    }

    /// Counters of every track received so far, in the order they first arrived.
    pub fn remote_tracks(&self) -> Vec<RemoteTrackStats> {
        self.subscriptions.snapshot()
    }

    /// Waits until `pred` holds for the received tracks; returns the snapshot it held for.
    pub async fn wait_for_media(
        &self,
        pred: impl Fn(&[RemoteTrackStats]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<RemoteTrackStats>, BotError> {
        self.subscriptions.wait_for(pred, timeout).await
    }

    /// Counters of the tracks this bot publishes.
    pub fn published_tracks(&self) -> Vec<PublishedTrackStats> {
        self.publisher.stats()
    }

    /// Waits until `pred` holds for the published tracks' counters (re-checked whenever a
    /// frame is sent, a keyframe is requested or a layer pauses or resumes); returns the
    /// counters it held for.
    pub async fn wait_for_published(
        &self,
        pred: impl Fn(&[PublishedTrackStats]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<PublishedTrackStats>, BotError> {
        self.publisher.wait_for(pred, timeout).await
    }

    pub fn peer_connection_state(&self) -> RTCPeerConnectionState {
        self.pc.connection_state()
    }

    pub async fn send(&self, message: &ClientMessage) -> Result<(), BotError> {
        self.signaling.send(message).await
    }

    /// Sends any text frame, valid or not.
    pub async fn send_raw(&self, text: impl Into<String>) -> Result<(), BotError> {
        self.signaling.send_text(text.into()).await
    }

    /// Sends RTCP on the bot's connection as it is: feedback a browser would not send, for
    /// tests of how the server takes it (the abuse suite's NACK storm).
    pub async fn send_rtcp(
        &self,
        packets: &[Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>],
    ) -> Result<(), BotError> {
        self.pc.write_rtcp(packets).await?;
        Ok(())
    }

    /// How the signaling connection ended, if it has.
    pub fn closed(&self) -> Option<CloseInfo> {
        self.log.closed()
    }

    /// Waits for the server to close the signaling connection.
    pub async fn wait_for_close(&self, timeout: Duration) -> Result<CloseInfo, BotError> {
        self.log.wait_for_close(timeout).await
    }

    /// Sends `leave`, waits for the server to close the WebSocket with 1000, and releases
    /// everything. Any other ending is a [`BotError::Protocol`] (resources are released anyway).
    pub async fn leave(mut self) -> Result<(), BotError> {
        let closed = match self.signaling.send(&ClientMessage::Leave).await {
            Ok(()) => self.log.wait_for_close(self.timeout).await,
            Err(e) => Err(e),
        };
        self.shutdown().await;
        match closed?.code {
            Some(1000) => Ok(()),
            code => Err(BotError::Protocol(format!(
                "server ended the connection after leave with close code {code:?}, not 1000"
            ))),
        }
    }

    /// Vanishes like a crashed client: the WebSocket is dropped without `leave` or a close
    /// handshake, then the PeerConnection is closed.
    pub async fn drop_connection(mut self) {
        self.signaling.drop_connection().await;
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if std::mem::replace(&mut self.shut_down, true) {
            return;
        }
        self.publisher.stop();
        self.session.abort();
        if let Err(e) = self.pc.close().await {
            debug!(parent: &self.span, error = %e, "closing the peer connection");
        }
        self.subscriptions.abort_readers();
        self.receive.stop();
        self.signaling.drop_connection().await;
        info!(parent: &self.span, "shut down");
    }
}

/// Without `leave` or `drop_connection` (a test that panicked, say), still stop every task
/// and close the PeerConnection in the background.
impl Drop for Bot {
    fn drop(&mut self) {
        if self.shut_down {
            return;
        }
        self.publisher.stop();
        self.session.abort();
        self.subscriptions.abort_readers();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pc = Arc::clone(&self.pc);
            runtime.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

fn install_handlers(
    pc: &RTCPeerConnection,
    subscriptions: &Arc<Subscriptions>,
    commands: &mpsc::Sender<Command>,
    receive: &ReceivePath,
    span: &Span,
    sink: Option<crate::config::TrackSink>,
) {
    let subscriptions = Arc::clone(subscriptions);
    let track_span = span.clone();
    pc.on_track(Box::new(move |track, _, _| {
        match &sink {
            Some(sink) => (sink.0)(track),
            None => subscriber::spawn_reader(Arc::clone(&subscriptions), track, track_span.clone()),
        }
        Box::pin(async {})
    }));

    let renegotiated = receive.renegotiated();
    pc.on_signaling_state_change(Box::new(move |state| {
        if state == RTCSignalingState::Stable {
            renegotiated.store(true, Ordering::Relaxed);
        }
        Box::pin(async {})
    }));

    let commands = commands.clone();
    pc.on_ice_candidate(Box::new(move |candidate| {
        let commands = commands.clone();
        Box::pin(async move {
            // Fails only once the session is gone, when candidates no longer matter.
            let _ = commands.send(Command::LocalCandidate(candidate)).await;
        })
    }));

    let state_span = span.clone();
    pc.on_peer_connection_state_change(Box::new(move |state| {
        debug!(parent: &state_span, %state, "peer connection state");
        Box::pin(async {})
    }));
}
