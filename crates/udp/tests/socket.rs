//! The media socket on real sockets: source, local address and arrival time of every
//! datagram, batch reads, and sending from a chosen local address.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use std::sync::Arc;

use roomcast_udp::{AsyncSocket, MediaSocket, Received, RecvBatch};

const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Also ours: all of 127.0.0.0/8 is on the loopback interface.
const SECOND_LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn client(ip: IpAddr) -> UdpSocket {
    let c = UdpSocket::bind((ip, 0)).expect("client binds");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    c
}

fn bind(ip: IpAddr) -> (Arc<MediaSocket>, AsyncSocket) {
    let socket = Arc::new(MediaSocket::bind(ip, 0).expect("binds"));
    let io = AsyncSocket::new(Arc::clone(&socket)).expect("registers");
    (socket, io)
}

async fn read_one(io: &AsyncSocket) -> (Vec<u8>, Received) {
    let mut batch = RecvBatch::new(1);
    io.recv(&mut batch).await.expect("reads");
    let (data, received) = batch.datagrams().next().expect("one datagram");
    (data.to_vec(), received)
}

#[tokio::test]
async fn each_datagram_says_which_of_our_addresses_it_was_sent_to() {
    let (socket, io) = bind(UNSPECIFIED);
    let port = socket.local_addr().port();
    let c = client(IpAddr::V4(Ipv4Addr::LOCALHOST));
    for to in [IpAddr::V4(Ipv4Addr::LOCALHOST), SECOND_LOOPBACK] {
        c.send_to(b"ping", (to, port)).expect("sends");
        let (data, received) = read_one(&io).await;
        assert_eq!(data, b"ping");
        assert_eq!(received.from, c.local_addr().expect("address"));
        assert_eq!(received.local, to);
    }
}

#[tokio::test]
async fn replies_leave_from_the_address_we_choose() {
    let socket = MediaSocket::bind(UNSPECIFIED, 0).expect("binds");
    let port = socket.local_addr().port();
    let c = client(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let to = c.local_addr().expect("address");
    let mut buf = [0u8; 16];
    socket
        .send(b"pong", to, Some(SECOND_LOOPBACK))
        .expect("sends");
    let (len, from) = c.recv_from(&mut buf).expect("reply");
    assert_eq!(&buf[..len], b"pong");
    assert_eq!(from, SocketAddr::new(SECOND_LOOPBACK, port));
    // Left to itself the kernel picks the route's source address, not the one the peer
    // wrote to: the reason sources are chosen.
    socket.send(b"pong", to, None).expect("sends");
    let (_, from) = c.recv_from(&mut buf).expect("reply");
    assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
}

#[tokio::test]
async fn ipv6_peers_share_the_port_when_the_host_has_ipv6() {
    let (socket, io) = bind(UNSPECIFIED);
    let Ok(c) = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)) else {
        // No IPv6 on this host: the socket must then be IPv4 only.
        assert!(!socket.has_ipv6());
        return;
    };
    assert!(
        socket.has_ipv6(),
        "the host has ::1, the socket must take IPv6"
    );
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let port = socket.local_addr().port();
    c.send_to(b"six", (Ipv6Addr::LOCALHOST, port))
        .expect("sends");
    let (_, received) = read_one(&io).await;
    assert_eq!(received.local, IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(received.from, c.local_addr().expect("address"));
    socket
        .send(b"back", received.from, Some(received.local))
        .expect("sends");
    let mut buf = [0u8; 8];
    let (len, from) = c.recv_from(&mut buf).expect("reply");
    assert_eq!(&buf[..len], b"back");
    assert_eq!(from, SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port));
}

#[tokio::test]
async fn a_socket_bound_to_one_address_reports_it() {
    let (socket, io) = bind(IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert!(!socket.has_ipv6());
    let c = client(IpAddr::V4(Ipv4Addr::LOCALHOST));
    c.send_to(b"x", socket.local_addr()).expect("sends");
    let (_, received) = read_one(&io).await;
    assert_eq!(received.local, IpAddr::V4(Ipv4Addr::LOCALHOST));
}

#[tokio::test]
async fn a_batch_read_takes_every_waiting_datagram_in_order() {
    let (socket, io) = bind(UNSPECIFIED);
    let c = client(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), socket.local_addr().port());
    for i in 0..20u8 {
        c.send_to(&vec![i; 100 + usize::from(i)], to)
            .expect("sends");
    }
    let mut batch = RecvBatch::new(8);
    let mut next = 0u8;
    let mut reads = 0;
    while next < 20 {
        io.recv(&mut batch).await.expect("reads");
        reads += 1;
        for (data, received) in batch.datagrams() {
            assert_eq!(data.len(), 100 + usize::from(next));
            assert!(data.iter().all(|b| *b == next));
            assert_eq!(received.from, c.local_addr().expect("address"));
            next += 1;
        }
    }
    assert!(reads <= 20);
}

#[tokio::test]
async fn the_arrival_time_is_when_the_kernel_received_it_not_when_it_was_read() {
    let (socket, io) = bind(UNSPECIFIED);
    let c = client(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let sent = Instant::now();
    c.send_to(b"t", (Ipv4Addr::LOCALHOST, socket.local_addr().port()))
        .expect("sends");
    // The datagram waits in the socket's buffer while nobody reads.
    std::thread::sleep(Duration::from_millis(200));
    let (_, received) = read_one(&io).await;
    let read = Instant::now();
    assert!(
        read.duration_since(received.at) >= Duration::from_millis(150),
        "stamped {:?} before the read",
        read.duration_since(received.at)
    );
    assert!(received.at + Duration::from_millis(50) >= sent);
}
