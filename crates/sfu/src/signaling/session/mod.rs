//! One client's WebSocket session: `join` (or `resume`), then one task that feeds the
//! session, in order, the client's messages, the connection's events and the room's
//! changes, until it leaves, drops or must be cut off. One task per session means
//! negotiation steps never interleave and need no locks.
//!
//! The session is two halves: [`core`] decides (a plain struct, no I/O, tested without
//! sockets) and [`shell`] does (it owns the PeerConnection and the media objects). This file
//! runs them: the loop that turns what arrives into the core's inputs and the core's outputs
//! into messages and commands, parking when the connection drops, and closing. Who may join
//! is [`admission`]; building a joined session is `join.rs`; taking one over on a new
//! connection is [`resume`].
mod admission;
pub mod core;
mod join;
mod mailbox;
mod resume;
mod shell;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use roomcast_protocol::{decode_client_message, ClientMessage, ErrorCode, ServerMessage};
use tokio::sync::{mpsc, oneshot, Notify};

pub use admission::{Client, JoinGate, Mode};
pub use resume::ResumeRegistry;

#[cfg(feature = "fault-injection")]
pub use self::core::cmd::chat::PANIC_ON_CHAT;
pub use self::core::ParticipantLimits;
use self::core::{Input, Output, PeerEvent, RoomEvent, SessionCore};
use self::shell::Shell;
use crate::room::Order;
use crate::sfu::Sfu;
use crate::signaling::outbox::Outbox;
use resume::Takeover;

/// What every session of the server shares: the SFU, and the sessions that can be resumed.
pub struct Sessions {
    pub sfu: Arc<Sfu>,
    /// Session tokens of joined sessions, for `resume`, and the grace period.
    pub resume: ResumeRegistry,
    /// What each participant may create or send.
    pub limits: ParticipantLimits,
}

impl Sessions {
    pub fn new(sfu: Arc<Sfu>) -> Arc<Sessions> {
        Sessions::with_limits(sfu, ParticipantLimits::default())
    }

    pub fn with_limits(sfu: Arc<Sfu>, limits: ParticipantLimits) -> Arc<Sessions> {
        Arc::new(Sessions {
            sfu,
            resume: ResumeRegistry::default(),
            limits,
        })
    }
}

/// What the transport (the WebSocket) hands the session.
#[derive(Debug)]
pub enum Inbound {
    Text(String),
    /// A frame over the size limit: answered, then the connection closes.
    TooLarge,
}

/// Why a session ended, so the transport can close with the right code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client went away or sent `leave`.
    Normal,
    /// The client must be cut off (frame too large, too slow to read).
    Abuse,
    /// The media connection failed.
    MediaFailed,
}

/// A joined session: its two halves and its links to the room and the resume registry.
/// However it ends (`leave`, a drop past its grace, a kick, a panic), dropping it leaves the
/// room and spends its resume token; its shell frees the media.
struct Session {
    sessions: Arc<Sessions>,
    core: SessionCore,
    shell: Shell,
    /// Woken when the tracks this member may receive changed.
    resubscribe: Arc<Notify>,
    /// Orders from hosts (kick, role change, room end).
    orders: mpsc::UnboundedReceiver<Order>,
    orders_tx: mpsc::UnboundedSender<Order>,
    /// The `session_token` a `resume` names to take this session over.
    token: String,
    takeover: mpsc::Receiver<Takeover>,
    takeover_tx: mpsc::Sender<Takeover>,
}

/// A session on its way from one task to another (see [`resume`]).
pub struct Parked(Box<Session>);

/// How a joined session's run on one connection ended.
enum Exit {
    /// The session is over: it leaves the room.
    End(SessionEnd),
    /// The connection went away without `leave`: the session parks, waiting for `resume`.
    Dropped,
    /// A `resume` on another connection asks for the session.
    TakenOver(oneshot::Sender<Parked>),
}

/// Runs one client's session until it leaves, drops, or must be cut off. A joined session
/// whose connection drops lives on (parked, media flowing) for the resume grace period.
pub async fn run_session(
    sessions: Arc<Sessions>,
    client: Client,
    mut inbound: mpsc::Receiver<Inbound>,
    outbox: Outbox,
) -> SessionEnd {
    let mut session = match until_joined(&sessions, &client, &mut inbound, &outbox).await {
        Ok(session) => session,
        Err(end) => return end,
    };
    loop {
        match session.drive(&mut inbound, &outbox).await {
            Exit::End(end) => {
                session.close().await;
                return end;
            }
            Exit::Dropped => {
                let grace = sessions.resume.grace();
                if grace.is_zero() || sessions.resume.shutdown_token().is_cancelled() {
                    session.close().await;
                } else {
                    session.core.park(Instant::now(), grace);
                    tokio::spawn(park(Arc::clone(&sessions), session));
                }
                return SessionEnd::Normal;
            }
            Exit::TakenOver(reply) => match reply.send(Parked(session)) {
                Ok(()) => return SessionEnd::Normal,
                Err(Parked(back)) => session = back,
            },
        }
    }
}

/// Handles a connection's messages until it joins (or resumes) a session.
async fn until_joined(
    sessions: &Arc<Sessions>,
    client: &Client,
    inbound: &mut mpsc::Receiver<Inbound>,
    outbox: &Outbox,
) -> Result<Box<Session>, SessionEnd> {
    loop {
        tokio::select! {
            _ = outbox.kick.cancelled() => return Err(SessionEnd::Abuse),
            frame = inbound.recv() => match frame {
                None => return Err(SessionEnd::Normal),
                Some(Inbound::TooLarge) => return Err(too_large(outbox)),
                Some(Inbound::Text(text)) => match decode_client_message(&text) {
                    Err(e) => outbox.send(ServerMessage::error(e.code(), e.message)),
                    Ok(ClientMessage::Join { room, name, role, token, room_settings }) => {
                        let asked = Instant::now();
                        let request = admission::JoinRequest { room, name, role, token, room_settings };
                        if let Some(session) = join::join(sessions, client, outbox, request).await {
                            sessions.sfu.metrics.observe_join(asked.elapsed());
                            return Ok(session);
                        }
                    }
                    Ok(ClientMessage::Resume { session_token }) => {
                        if let Some(session) = resume::resume(sessions, outbox, &session_token).await {
                            return Ok(session);
                        }
                    }
                    Ok(ClientMessage::Leave) => return Err(SessionEnd::Normal),
                    Ok(_) => outbox.send(ServerMessage::error(ErrorCode::NotJoined, "send join first")),
                },
            },
        }
    }
}

/// A session whose connection dropped: it stays in the room, its media flowing, until a
/// `resume` takes it or the grace period runs out (then it leaves as if it had sent
/// `leave`). Messages to it meanwhile go nowhere; `resumed` carries the room as it is.
async fn park(sessions: Arc<Sessions>, mut session: Box<Session>) {
    let nowhere = Outbox::new().0;
    let shutdown = sessions.resume.shutdown_token().clone();
    loop {
        let input = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(takeover) = session.takeover.recv() => match takeover.reply.send(Parked(session)) {
                Ok(()) => return,
                Err(Parked(back)) => {
                    session = back;
                    continue;
                }
            },
            input = next_input(&session.core, &mut session.shell, &mut session.orders, &session.resubscribe, &nowhere) => input,
        };
        if session.step(input, &nowhere).await.is_some() {
            break;
        }
    }
    session.close().await;
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn too_large(outbox: &Outbox) -> SessionEnd {
    outbox.send(ServerMessage::error(
        ErrorCode::FrameTooLarge,
        format!(
            "frames are limited to {} bytes",
            roomcast_protocol::MAX_FRAME_BYTES
        ),
    ));
    SessionEnd::Abuse
}

/// Waits for the next input from the connection's events, the room or the clock, and does
/// the periodic layer work meanwhile.
async fn next_input(
    core: &SessionCore,
    shell: &mut Shell,
    orders: &mut mpsc::UnboundedReceiver<Order>,
    resubscribe: &Notify,
    outbox: &Outbox,
) -> Input {
    let egress = shell.egress();
    loop {
        let deadline = core.next_deadline();
        let padding = shell.next_padding();
        tokio::select! {
            Some(order) = orders.recv() => return Input::Room(RoomEvent::Order(order)),
            Some(event) = shell.events.recv() => match event {
                shell::PeerEvent::Track(remote, mid) => shell.on_track(core.route_track(&mid), remote, mid),
                shell::PeerEvent::Candidate(c) => return Input::Peer(PeerEvent::Candidate(c)),
                shell::PeerEvent::State(s) => {
                    shell.on_connection_state(s);
                    return Input::Peer(PeerEvent::State(s));
                }
            },
            _ = resubscribe.notified() => return Input::Room(RoomEvent::Resubscribe),
            _ = shell.layer_tick.tick() => shell.on_layer_tick(core.published(), outbox),
            _ = egress.layer_switched.notified() => shell.on_layer_switched(outbox),
            _ = egress.bandwidth.cut.notified() => shell.allocate(outbox),
            _ = sleep_until_opt(padding) => shell.on_padding_tick(),
            _ = sleep_until_opt(deadline) => return Input::Tick,
        }
    }
}

impl Session {
    /// Runs the session on one connection until it ends, drops or is taken over.
    async fn drive(&mut self, inbound: &mut mpsc::Receiver<Inbound>, outbox: &Outbox) -> Exit {
        // A connection cut off for a broken write (not for abuse) is a drop as well.
        let lost = |outbox: &Outbox| {
            if outbox.is_abusive() {
                Exit::End(SessionEnd::Abuse)
            } else {
                Exit::Dropped
            }
        };
        loop {
            let input = tokio::select! {
                _ = outbox.kick.cancelled() => return lost(outbox),
                frame = inbound.recv() => match frame {
                    None => return lost(outbox),
                    Some(Inbound::TooLarge) => return Exit::End(too_large(outbox)),
                    Some(Inbound::Text(text)) => match decode_client_message(&text) {
                        Err(e) => {
                            outbox.send(ServerMessage::error(e.code(), e.message));
                            continue;
                        }
                        Ok(msg) => Input::Client(msg),
                    },
                },
                Some(takeover) = self.takeover.recv() => {
                    if !takeover.reply.is_closed() {
                        return Exit::TakenOver(takeover.reply);
                    }
                    continue;
                }
                input = next_input(&self.core, &mut self.shell, &mut self.orders, &self.resubscribe, outbox) => input,
            };
            if let Some(end) = self.step(input, outbox).await {
                return Exit::End(end);
            }
        }
    }

    /// Feeds `input` to the core and carries out what it answers, feeding each command's
    /// outcome back before going on. Returns how the session ends, if it does.
    async fn step(&mut self, input: Input, outbox: &Outbox) -> Option<SessionEnd> {
        let outputs = self.core.handle(input, Instant::now());
        self.carry_out(outputs, outbox).await
    }

    async fn carry_out(&mut self, outputs: Vec<Output>, outbox: &Outbox) -> Option<SessionEnd> {
        let mut todo = VecDeque::from(outputs);
        while let Some(output) = todo.pop_front() {
            match output {
                Output::Send(msg) => outbox.send(msg),
                Output::End(end) => return Some(end),
                Output::AskToResume => outbox.cut_off_for_unanswered_offer(),
                Output::Do(command) => {
                    let Some(done) = self.shell.apply(command).await else {
                        continue;
                    };
                    let transceivers = self.shell.transceivers().await;
                    let next = self
                        .core
                        .handle(Input::Done(done, transceivers), Instant::now());
                    for output in next.into_iter().rev() {
                        todo.push_front(output);
                    }
                }
            }
        }
        None
    }

    /// Ends the session: it leaves the room and frees everything, and the PeerConnection is
    /// closed before this returns.
    async fn close(mut self: Box<Self>) {
        let pc = self.shell.close_here();
        drop(self);
        if let Err(e) = pc.close().await {
            tracing::debug!(error = %e, "closing the connection");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.sessions.resume.remove(&self.token);
        self.sessions.sfu.leave(self.core.room(), self.core.id());
        for track in self.core.published() {
            track.close();
        }
        tracing::info!(room = %self.core.room().name, participant = %self.core.id(), "left");
    }
}
