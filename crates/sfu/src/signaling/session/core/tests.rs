//! The session core driven by hand: a fake clock, a fake PeerConnection that answers the
//! core's commands the way webrtc-rs does (new transceivers, directions, mids given by
//! offers, directions negotiated by answers), and a real room whose other members record what
//! they are told. No socket, no task.
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_protocol::{
    ClientMessage, ErrorCode, IceCandidate, Quality, Role, RoomSettings, ServerMessage, TrackKind,
};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection as Direction;

use super::{
    Command, Done, Input, Output, ParticipantLimits, PeerEvent, RoomEvent, SessionCore,
    Transceiver, TransceiverId,
};
use crate::room::testing::{track, Recorder};
use crate::room::{Joining, Order, Room, Welcome};
use crate::signaling::negotiator::{ANSWER_TIMEOUT, CONNECT_HOLD, GRANT_TIMEOUT};
use crate::signaling::sdp_media::media_sections;
use crate::signaling::session::SessionEnd;

/// What webrtc-rs does with the core's commands, as far as the core can see it.
#[derive(Default)]
struct FakePeer {
    transceivers: Vec<Transceiver>,
    /// The transceiver each sent track (by id) is on.
    sending: HashMap<String, TransceiverId>,
    next_mid: usize,
    offers: usize,
    /// Each command, by name, in order.
    log: Vec<&'static str>,
    /// What each viewer's receiver (by transceiver) was last given.
    viewed: HashMap<TransceiverId, Option<String>>,
}

impl FakePeer {
    fn add(
        &mut self,
        mid: Option<String>,
        kind: RTPCodecType,
        direction: Direction,
    ) -> TransceiverId {
        let id = self.transceivers.len() + 1;
        self.transceivers.push(Transceiver {
            id,
            mid,
            kind,
            direction,
            current_direction: Direction::Unspecified,
            sending: false,
        });
        id
    }

    fn get(&mut self, id: TransceiverId) -> &mut Transceiver {
        self.transceivers
            .iter_mut()
            .find(|t| t.id == id)
            .expect("a transceiver the core named")
    }

    /// An answer makes each transceiver's direction its current direction.
    fn negotiated(&mut self) {
        for t in &mut self.transceivers {
            t.current_direction = t.direction;
        }
    }

    fn apply(&mut self, room: &Room, command: Command) -> Option<Done> {
        match command {
            Command::ApplyOffer(sdp) => {
                self.log.push("apply_offer");
                for s in media_sections(&sdp).expect("the test's SDP parses") {
                    if self
                        .transceivers
                        .iter()
                        .any(|t| t.mid.as_deref() == Some(&s.mid))
                    {
                        continue;
                    }
                    let kind = match s.kind {
                        Some(TrackKind::Audio) => RTPCodecType::Audio,
                        Some(TrackKind::Video) => RTPCodecType::Video,
                        None => RTPCodecType::Unspecified,
                    };
                    self.add(Some(s.mid), kind, Direction::Recvonly);
                }
                Some(Done::OfferApplied(Ok(())))
            }
            Command::CreateAnswer => {
                self.log.push("create_answer");
                self.negotiated();
                Some(Done::AnswerCreated(Ok("server answer".into())))
            }
            Command::ApplyAnswer(_) => {
                self.log.push("apply_answer");
                self.negotiated();
                Some(Done::AnswerApplied(Ok(())))
            }
            Command::CreateOffer => {
                self.log.push("create_offer");
                for t in &mut self.transceivers {
                    if t.mid.is_none() {
                        t.mid = Some(format!("s{}", self.next_mid));
                        self.next_mid += 1;
                    }
                }
                self.offers += 1;
                Some(Done::OfferCreated(Ok(format!(
                    "server offer {}",
                    self.offers
                ))))
            }
            Command::SetDirection(id, direction) => {
                self.log.push("set_direction");
                self.get(id).direction = direction;
                None
            }
            Command::Subscribe { remove, add } => {
                self.log.push("subscribe");
                for track_id in remove {
                    let id = self.sending.remove(&track_id).expect("a track it sends");
                    let t = self.get(id);
                    t.sending = false;
                    t.direction = Direction::Inactive;
                }
                let mut added = Vec::new();
                for sub in add {
                    let id = match sub.reuse {
                        Some(id) => id,
                        None => self.add(None, sub.track.rtp_kind(), Direction::Sendonly),
                    };
                    let t = self.get(id);
                    t.direction = Direction::Sendonly;
                    t.sending = true;
                    self.sending.insert(sub.track.info.id.clone(), id);
                    added.push((sub.track.info.id.clone(), id));
                }
                Some(Done::Subscribed(added))
            }
            Command::Publish(new) => {
                self.log.push("publish");
                let built = new
                    .into_iter()
                    .map(|n| {
                        let t = track("me", &room.next_track_id(), &n.mid, n.kind);
                        (n, Some(t))
                    })
                    .collect();
                Some(Done::Published(built))
            }
            Command::Mute { track, muted } => {
                self.log.push("mute");
                Some(Done::Muted {
                    track_id: track.info.id.clone(),
                    muted,
                    changed: true,
                })
            }
            Command::MuteParticipant { participant_id, .. } => {
                self.log.push("mute_participant");
                Some(Done::MutedParticipant {
                    found: room.tracks_of(&participant_id).is_some(),
                    participant_id,
                })
            }
            Command::AddCandidates(_) => {
                self.log.push("add_candidates");
                None
            }
            Command::Receive(_) => {
                self.log.push("receive");
                None
            }
            Command::DropEarlyTracks => {
                self.log.push("drop_early_tracks");
                None
            }
            Command::SetQuality { .. } => {
                self.log.push("set_quality");
                None
            }
            Command::EndRoom => {
                self.log.push("end_room");
                None
            }
            Command::Connect => {
                self.log.push("connect");
                None
            }
            Command::View {
                transceiver, track, ..
            } => {
                self.log.push("view");
                let t = self.get(transceiver);
                t.direction = Direction::Sendonly;
                t.sending = true;
                self.viewed
                    .insert(transceiver, track.map(|t| t.info.id.clone()));
                None
            }
        }
    }
}

/// One session under test in a room with others.
struct Harness {
    room: Arc<Room>,
    core: SessionCore,
    peer: FakePeer,
    now: Instant,
    /// What the core sent its client, in order.
    sent: Vec<ServerMessage>,
    ended: Option<SessionEnd>,
    /// How many times the core asked for the connection to be closed for a resume.
    asked_to_resume: usize,
    me: Arc<Recorder>,
    others: HashMap<String, Arc<Recorder>>,
}

fn joining(id: &str, role: Role) -> Joining {
    Joining {
        id: id.to_owned(),
        name: id.to_owned(),
        role,
        role_given: true,
        room_settings: None,
        hidden: false,
    }
}

impl Harness {
    fn new(role: Role) -> Harness {
        Harness::in_room(Arc::new(Room::new("r".into())), role)
    }

    /// A member whose connection is up from the start, so that offers never wait for it
    /// (the tests that are about that wait use [`Harness::not_connected`]).
    fn in_room(room: Arc<Room>, role: Role) -> Harness {
        let mut h = Harness::not_connected(room, role);
        h.input(Input::Peer(PeerEvent::State(
            RTCPeerConnectionState::Connected,
        )));
        h.take_log();
        h
    }

    fn not_connected(room: Arc<Room>, role: Role) -> Harness {
        let me = Arc::new(Recorder::default());
        room.join(joining("me", role), me.clone(), 100, |_: Welcome| {
            ServerMessage::RoomEnded
        })
        .expect("joins");
        Harness {
            core: SessionCore::new("me".into(), Arc::clone(&room), ParticipantLimits::default()),
            room,
            peer: FakePeer::default(),
            now: Instant::now(),
            sent: Vec::new(),
            ended: None,
            asked_to_resume: 0,
            me,
            others: HashMap::new(),
        }
    }

    /// Another member, publishing an audio and a video track.
    fn publisher(&mut self, id: &str) -> Vec<String> {
        self.member(id, Role::Presenter);
        let tracks = [(TrackKind::Audio, "0"), (TrackKind::Video, "1")].map(|(kind, mid)| {
            let t = track(id, &self.room.next_track_id(), mid, kind);
            self.room.publish(Arc::clone(&t));
            t.info.id.clone()
        });
        tracks.to_vec()
    }

    fn member(&mut self, id: &str, role: Role) {
        let mailbox = Arc::new(Recorder::default());
        self.room
            .join(joining(id, role), mailbox.clone(), 100, |_: Welcome| {
                ServerMessage::RoomEnded
            })
            .expect("joins");
        self.others.insert(id.to_owned(), mailbox);
    }

    fn input(&mut self, input: Input) {
        let outputs = self.core.handle(input, self.now);
        self.carry_out(outputs);
    }

    /// What the shell does: sends, applies commands and feeds their outcome back first.
    fn carry_out(&mut self, outputs: Vec<Output>) {
        let mut todo = VecDeque::from(outputs);
        while let Some(output) = todo.pop_front() {
            match output {
                Output::Send(msg) => self.sent.push(msg),
                Output::End(end) => {
                    self.ended = Some(end);
                    return;
                }
                Output::AskToResume => self.asked_to_resume += 1,
                Output::Do(command) => {
                    let Some(done) = self.peer.apply(&self.room, command) else {
                        continue;
                    };
                    let seen = self.peer.transceivers.clone();
                    let next = self.core.handle(Input::Done(done, seen), self.now);
                    for o in next.into_iter().rev() {
                        todo.push_front(o);
                    }
                }
            }
        }
    }

    /// The PeerConnection reports that it is up.
    fn connected(&mut self) {
        self.input(Input::Peer(PeerEvent::State(
            RTCPeerConnectionState::Connected,
        )));
    }

    fn client(&mut self, msg: ClientMessage) {
        self.input(Input::Client(msg));
    }

    fn resubscribe(&mut self) {
        self.input(Input::Room(RoomEvent::Resubscribe));
    }

    fn answer(&mut self) {
        self.client(ClientMessage::Answer { sdp: "v=0".into() });
    }

    /// Takes what was sent since the last call.
    fn take_sent(&mut self) -> Vec<ServerMessage> {
        std::mem::take(&mut self.sent)
    }

    fn take_log(&mut self) -> Vec<&'static str> {
        std::mem::take(&mut self.peer.log)
    }

    fn offers(sent: &[ServerMessage]) -> Vec<&str> {
        sent.iter()
            .filter_map(|m| match m {
                ServerMessage::Offer { sdp } => Some(sdp.as_str()),
                _ => None,
            })
            .collect()
    }

    fn errors(sent: &[ServerMessage]) -> Vec<(ErrorCode, &str)> {
        sent.iter()
            .filter_map(|m| match m {
                ServerMessage::Error { code, message } => Some((*code, message.as_str())),
                _ => None,
            })
            .collect()
    }

    fn sending(&self) -> Vec<&Transceiver> {
        self.peer
            .transceivers
            .iter()
            .filter(|t| t.sending)
            .collect()
    }
}

/// A client offer publishing audio and video on mids 0 and 1.
const CLIENT_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n";

/// What applying [`CLIENT_OFFER`] does: answered, then its two m-lines published and read.
const ANSWERED_AND_PUBLISHED: [&str; 5] = [
    "apply_offer",
    "create_answer",
    "publish",
    "receive",
    "receive",
];

fn offer(sdp: &str) -> ClientMessage {
    ClientMessage::Offer {
        sdp: sdp.into(),
        tracks: vec![],
    }
}

fn candidate(n: usize) -> ClientMessage {
    ClientMessage::Candidate {
        candidate: Some(IceCandidate {
            candidate: format!("candidate:{n} 1 udp 1 127.0.0.1 {} typ host", 5000 + n),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            username_fragment: None,
        }),
    }
}

#[test]
fn subscribes_to_what_is_published_with_one_offer_at_a_time() {
    let mut h = Harness::new(Role::Presenter);
    h.publisher("ann");
    h.resubscribe();
    assert_eq!(h.take_log(), ["subscribe", "create_offer"]);
    assert_eq!(Harness::offers(&h.take_sent()), ["server offer 1"]);
    assert_eq!(h.sending().len(), 2);

    // Another publisher while the offer is out: nothing until it is answered.
    h.publisher("bob");
    h.resubscribe();
    assert!(h.take_log().is_empty());
    h.answer();
    assert_eq!(h.take_log(), ["apply_answer", "subscribe", "create_offer"]);
    assert_eq!(Harness::offers(&h.take_sent()), ["server offer 2"]);
    assert_eq!(h.sending().len(), 4);

    // Answered, nothing changed: no offer.
    h.answer();
    h.resubscribe();
    assert_eq!(h.take_log(), ["apply_answer"]);
    assert!(h.take_sent().is_empty());
}

#[test]
fn after_the_publishing_offer_the_servers_offer_waits_for_the_connection() {
    let mut h = Harness::not_connected(Arc::new(Room::new("r".into())), Role::Presenter);
    h.publisher("ann");
    h.client(offer(CLIENT_OFFER));
    assert_eq!(
        h.take_log(),
        ANSWERED_AND_PUBLISHED,
        "answered, but not offered to: the client may still be starting its transports"
    );
    assert!(Harness::offers(&h.take_sent()).is_empty());
    h.connected();
    assert_eq!(h.take_log(), ["connect", "subscribe", "create_offer"]);
    assert_eq!(Harness::offers(&h.take_sent()), ["server offer 1"]);
}

#[test]
fn a_subscriber_that_has_not_offered_gets_the_first_offer_at_once_and_the_next_once_connected() {
    let mut h = Harness::not_connected(Arc::new(Room::new("r".into())), Role::Audience);
    h.publisher("ann");
    h.resubscribe();
    assert_eq!(Harness::offers(&h.take_sent()), ["server offer 1"]);
    h.publisher("bob");
    h.answer();
    assert_eq!(h.take_log(), ["subscribe", "create_offer", "apply_answer"]);
    assert!(Harness::offers(&h.take_sent()).is_empty());
    h.connected();
    assert_eq!(Harness::offers(&h.take_sent()), ["server offer 2"]);
}

#[test]
fn a_connection_that_never_comes_up_holds_the_next_offer_only_for_a_while() {
    let mut h = Harness::not_connected(Arc::new(Room::new("r".into())), Role::Audience);
    h.publisher("ann");
    h.resubscribe();
    h.answer();
    h.publisher("bob");
    h.resubscribe();
    assert_eq!(Harness::offers(&h.take_sent()), ["server offer 1"]);
    assert_eq!(h.core.next_deadline(), Some(h.now + CONNECT_HOLD));
    h.now += CONNECT_HOLD;
    h.input(Input::Tick);
    assert_eq!(Harness::offers(&h.take_sent()), ["server offer 2"]);
}

#[test]
fn transceivers_are_reused_once_the_client_accepted_them_inactive() {
    let mut h = Harness::new(Role::Presenter);
    let ann = h.publisher("ann");
    h.resubscribe();
    h.answer();
    h.take_sent();
    for id in &ann {
        h.room.unpublish("ann", id);
    }
    h.resubscribe();
    assert!(h.sending().is_empty());
    assert_eq!(
        Harness::offers(&h.take_sent()).len(),
        1,
        "the removal is offered"
    );

    // Until the client has accepted them inactive, they are not reused.
    h.publisher("bob");
    h.resubscribe();
    assert_eq!(h.peer.transceivers.len(), 2, "the offer is still out");
    h.answer();
    assert_eq!(
        h.peer.transceivers.len(),
        2,
        "bob's tracks went on ann's old transceivers: {:?}",
        h.peer.transceivers
    );
    assert_eq!(h.sending().len(), 2);
    let kinds: Vec<_> = h.sending().iter().map(|t| t.kind).collect();
    assert_eq!(kinds, [RTPCodecType::Audio, RTPCodecType::Video]);
}

#[test]
fn a_transceiver_stopped_in_the_same_pass_is_not_reused() {
    let mut h = Harness::new(Role::Presenter);
    let ann = h.publisher("ann");
    h.resubscribe();
    h.answer();
    h.room.unpublish("ann", &ann[0]);
    h.publisher("bob");
    h.resubscribe();
    assert_eq!(
        h.peer.transceivers.len(),
        4,
        "ann's audio transceiver was sending in the last answer: a new one is needed"
    );
}

#[test]
fn the_servers_offers_wait_while_the_client_holds_the_negotiation_lock() {
    let mut h = Harness::new(Role::Presenter);
    h.client(ClientMessage::NegotiateRequest);
    assert_eq!(h.take_sent(), [ServerMessage::NegotiateGrant]);
    h.publisher("ann");
    h.resubscribe();
    assert!(
        h.take_log().is_empty(),
        "no offer while the client holds the lock"
    );
    assert_eq!(h.core.next_deadline(), Some(h.now + GRANT_TIMEOUT));

    h.now += GRANT_TIMEOUT - Duration::from_millis(1);
    h.input(Input::Tick);
    assert!(h.take_log().is_empty());
    h.now += Duration::from_millis(1);
    h.input(Input::Tick);
    assert_eq!(
        h.take_log(),
        ["subscribe", "create_offer"],
        "the unused grant ran out"
    );
}

#[test]
fn a_lock_asked_for_during_the_servers_offer_comes_with_its_answer() {
    let mut h = Harness::new(Role::Presenter);
    h.publisher("ann");
    h.resubscribe();
    h.take_sent();
    h.take_log();
    h.client(ClientMessage::NegotiateRequest);
    assert!(h.take_sent().is_empty());
    h.publisher("bob");
    h.answer();
    assert_eq!(h.take_sent(), [ServerMessage::NegotiateGrant]);
    assert_eq!(
        h.take_log(),
        ["apply_answer"],
        "no offer of its own while granted"
    );
    // The client offers with the lock: the grant is used up and the server offers again.
    h.client(offer(CLIENT_OFFER));
    let log = h.take_log();
    assert!(log.ends_with(&["subscribe", "create_offer"]), "{log:?}");
}

#[test]
fn a_client_offer_colliding_with_the_servers_is_ignored_with_its_candidates() {
    let mut h = Harness::new(Role::Presenter);
    h.client(offer(CLIENT_OFFER));
    h.take_log();
    h.publisher("ann");
    h.resubscribe();
    assert_eq!(h.take_log(), ["subscribe", "create_offer"]);
    h.client(offer(CLIENT_OFFER));
    h.client(candidate(1));
    assert!(
        h.take_log().is_empty(),
        "ignored: the server is the impolite peer"
    );
    h.answer();
    h.client(candidate(2));
    assert_eq!(h.take_log(), ["apply_answer", "add_candidates"]);
}

#[test]
fn publishing_answers_then_publishes_each_sending_mline() {
    let mut h = Harness::new(Role::Presenter);
    h.member("bob", Role::Presenter);
    h.client(offer(CLIENT_OFFER));
    assert_eq!(h.take_log(), ANSWERED_AND_PUBLISHED);
    let sent = h.take_sent();
    assert_eq!(
        sent[0],
        ServerMessage::Answer {
            sdp: "server answer".into()
        }
    );
    let published: Vec<&str> = sent
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Published { mid, .. } => Some(mid.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(published, ["0", "1"]);
    assert_eq!(h.room.tracks_of("me").map(|t| t.len()), Some(2));
    let bob = h.others["bob"].told();
    assert_eq!(
        bob.iter()
            .filter(|m| matches!(m, ServerMessage::TrackPublished { .. }))
            .count(),
        2
    );
    assert_eq!(
        h.others["bob"].resubscribes(),
        2,
        "bob's session reconciles"
    );

    // The same offer again publishes nothing new; one without the video unpublishes it.
    h.client(offer(CLIENT_OFFER));
    assert_eq!(h.take_log(), ["apply_offer", "create_answer"]);
    let audio_only = CLIENT_OFFER.replace("a=mid:1\r\na=sendonly", "a=mid:1\r\na=inactive");
    h.client(offer(&audio_only));
    assert_eq!(h.room.tracks_of("me").map(|t| t.len()), Some(1));
}

#[test]
fn the_audience_is_answered_inactive_and_told_why() {
    let mut h = Harness::new(Role::Audience);
    h.client(offer(CLIENT_OFFER));
    assert_eq!(
        h.take_log(),
        [
            "apply_offer",
            "set_direction",
            "set_direction",
            "create_answer",
            "drop_early_tracks"
        ]
    );
    assert!(h
        .peer
        .transceivers
        .iter()
        .all(|t| t.direction == Direction::Inactive));
    let sent = h.take_sent();
    let errors = Harness::errors(&sent);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, ErrorCode::Forbidden);
    assert!(errors[0].1.contains("audience"), "{}", errors[0].1);
    assert_eq!(h.room.tracks_of("me").map(|t| t.len()), Some(0));
}

#[test]
fn a_full_room_of_publishers_refuses_one_more() {
    let room = Arc::new(Room::new("r".into()));
    let host = Joining {
        room_settings: Some(RoomSettings {
            max_publishers: Some(1),
            ..RoomSettings::default()
        }),
        ..joining("host", Role::Host)
    };
    room.join(host, Arc::new(Recorder::default()), 100, |_| {
        ServerMessage::RoomEnded
    })
    .unwrap();
    assert!(room.claim_publisher("host"));
    let mut h = Harness::in_room(room, Role::Presenter);
    h.client(offer(CLIENT_OFFER));
    let sent = h.take_sent();
    let errors = Harness::errors(&sent);
    assert!(errors[0].1.contains("maximum of publishers"), "{errors:?}");
}

#[test]
fn demotion_unpublishes_and_offers_the_mlines_back_inactive() {
    let mut h = Harness::new(Role::Presenter);
    h.client(offer(CLIENT_OFFER));
    h.take_log();
    h.input(Input::Room(RoomEvent::Order(Order::RoleChanged(
        Role::Audience,
    ))));
    assert_eq!(h.room.tracks_of("me").map(|t| t.len()), Some(0));
    assert_eq!(
        h.take_log(),
        ["set_direction", "set_direction", "create_offer"],
        "an offer is owed though no subscription changed"
    );
    // A promotion changes nothing by itself: the client offers again when it publishes.
    h.answer();
    h.input(Input::Room(RoomEvent::Order(Order::RoleChanged(
        Role::Presenter,
    ))));
    assert_eq!(h.take_log(), ["apply_answer"]);
}

#[test]
fn a_parked_session_offers_nothing_and_leaves_when_its_grace_runs_out() {
    let mut h = Harness::new(Role::Presenter);
    h.core.park(h.now, Duration::from_secs(20));
    assert_eq!(
        h.core.next_deadline(),
        Some(h.now + Duration::from_secs(20))
    );
    h.publisher("ann");
    h.resubscribe();
    assert!(h.take_log().is_empty(), "nobody to offer to");
    h.now += Duration::from_secs(19);
    h.input(Input::Tick);
    assert_eq!(h.ended, None);
    h.now += Duration::from_secs(1);
    h.input(Input::Tick);
    assert_eq!(h.ended, Some(SessionEnd::Normal));
}

#[test]
fn resuming_offers_what_changed_while_parked() {
    let mut h = Harness::new(Role::Presenter);
    h.core.park(h.now, Duration::from_secs(20));
    h.publisher("ann");
    h.resubscribe();
    let outputs = h.core.resume(h.now);
    h.carry_out(outputs);
    assert_eq!(h.take_log(), ["subscribe", "create_offer"]);
    assert_eq!(
        h.core.next_deadline(),
        Some(h.now + ANSWER_TIMEOUT),
        "the offer's answer is due"
    );
}

#[test]
fn an_offer_left_unanswered_asks_the_client_to_resume_and_the_resume_sends_it_again() {
    let mut h = Harness::new(Role::Presenter);
    h.publisher("ann");
    h.resubscribe();
    assert_eq!(Harness::offers(&h.take_sent()), ["server offer 1"]);
    assert_eq!(h.core.next_deadline(), Some(h.now + ANSWER_TIMEOUT));
    // Bob publishes meanwhile: his tracks wait behind the unanswered offer.
    h.publisher("bob");
    h.resubscribe();
    h.now += ANSWER_TIMEOUT - Duration::from_millis(1);
    h.input(Input::Tick);
    assert_eq!(h.asked_to_resume, 0, "not yet");
    h.now += Duration::from_millis(1);
    h.input(Input::Tick);
    assert_eq!(h.asked_to_resume, 1);
    assert_eq!(h.ended, None, "the session stays, for the resume");
    assert_eq!(h.core.next_deadline(), None, "asked once, then it waits");
    h.input(Input::Tick);
    assert_eq!(h.asked_to_resume, 1);

    // The connection closes, the session parks, the client resumes: the same offer again.
    h.core.park(h.now, Duration::from_secs(20));
    let outputs = h.core.resume(h.now);
    h.carry_out(outputs);
    assert_eq!(Harness::offers(&h.take_sent()), ["server offer 1"]);
    assert_eq!(h.core.next_deadline(), Some(h.now + ANSWER_TIMEOUT));
    // Answered at last: bob's tracks are offered next, and nothing is overdue.
    h.take_log();
    h.answer();
    assert_eq!(h.take_log(), ["apply_answer", "subscribe", "create_offer"]);
    assert_eq!(Harness::offers(&h.take_sent()), ["server offer 2"]);
    h.answer();
    assert_eq!(h.core.next_deadline(), None);
    h.now += ANSWER_TIMEOUT * 2;
    h.input(Input::Tick);
    assert_eq!(h.asked_to_resume, 1);
}

#[test]
fn resuming_sends_the_outstanding_offer_again() {
    let mut h = Harness::new(Role::Presenter);
    h.publisher("ann");
    h.resubscribe();
    h.take_sent();
    h.core.park(h.now, Duration::from_secs(20));
    let outputs = h.core.resume(h.now);
    h.carry_out(outputs);
    assert_eq!(Harness::offers(&h.take_sent()), ["server offer 1"]);
    assert_eq!(
        h.take_log(),
        ["subscribe", "create_offer"],
        "no new offer made"
    );
}

#[test]
fn candidates_wait_for_a_remote_description_up_to_a_bound() {
    let mut h = Harness::new(Role::Presenter);
    for n in 0..100 {
        h.client(candidate(n));
    }
    h.client(ClientMessage::Candidate { candidate: None });
    assert!(h.take_log().is_empty());
    assert_eq!(
        h.core.pending_candidates.len(),
        super::MAX_PENDING_CANDIDATES
    );
    h.client(offer(CLIENT_OFFER));
    assert_eq!(h.take_log()[..2], ["apply_offer", "add_candidates"]);
    assert!(h.core.pending_candidates.is_empty());
}

#[test]
fn an_answer_without_an_offer_is_refused() {
    let mut h = Harness::new(Role::Presenter);
    h.answer();
    assert_eq!(
        Harness::errors(&h.take_sent())[0].0,
        ErrorCode::InvalidState
    );
    assert!(h.take_log().is_empty());
}

#[test]
fn set_quality_before_subscribing_is_kept_for_the_subscription() {
    let mut h = Harness::new(Role::Presenter);
    h.client(ClientMessage::SetQuality {
        track_id: "TR_9".into(),
        quality: Quality::Low,
    });
    assert_eq!(
        Harness::errors(&h.take_sent())[0].0,
        ErrorCode::UnknownTrack
    );
    let ann = h.publisher("ann");
    h.client(ClientMessage::SetQuality {
        track_id: ann[1].clone(),
        quality: Quality::Low,
    });
    assert!(h.take_log().is_empty(), "not received yet: only remembered");
    h.resubscribe();
    h.client(ClientMessage::SetQuality {
        track_id: ann[1].clone(),
        quality: Quality::Off,
    });
    assert_eq!(h.take_log(), ["subscribe", "create_offer", "set_quality"]);
    assert_eq!(h.core.quality[&ann[1]], Quality::Off);
}

#[test]
fn moderation_needs_a_host() {
    let mut h = Harness::new(Role::Presenter);
    h.member("bob", Role::Presenter);
    h.client(ClientMessage::Kick {
        participant_id: "bob".into(),
    });
    assert_eq!(Harness::errors(&h.take_sent())[0].0, ErrorCode::Forbidden);
    assert!(h.others["bob"].orders().is_empty());

    let mut h = Harness::new(Role::Host);
    h.member("bob", Role::Presenter);
    h.client(ClientMessage::Kick {
        participant_id: "nobody".into(),
    });
    assert_eq!(
        Harness::errors(&h.take_sent())[0].0,
        ErrorCode::UnknownParticipant
    );
    h.client(ClientMessage::Kick {
        participant_id: "bob".into(),
    });
    assert_eq!(h.others["bob"].orders(), [Order::Kicked]);
    h.client(ClientMessage::MuteParticipant {
        participant_id: "nobody".into(),
        kind: TrackKind::Audio,
        muted: true,
    });
    assert_eq!(
        Harness::errors(&h.take_sent())[0].0,
        ErrorCode::UnknownParticipant
    );
    h.client(ClientMessage::EndRoom);
    assert_eq!(h.take_log(), ["mute_participant", "end_room"]);
}

#[test]
fn a_kicked_session_is_told_then_ends() {
    let mut h = Harness::new(Role::Presenter);
    h.input(Input::Room(RoomEvent::Order(Order::Kicked)));
    assert_eq!(Harness::errors(&h.take_sent())[0].0, ErrorCode::Kicked);
    assert_eq!(h.ended, Some(SessionEnd::Normal));
    assert!(h.me.told().len() == 1, "only its welcome");
}

/// A client offer sending `n` video m-lines (mids 0..n).
fn offer_of(n: usize) -> String {
    let mut sdp = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    for mid in 0..n {
        sdp.push_str(&format!(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n"
        ));
    }
    sdp
}

#[test]
fn an_offer_over_the_limits_is_refused_and_nothing_is_applied() {
    let mut h = Harness::new(Role::Presenter);
    h.member("bob", Role::Presenter);
    for sdp in [offer_of(500), offer_of(9), "x".repeat(70_000)] {
        h.client(offer(&sdp));
        let sent = h.take_sent();
        assert_eq!(
            Harness::errors(&sent).first().map(|e| e.0),
            Some(ErrorCode::LimitExceeded),
            "{sent:?}"
        );
        assert!(h.take_log().is_empty(), "nothing applied");
    }
    assert_eq!(h.room.tracks_of("me").map(|t| t.len()), Some(0));
    assert!(
        h.others["bob"].told().len() == 1,
        "bob heard of nothing but me joining"
    );

    // Camera, microphone, screen and screen audio fit easily.
    h.client(offer(&offer_of(4)));
    assert_eq!(h.room.tracks_of("me").map(|t| t.len()), Some(4));
}

#[test]
fn remote_candidates_are_capped_and_mdns_ones_never_taken() {
    let mut h = Harness::new(Role::Presenter);
    h.client(offer(CLIENT_OFFER));
    h.take_log();
    h.take_sent();
    h.client(ClientMessage::Candidate {
        candidate: Some(IceCandidate {
            candidate: "candidate:1 1 udp 2122260223 0c4c3f0e-6f54-4d1b.local 54321 typ host"
                .into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            username_fragment: None,
        }),
    });
    assert!(h.take_log().is_empty(), "an mDNS name is not resolved");
    let max = ParticipantLimits::default().max_candidates;
    for n in 0..max + 100 {
        h.client(candidate(n));
    }
    assert_eq!(h.take_log().len(), max);
    let sent = h.take_sent();
    assert_eq!(Harness::errors(&sent).len(), 1, "told once: {sent:?}");
    assert_eq!(Harness::errors(&sent)[0].0, ErrorCode::LimitExceeded);
}

fn chat(text: &str) -> ClientMessage {
    ClientMessage::Chat { text: text.into() }
}

#[test]
fn a_sender_chats_within_its_rate() {
    let mut h = Harness::new(Role::Presenter);
    h.member("bob", Role::Presenter);
    let rate = ParticipantLimits::default().chat;
    for i in 0..rate.burst as usize {
        h.client(chat(&format!("line {i}")));
    }
    assert!(h.take_sent().is_empty(), "the burst passes");
    h.client(chat("one too many"));
    assert_eq!(
        Harness::errors(&h.take_sent())[0].0,
        ErrorCode::LimitExceeded
    );
    h.now += Duration::from_secs_f64(1.0 / rate.per_second);
    h.client(chat("later"));
    assert!(h.take_sent().is_empty());
    let heard = h.others["bob"]
        .told()
        .iter()
        .filter(|m| matches!(m, ServerMessage::Chat { .. }))
        .count();
    assert_eq!(heard, rate.burst as usize + 1);
}

#[test]
fn a_publish_only_session_publishes_but_is_never_subscribed_nor_offered() {
    let mut h = Harness::new(Role::Presenter);
    h.core.publish_only();
    h.publisher("ann");
    h.resubscribe();
    assert!(h.take_log().is_empty(), "nothing to subscribe, no offer");
    h.client(offer(CLIENT_OFFER));
    let log = h.take_log();
    assert_eq!(&log[..3], ["apply_offer", "create_answer", "publish"]);
    assert!(
        !log.iter()
            .any(|c| *c == "subscribe" || *c == "create_offer"),
        "{log:?}"
    );
    assert_eq!(h.room.tracks_of("me").map(|t| t.len()), Some(2));
    h.publisher("bob");
    h.resubscribe();
    h.input(Input::Tick);
    assert!(h.take_log().is_empty());
    assert!(Harness::offers(&h.take_sent()).is_empty());
}

const VIEWER_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n";

impl Harness {
    /// What the viewer's audio and video receivers (mids 0 and 1) were last given.
    fn viewed(&self) -> (Option<String>, Option<String>) {
        let on = |mid: &str| {
            let t = self
                .peer
                .transceivers
                .iter()
                .find(|t| t.mid.as_deref() == Some(mid))
                .expect("the offer's m-line");
            self.peer.viewed.get(&t.id).cloned().flatten()
        };
        (on("0"), on("1"))
    }

    fn share_screen(&mut self, id: &str) -> String {
        let t = crate::room::testing::track(id, &self.room.next_track_id(), "2", TrackKind::Video);
        let mut info = t.info.clone();
        info.source = roomcast_protocol::TrackSource::Screen;
        let screen = Arc::new(crate::media::published_track::PublishedTrack::new(
            info,
            id.to_owned(),
            "2".to_owned(),
            Default::default(),
            &[],
            std::sync::Weak::new(),
        ));
        self.room.publish(Arc::clone(&screen));
        screen.info.id.clone()
    }
}

#[test]
fn a_viewer_is_answered_on_its_own_receivers_and_follows_the_presenter_without_offers() {
    let mut h = Harness::new(Role::Audience);
    h.core.view(None);
    h.resubscribe();
    assert!(h.take_log().is_empty(), "nothing before the offer");
    // Nobody publishes yet: both receivers get a placeholder before the answer.
    h.client(offer(VIEWER_OFFER));
    let log = h.take_log();
    assert_eq!(log, ["apply_offer", "view", "view", "create_answer"]);
    assert_eq!(h.viewed(), (None, None));
    let ann = h.publisher("ann");
    h.resubscribe();
    assert_eq!(h.viewed(), (Some(ann[0].clone()), Some(ann[1].clone())));
    // Bob shares his screen: the video switches in place, and the presenter is heard.
    let bob = h.publisher("bob");
    let screen = h.share_screen("bob");
    h.resubscribe();
    assert_eq!(h.viewed(), (Some(bob[0].clone()), Some(screen.clone())));
    // Ann speaks: heard at the next look at the speakers, the screen stays.
    h.room.set_active_speakers(vec!["ann".into()]);
    let due = h
        .core
        .next_deadline()
        .expect("a look at the speakers is due");
    h.now = due;
    h.input(Input::Tick);
    assert_eq!(h.viewed(), (Some(ann[0].clone()), Some(screen)));
    let log = h.take_log();
    assert!(log.iter().all(|c| *c == "view"), "{log:?}");
    assert!(Harness::offers(&h.take_sent()).is_empty(), "never an offer");
    // Everyone leaves: nothing is shown, still without an offer.
    h.room.leave("ann");
    h.room.leave("bob");
    h.resubscribe();
    assert_eq!(h.viewed(), (None, None));
    assert!(Harness::offers(&h.take_sent()).is_empty());
}

#[test]
fn a_pinned_viewer_sees_only_its_participant() {
    let mut h = Harness::new(Role::Audience);
    h.core.view(Some("bob".into()));
    h.publisher("ann");
    h.client(offer(VIEWER_OFFER));
    assert_eq!(h.viewed(), (None, None));
    let bob = h.publisher("bob");
    h.resubscribe();
    assert_eq!(h.viewed(), (Some(bob[0].clone()), Some(bob[1].clone())));
}
