//! One WHIP or WHEP session: a participant whose signaling is HTTP requests instead of a
//! WebSocket.
//!
//! It runs the same session as a WebSocket client ([`run_session`]), publish-only for WHIP
//! and viewing for WHEP ([`Mode`]): the POST becomes a `join` and an `offer` on the
//! session's input, and what the session says back (`joined`,
//! `answer`, its candidates, an `error`) comes out of its outbox. Admission, tokens, room
//! rules, publishing, moderation and leaving are therefore the session's own; this file
//! only translates. After the answer, a pump drains the outbox (an encoder or player reads
//! nothing)
//! until the session ends (DELETE, a kick, the room ending, ICE failing), and then the
//! resource is gone.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use roomcast_protocol::{ClientMessage, ErrorCode, IceCandidate, IceServer, Role, ServerMessage};
use roomcast_sfu::signaling::outbox::{Outbox, OutboxReceiver};
use roomcast_sfu::{run_session, Client, Inbound, Mode, Sessions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::sdp;

/// Sessions of one endpoint open at once; beyond it a POST gets 503.
pub const MAX_RESOURCES: usize = 1024;
/// How long the session has to answer each step of a POST (join, offer).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the answer waits for the server's candidates after the answer itself.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);

/// A refused request: the session's `error` (or the WHIP layer's own reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: ErrorCode,
    pub message: String,
}

fn refused(code: ErrorCode, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

/// A session's handle, as PATCH and DELETE find it.
pub struct Resource {
    pub room: String,
    pub participant_id: String,
    /// The ICE session: its entity tag, the client's credentials and the offer it is part of.
    ice: Mutex<IceSession>,
    /// One ICE restart at a time.
    restarting: tokio::sync::Mutex<()>,
    /// While a restart waits for the session's answer: where the pump copies what the
    /// session says.
    listener: Mutex<Option<mpsc::Sender<ServerMessage>>>,
    inbound: mpsc::Sender<Inbound>,
}

/// The current ICE session of a resource.
struct IceSession {
    /// Its entity tag (RFC 9725 §4.3.1), new with each ICE restart.
    etag: String,
    /// The client's ICE username fragment and password, to tell a trickle from a restart.
    remote_ufrag: Option<String>,
    remote_pwd: Option<String>,
    /// The client's offer as last applied: an ICE restart applies it again with new
    /// credentials.
    offer: String,
}

/// What a PATCH's ICE credentials mean for the current ICE session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// Candidates of the current ICE session.
    Trickle,
    /// New credentials: an ICE restart.
    Restart,
}

/// A successful ICE restart: the `application/trickle-ice-sdpfrag` with the server's new
/// credentials and candidates, and the new ICE session's entity tag.
pub struct Restarted {
    pub fragment: String,
    pub etag: String,
}

impl Resource {
    /// Hands the session a client message, as a WebSocket frame would.
    pub async fn tell(&self, msg: &ClientMessage) -> bool {
        let text = serde_json::to_string(msg).unwrap_or_default();
        self.inbound.send(Inbound::Text(text)).await.is_ok()
    }

    /// Hands what the session said to a waiting ICE restart, if there is one. A restart
    /// that does not keep up loses the excess (it then times out).
    fn listen(&self, msg: ServerMessage) {
        if let Some(listener) = self.listener.lock().as_ref() {
            let _ = listener.try_send(msg);
        }
    }

    /// The entity tag of the current ICE session.
    pub fn etag(&self) -> String {
        self.ice.lock().etag.clone()
    }

    /// A PATCH with these credentials is a restart when they differ from the current ones.
    pub fn patch_kind(&self, ufrag: Option<&str>, pwd: Option<&str>) -> PatchKind {
        let ice = self.ice.lock();
        let differs = |new: Option<&str>, old: &Option<String>| match (new, old) {
            (Some(new), Some(old)) => new != old,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if differs(ufrag, &ice.remote_ufrag) || differs(pwd, &ice.remote_pwd) {
            PatchKind::Restart
        } else {
            PatchKind::Trickle
        }
    }

    /// Restarts ICE (RFC 9725 §4.4.1.2) the way a WebSocket client does: the stored offer
    /// with the client's new `ufrag`/`pwd` (and no old candidates) goes to the session as a
    /// new offer, and the session's answer carries the server's new credentials. Then the
    /// client's `candidates` are added. A refused restart leaves the resource's ICE session
    /// (its ETag and credentials) as it was.
    pub async fn restart_ice(
        &self,
        ufrag: &str,
        pwd: &str,
        candidates: Vec<IceCandidate>,
    ) -> Result<Restarted, Refused> {
        let _one_at_a_time = self.restarting.lock().await;
        let offer = sdp::restarted_offer(&self.ice.lock().offer, ufrag, pwd);
        let (tx, mut rx) = mpsc::channel(LISTENER_CAPACITY);
        *self.listener.lock() = Some(tx);
        let answered = self.exchange(&offer, &mut rx).await;
        *self.listener.lock() = None;
        let (answer, gathered) = answered?;
        for candidate in candidates {
            self.tell(&ClientMessage::Candidate {
                candidate: Some(candidate),
            })
            .await;
        }
        let fragment = sdp::restart_fragment(&answer, &gathered)
            .map_err(|why| refused(ErrorCode::InternalError, why))?;
        let etag = random_id();
        let mut ice = self.ice.lock();
        ice.etag = etag.clone();
        ice.remote_ufrag = Some(ufrag.to_owned());
        ice.remote_pwd = Some(pwd.to_owned());
        ice.offer = offer;
        Ok(Restarted { fragment, etag })
    }

    /// Sends the restart offer and collects the answer and the server's candidates, which
    /// may come before the answer (the restart gathers as the offer is applied) or after.
    async fn exchange(
        &self,
        offer: &str,
        rx: &mut mpsc::Receiver<ServerMessage>,
    ) -> Result<(String, Vec<String>), Refused> {
        let msg = ClientMessage::Offer {
            sdp: offer.to_owned(),
            tracks: Vec::new(),
        };
        if !self.tell(&msg).await {
            return Err(refused(ErrorCode::InternalError, "the session ended"));
        }
        let mut candidates = Vec::new();
        let mut gathered = false;
        let mut answer = None;
        let mut deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        while !(gathered && answer.is_some()) {
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                _ = tokio::time::sleep_until(deadline) => None,
            };
            let Some(msg) = msg else {
                break;
            };
            match msg {
                ServerMessage::Answer { sdp } => {
                    answer = Some(sdp);
                    deadline = deadline.min(tokio::time::Instant::now() + GATHER_TIMEOUT);
                }
                ServerMessage::Candidate { candidate: None } => gathered = true,
                ServerMessage::Candidate { candidate: Some(c) } if c.is_end_of_candidates() => {
                    gathered = true
                }
                ServerMessage::Candidate { candidate: Some(c) } => candidates.push(c.candidate),
                ServerMessage::Error { code, message } if answer.is_none() => {
                    return Err(refused(code, message))
                }
                _ => {}
            }
        }
        let answer = answer.ok_or_else(|| {
            refused(
                ErrorCode::InternalError,
                "the session did not answer the ICE restart in time",
            )
        })?;
        Ok((answer, candidates))
    }
}

/// Messages a restart may wait on at once (an answer and its candidates).
const LISTENER_CAPACITY: usize = 64;

/// The sessions of one endpoint (WHIP or WHEP), by resource id.
#[derive(Default)]
pub struct Resources {
    by_id: Mutex<HashMap<String, Arc<Resource>>>,
}

impl Resources {
    pub fn get(&self, id: &str) -> Option<Arc<Resource>> {
        self.by_id.lock().get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Resource>> {
        self.by_id.lock().remove(id)
    }

    pub fn len(&self) -> usize {
        self.by_id.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a POST asks for.
pub struct Request {
    pub room: String,
    pub name: String,
    pub token: Option<String>,
    pub offer: String,
    /// [`Mode::PublishOnly`] (WHIP) or [`Mode::View`] (WHEP).
    pub mode: Mode,
}

/// The protocol a session's mode is reached by, for logs and messages.
pub fn protocol(mode: &Mode) -> &'static str {
    match mode {
        Mode::View { .. } => "WHEP",
        _ => "WHIP",
    }
}

/// A session that answered.
pub struct Started {
    pub id: String,
    pub answer: String,
    pub etag: String,
    pub ice_servers: Vec<IceServer>,
}

/// Joins the room and answers the offer; on success the session runs on until it ends.
pub async fn start(
    sessions: &Arc<Sessions>,
    resources: &Arc<Resources>,
    client: Client,
    request: Request,
) -> Result<Started, Refused> {
    let protocol = protocol(&request.mode);
    if resources.len() >= MAX_RESOURCES {
        return Err(refused(
            ErrorCode::ServerShutdown,
            format!("the server holds its maximum of {protocol} sessions; try again later"),
        ));
    }
    let (outbox, mut out) = Outbox::new();
    let (in_tx, in_rx) = mpsc::channel(16);
    let task = tokio::spawn(run_session(
        Arc::clone(sessions),
        Client {
            mode: request.mode.clone(),
            ..client
        },
        in_rx,
        outbox,
    ));
    let mut steps = Steps {
        out: &mut out,
        inbound: &in_tx,
    };
    let begun = steps.begin(request).await;
    let (joined, answer) = match begun {
        Ok(ok) => ok,
        Err(e) => {
            // The session leaves (if it joined) and ends with its input.
            let _ = in_tx.try_send(Inbound::Text(leave()));
            drop(in_tx);
            return Err(e);
        }
    };
    let id = random_id();
    let etag = random_id();
    let resource = Arc::new(Resource {
        room: joined.room.clone(),
        participant_id: joined.participant_id.clone(),
        ice: Mutex::new(IceSession {
            etag: etag.clone(),
            remote_ufrag: answer.remote_ufrag,
            remote_pwd: answer.remote_pwd,
            offer: answer.offer,
        }),
        restarting: tokio::sync::Mutex::new(()),
        listener: Mutex::new(None),
        inbound: in_tx,
    });
    resources
        .by_id
        .lock()
        .insert(id.clone(), Arc::clone(&resource));
    tracing::info!(room = %joined.room, participant = %joined.participant_id, protocol, "session started");
    tokio::spawn(pump(
        Arc::clone(sessions),
        Arc::clone(resources),
        resource,
        id.clone(),
        out,
        task,
        protocol,
    ));
    Ok(Started {
        id,
        answer: answer.sdp,
        etag,
        ice_servers: joined.ice_servers,
    })
}

struct Joined {
    room: String,
    participant_id: String,
    ice_servers: Vec<IceServer>,
}

struct Answered {
    sdp: String,
    remote_ufrag: Option<String>,
    remote_pwd: Option<String>,
    /// The client's offer, kept for ICE restarts.
    offer: String,
}

/// The POST's exchange with the session.
struct Steps<'a> {
    out: &'a mut OutboxReceiver,
    inbound: &'a mpsc::Sender<Inbound>,
}

impl Steps<'_> {
    async fn begin(&mut self, request: Request) -> Result<(Joined, Answered), Refused> {
        let publishes = request.mode == Mode::PublishOnly;
        // On an open server the request names no role: an encoder presents, a player watches.
        let role = match (&request.token, publishes) {
            (Some(_), _) => None,
            (None, true) => Some(Role::Presenter),
            (None, false) => Some(Role::Audience),
        };
        self.tell(&ClientMessage::Join {
            room: request.room,
            name: request.name,
            role,
            token: request.token,
            room_settings: None,
        })
        .await?;
        let joined = self
            .until(|msg| match msg {
                ServerMessage::Joined {
                    participant_id,
                    room,
                    ice_servers,
                    role,
                    ..
                } => Some(Ok((
                    Joined {
                        room,
                        participant_id,
                        ice_servers,
                    },
                    role,
                ))),
                _ => None,
            })
            .await?;
        let (joined, role) = joined;
        if publishes && role == Some(Role::Audience) {
            return Err(refused(
                ErrorCode::Forbidden,
                "the audience role cannot publish; WHIP needs a presenter or host token",
            ));
        }
        let (ufrag, pwd) = sdp::ice_credentials(&request.offer);
        let (remote_ufrag, remote_pwd) = (ufrag.map(str::to_owned), pwd.map(str::to_owned));
        self.tell(&ClientMessage::Offer {
            sdp: request.offer.clone(),
            tracks: Vec::new(),
        })
        .await?;
        let answer = self
            .until(|msg| match msg {
                ServerMessage::Answer { sdp } => Some(Ok(sdp)),
                _ => None,
            })
            .await?;
        let candidates = self.gather().await?;
        Ok((
            joined,
            Answered {
                sdp: sdp::with_candidates(&answer, &candidates),
                remote_ufrag,
                remote_pwd,
                offer: request.offer,
            },
        ))
    }

    async fn tell(&self, msg: &ClientMessage) -> Result<(), Refused> {
        let text = serde_json::to_string(msg).unwrap_or_default();
        self.inbound
            .send(Inbound::Text(text))
            .await
            .map_err(|_| refused(ErrorCode::InternalError, "the session ended"))
    }

    /// The next message `pick` takes; an `error` before it refuses the request.
    async fn until<T>(
        &mut self,
        mut pick: impl FnMut(ServerMessage) -> Option<Result<T, Refused>>,
    ) -> Result<T, Refused> {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let msg = self.next(deadline).await?.ok_or_else(|| {
                refused(
                    ErrorCode::InternalError,
                    "the session did not answer in time",
                )
            })?;
            if let ServerMessage::Error { code, message } = msg {
                return Err(refused(code, message));
            }
            if let Some(result) = pick(msg) {
                return result;
            }
        }
    }

    /// The server's candidates, until gathering completes (or its time is up). An error
    /// meanwhile (publishing refused after the answer: `forbidden`, `limit_exceeded`)
    /// refuses the request.
    async fn gather(&mut self) -> Result<Vec<String>, Refused> {
        let deadline = tokio::time::Instant::now() + GATHER_TIMEOUT;
        let mut candidates = Vec::new();
        while let Some(msg) = self.next(deadline).await? {
            match msg {
                ServerMessage::Candidate { candidate: None } => break,
                ServerMessage::Candidate { candidate: Some(c) } if c.is_end_of_candidates() => {
                    break
                }
                ServerMessage::Candidate { candidate: Some(c) } => candidates.push(c.candidate),
                ServerMessage::Error { code, message } => return Err(refused(code, message)),
                _ => {}
            }
        }
        Ok(candidates)
    }

    /// The session's next message; `None` when `deadline` passed.
    async fn next(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<Option<ServerMessage>, Refused> {
        loop {
            let frame = tokio::select! {
                frame = self.out.recv() => frame,
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
            };
            let Some(frame) = frame else {
                return Err(refused(ErrorCode::InternalError, "the session ended"));
            };
            if let Some(msg) = frame.decode() {
                return Ok(Some(msg));
            }
        }
    }
}

/// Drains what the session says until it ends, then forgets the resource. At shutdown the
/// session is told to leave.
async fn pump(
    sessions: Arc<Sessions>,
    resources: Arc<Resources>,
    resource: Arc<Resource>,
    id: String,
    mut out: OutboxReceiver,
    mut task: JoinHandle<roomcast_sfu::signaling::session::SessionEnd>,
    protocol: &'static str,
) {
    let shutdown = sessions.resume.shutdown_token().clone();
    let mut told_to_leave = false;
    let mut open = true;
    let end = loop {
        tokio::select! {
            end = &mut task => break end.ok(),
            frame = out.recv(), if open => match frame {
                None => open = false,
                Some(frame) => {
                    let msg = frame.decode();
                    if let Some(ServerMessage::Error { code, .. }) = &msg {
                        tracing::info!(resource = %id, code = code.as_str(), protocol, "session told");
                    }
                    if let Some(msg) = msg {
                        resource.listen(msg);
                    }
                }
            },
            _ = shutdown.cancelled(), if !told_to_leave => {
                told_to_leave = true;
                resource.tell(&ClientMessage::Leave).await;
            }
        }
    };
    resources.remove(&id);
    tracing::info!(
        resource = %id,
        participant = %resource.participant_id,
        ?end,
        protocol,
        "session ended"
    );
}

fn leave() -> String {
    serde_json::to_string(&ClientMessage::Leave).unwrap_or_default()
}

/// 24 characters of an unambiguous alphabet: about 120 bits, so a resource's URL cannot be
/// guessed.
fn random_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..24)
        .map(|_| char::from(b"abcdefghijkmnopqrstuvwxyz23456789"[rng.random_range(0..33)]))
        .collect()
}
