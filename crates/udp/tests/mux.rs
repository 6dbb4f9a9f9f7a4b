//! The mux on a real socket, with the ICE agent's side played by hand: checks reach the
//! connection their USERNAME names and are answered from the address they were sent to,
//! validated remotes' media reaches the fast path, junk is counted and goes nowhere.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use roomcast_udp::{DropReason, FastPath, Received, UdpMux, Verdict};
use stun::agent::TransactionId;
use stun::attributes::ATTR_USERNAME;
use stun::message::{Message, BINDING_REQUEST, BINDING_SUCCESS};
use stun::textattrs::Username;
use webrtc_ice::udp_mux::UDPMux;
use webrtc_ice::use_candidate::UseCandidateAttr;
use webrtc_util::Conn;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Also ours: all of 127.0.0.0/8 is on the loopback interface.
const SECOND_LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const TIMEOUT: Duration = Duration::from_secs(5);

fn check(ufrag: &str, nominate: bool) -> Message {
    let mut m = Message::new();
    let username = Username::new(ATTR_USERNAME, format!("{ufrag}:client"));
    if nominate {
        m.build(&[
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(username),
            Box::new(UseCandidateAttr::new()),
        ])
    } else {
        m.build(&[
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(username),
        ])
    }
    .expect("builds");
    m
}

fn success(request: &Message) -> Vec<u8> {
    let mut m = Message::new();
    m.build(&[Box::new(request.clone()), Box::new(BINDING_SUCCESS)])
        .expect("builds");
    m.raw
}

fn client(ip: IpAddr) -> UdpSocket {
    let c = UdpSocket::bind((ip, 0)).expect("client binds");
    c.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    c
}

/// What the agent reads next, within the timeout.
async fn agent_reads(conn: &Arc<dyn Conn + Send + Sync>) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 8192];
    let (len, from) = tokio::time::timeout(TIMEOUT, conn.recv_from(&mut buf))
        .await
        .expect("the agent gets a datagram")
        .expect("reads");
    buf.truncate(len);
    (buf, from)
}

fn reply_source(c: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (len, from) = c.recv_from(&mut buf).expect("a reply");
    buf.truncate(len);
    (buf, from)
}

/// Runs one ICE check from `c` to `to` through `conn` and returns where the answer came
/// from.
async fn answered_from(
    c: &UdpSocket,
    conn: &Arc<dyn Conn + Send + Sync>,
    to: SocketAddr,
    nominate: bool,
) -> SocketAddr {
    let request = check("server", nominate);
    c.send_to(&request.raw, to).expect("sends");
    let (data, from) = agent_reads(conn).await;
    assert_eq!(data, request.raw);
    assert_eq!(from, c.local_addr().expect("address"));
    conn.send_to(&success(&request), from)
        .await
        .expect("answers");
    let (answer, source) = reply_source(c);
    assert_eq!(answer, success(&request));
    source
}

#[tokio::test]
async fn checks_are_answered_from_the_address_they_were_sent_to() {
    let mux = UdpMux::bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("binds");
    let port = mux.local_addr().port();
    let conn = Arc::clone(&mux).get_conn("server").await.expect("conn");
    let c = client(LOOPBACK);
    // The peer probes both of our addresses, in both orders.
    for ip in [SECOND_LOOPBACK, LOOPBACK, SECOND_LOOPBACK] {
        let to = SocketAddr::new(ip, port);
        assert_eq!(answered_from(&c, &conn, to, false).await, to);
    }
    // It nominates the pair through 127.0.0.2; then DTLS flows there, and what the
    // agent sends next (not a response) leaves from there too.
    let nominated = SocketAddr::new(SECOND_LOOPBACK, port);
    assert_eq!(answered_from(&c, &conn, nominated, true).await, nominated);
    c.send_to(&[22, 254, 253, 1, 2, 3], nominated)
        .expect("sends");
    let (dtls, _) = agent_reads(&conn).await;
    assert_eq!(dtls, [22, 254, 253, 1, 2, 3]);
    let client_addr = c.local_addr().expect("address");
    conn.send_to(&[22, 254, 253, 9], client_addr)
        .await
        .expect("sends");
    assert_eq!(reply_source(&c), (vec![22, 254, 253, 9], nominated));
    // A later probe of the other pair is answered from it, but does not move the rest.
    let other = SocketAddr::new(LOOPBACK, port);
    assert_eq!(answered_from(&c, &conn, other, false).await, other);
    conn.send_to(&[22, 254, 253, 10], client_addr)
        .await
        .expect("sends");
    assert_eq!(reply_source(&c).1, nominated);
    mux.shutdown();
}

#[tokio::test]
async fn ipv6_checks_are_answered_over_ipv6() {
    let mux = UdpMux::bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("binds");
    let Ok(c) = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)) else {
        assert!(!mux.has_ipv6());
        return;
    };
    c.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let conn = Arc::clone(&mux).get_conn("server").await.expect("conn");
    let to = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), mux.local_addr().port());
    assert_eq!(answered_from(&c, &conn, to, true).await, to);
    mux.shutdown();
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(Vec<u8>, Received)>>,
}

impl FastPath for Recorder {
    fn receive(&self, packet: &mut [u8], received: &Received) -> Verdict {
        if packet[1] == 0xFF {
            return Verdict::Pass;
        }
        self.seen.lock().push((packet.to_vec(), *received));
        // In place, as decryption would.
        packet.fill(0);
        Verdict::Consumed
    }
}

#[tokio::test]
async fn a_validated_remotes_media_goes_to_the_fast_path() {
    let mux = UdpMux::bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("binds");
    let to = SocketAddr::new(SECOND_LOOPBACK, mux.local_addr().port());
    let conn = Arc::clone(&mux).get_conn("server").await.expect("conn");
    let c = client(LOOPBACK);
    answered_from(&c, &conn, to, true).await;

    // No fast path yet: webrtc-rs gets the media.
    c.send_to(&[0x80, 96, 0, 1], to).expect("sends");
    assert_eq!(agent_reads(&conn).await.0, [0x80, 96, 0, 1]);

    let recorder = Arc::new(Recorder::default());
    assert!(mux.set_fast_path("server", Some(recorder.clone())));
    assert!(!mux.set_fast_path("nobody", Some(recorder.clone())));
    let before = Instant::now();
    c.send_to(&[0x80, 96, 0, 2], to).expect("sends");
    c.send_to(&[0x81, 200, 0, 1], to).expect("sends"); // RTCP
    c.send_to(&[0x80, 0xFF, 0, 3], to).expect("sends"); // handed back
    c.send_to(&[22, 254, 253, 7], to).expect("sends"); // DTLS: never offered
    let (passed, _) = agent_reads(&conn).await;
    assert_eq!(passed, [0x80, 0xFF, 0, 3]);
    assert_eq!(agent_reads(&conn).await.0, [22, 254, 253, 7]);
    let seen = recorder.seen.lock().clone();
    let packets: Vec<&[u8]> = seen.iter().map(|(p, _)| p.as_slice()).collect();
    assert_eq!(packets, [&[0x80, 96, 0, 2][..], &[0x81, 200, 0, 1]]);
    for (_, received) in &seen {
        assert_eq!(received.from, c.local_addr().expect("address"));
        assert_eq!(received.local, SECOND_LOOPBACK);
        assert!(received.at + Duration::from_millis(5) >= before);
        assert!(received.at <= Instant::now());
    }
    mux.shutdown();
}

#[tokio::test]
async fn junk_is_counted_by_reason_and_reaches_nobody() {
    let mux = UdpMux::bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("binds");
    let to = SocketAddr::new(LOOPBACK, mux.local_addr().port());
    let conn = Arc::clone(&mux).get_conn("server").await.expect("conn");
    let stranger = client(LOOPBACK);
    let mut malformed = check("server", false).raw;
    malformed.truncate(24);
    let cases: [(Vec<u8>, DropReason); 5] = [
        (vec![0xFF; 40], DropReason::NotWebrtc),
        (malformed, DropReason::MalformedStun),
        (check("somebody-else", false).raw, DropReason::UnknownUfrag),
        (vec![0x80, 96, 1, 2, 3], DropReason::UnknownRemote),
        (vec![0; 9000], DropReason::Truncated),
    ];
    for (datagram, _) in &cases {
        for _ in 0..50 {
            stranger.send_to(datagram, to).expect("sends");
        }
    }
    // A real check after the junk: once the agent has it, the junk before it on the same
    // socket has been dealt with.
    let request = check("server", false);
    stranger.send_to(&request.raw, to).expect("sends");
    assert_eq!(agent_reads(&conn).await.0, request.raw);
    for (reason, n) in mux.drops().totals() {
        let expected = if cases.iter().any(|(_, r)| *r == reason) {
            50
        } else {
            0
        };
        assert_eq!(n, expected, "{}", reason.label());
    }
    mux.shutdown();
}

#[tokio::test]
async fn a_closed_connection_forgets_its_remotes() {
    let mux = UdpMux::bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("binds");
    let to = SocketAddr::new(LOOPBACK, mux.local_addr().port());
    let conn = Arc::clone(&mux).get_conn("server").await.expect("conn");
    let c = client(LOOPBACK);
    answered_from(&c, &conn, to, true).await;
    conn.close().await.expect("closes");
    let mut buf = [0u8; 64];
    assert!(conn.recv_from(&mut buf).await.is_err(), "readers are woken");
    // The next datagram from that remote is a stranger's; a check for the ufrag too.
    c.send_to(&[0x80, 96, 0, 1], to).expect("sends");
    c.send_to(&check("server", false).raw, to).expect("sends");
    // A new connection's check, to know the two before it were handled.
    let fresh = Arc::clone(&mux).get_conn("fresh").await.expect("conn");
    let request = check("fresh", false);
    c.send_to(&request.raw, to).expect("sends");
    assert_eq!(agent_reads(&fresh).await.0, request.raw);
    let totals = mux.drops().totals();
    assert!(
        totals.contains(&(DropReason::UnknownRemote, 1)),
        "{totals:?}"
    );
    assert!(
        totals.contains(&(DropReason::UnknownUfrag, 1)),
        "{totals:?}"
    );
    mux.shutdown();
}

/// A reader that fell behind drops the media that waited too long without looking at it, and
/// still hands the agent every check, however long it waited: the check is what keeps the
/// connection alive. Here the reader starts late, as if it had been busy.
#[tokio::test]
async fn media_that_waited_too_long_is_dropped_and_checks_are_not() {
    let mux = UdpMux::bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("binds");
    let to = SocketAddr::new(LOOPBACK, mux.local_addr().port());
    let c = client(LOOPBACK);
    for seq in 0..20u8 {
        c.send_to(&[0x80, 96, 0, seq], to).expect("sends");
    }
    let waited = check("server", false);
    c.send_to(&waited.raw, to).expect("sends");
    // The condition is the time the datagrams spent in the socket: nothing to await.
    tokio::time::sleep(roomcast_udp::STALE_MEDIA + Duration::from_millis(100)).await;
    let conn = Arc::clone(&mux).get_conn("server").await.expect("conn"); // starts the reader
    assert_eq!(agent_reads(&conn).await.0, waited.raw);

    // Media that did not wait is not stale (from this unvalidated sender: a stranger's).
    c.send_to(&[0x80, 96, 0, 99], to).expect("sends");
    let request = check("server", false);
    c.send_to(&request.raw, to).expect("sends");
    assert_eq!(agent_reads(&conn).await.0, request.raw);
    let totals = mux.drops().totals();
    assert!(totals.contains(&(DropReason::Stale, 20)), "{totals:?}");
    assert!(
        totals.contains(&(DropReason::UnknownRemote, 1)),
        "{totals:?}"
    );
    mux.shutdown();
}
