//! The lab's links on the real kernel: UDP from a participant's namespace to the server's
//! namespace is delayed, lost, capped and cut as asked, and nothing is left behind. Needs
//! root (CI runs as root); without it the lab says why and these tests fail.
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use roomcast_netlab::delay_shim::Delay;
use roomcast_netlab::lab::{Lab, SERVER_IP};
use roomcast_netlab::link::Impairment;
use roomcast_netlab::netns;

const PORT: u16 = 9000;

/// Sends `count` datagrams of `size` bytes every `gap` from `host`'s namespace to the server's
/// namespace; returns, per datagram received, its index and its one-way delay.
fn send_and_receive(
    lab: &Lab,
    host: &str,
    count: u32,
    size: usize,
    gap: Duration,
) -> Vec<(u32, Duration)> {
    let server = lab.server.name().to_owned();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        netns::enter(&server).expect("enter the server namespace");
        let socket = UdpSocket::bind(("0.0.0.0", PORT)).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        bound_tx.send(()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = socket.recv(&mut buf) {
            let index = u32::from_le_bytes(buf[..4].try_into().unwrap());
            let sent = u128::from_le_bytes(buf[4..20].try_into().unwrap());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros();
            got.push((index, Duration::from_micros((now - sent) as u64)));
            assert_eq!(n, buf.len().min(n));
        }
        got
    });
    bound_rx.recv().unwrap();
    let host = host.to_owned();
    std::thread::spawn(move || {
        netns::enter(&host).expect("enter the host namespace");
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        let to = SocketAddr::from((SERVER_IP, PORT));
        let start = Instant::now();
        for i in 0..count {
            let mut packet = vec![0u8; size];
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros();
            packet[..4].copy_from_slice(&i.to_le_bytes());
            packet[4..20].copy_from_slice(&now.to_le_bytes());
            let _ = socket.send_to(&packet, to);
            std::thread::sleep((start + gap * (i + 1)).saturating_duration_since(Instant::now()));
        }
    })
    .join()
    .unwrap();
    receiver.join().unwrap()
}

fn lab() -> Lab {
    Lab::new().unwrap_or_else(|e| panic!("the network lab cannot run here: {e:#}"))
}

#[test]
fn a_clean_link_delivers_everything_at_once() {
    let lab = lab();
    let host = lab.add_host("clean").expect("host");
    let got = send_and_receive(&lab, host.ns.name(), 200, 200, Duration::from_millis(2));
    assert_eq!(got.len(), 200);
    let worst = got.iter().map(|g| g.1).max().unwrap();
    assert!(worst < Duration::from_millis(20), "{worst:?}");
}

#[test]
fn the_delay_shim_holds_packets_delay_plus_minus_jitter_in_order() {
    let lab = lab();
    let host = lab.add_host("delay").expect("host");
    let mut imp = Impairment::default();
    imp.up.delay = Delay {
        delay: Duration::from_millis(100),
        jitter: Duration::from_millis(30),
    };
    host.link.apply(imp).expect("delay");
    let got = send_and_receive(&lab, host.ns.name(), 300, 200, Duration::from_millis(5));
    assert_eq!(got.len(), 300, "nothing lost");
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "order kept");
    let mut delays: Vec<f64> = got.iter().map(|g| g.1.as_secs_f64() * 1000.0).collect();
    delays.sort_by(f64::total_cmp);
    let (min, max) = (delays[0], delays[delays.len() - 1]);
    let p95 = delays[delays.len() * 95 / 100];
    let mean = delays.iter().sum::<f64>() / delays.len() as f64;
    assert!(min >= 69.0, "min {min}");
    // Keeping order holds a packet as long as any before it (so delays lean towards the
    // top of the range), and the shim's thread may wake late on a busy machine.
    assert!(p95 <= 165.0, "95th percentile {p95}");
    assert!(max <= 300.0, "max {max}");
    assert!((95.0..140.0).contains(&mean), "mean {mean}");
    assert!(max - min > 30.0, "jitter shows: {min}..{max}");
    // Off again: back to no delay.
    host.link.apply(Impairment::default()).expect("clean");
    let got = send_and_receive(&lab, host.ns.name(), 50, 200, Duration::from_millis(5));
    assert!(got.iter().all(|g| g.1 < Duration::from_millis(20)));
}

#[test]
fn random_and_bursty_loss_drop_the_fraction_asked() {
    let lab = lab();
    let host = lab.add_host("loss").expect("host");
    let mut imp = Impairment::default();
    imp.up.loss = 0.05;
    host.link.apply(imp).expect("loss");
    let got = send_and_receive(&lab, host.ns.name(), 4000, 100, Duration::from_micros(250));
    let lost = 4000 - got.len();
    assert!((120..=280).contains(&lost), "5 % of 4000 lost: {lost}");

    let mut imp = Impairment::default();
    imp.up.burst_loss = 0.02;
    host.link.apply(imp).expect("bursts");
    // Bursts of 3-8 make the count vary far more than independent losses: over 6,000
    // datagrams (120 expected), 60-200 held only 99.1 % of simulated runs, and a CI run
    // counted 213. Over 24,000 (480 expected), 240-740 holds all but about 5 in a million,
    // and still tells a rule that drops half or twice the fraction asked.
    const SENT: u32 = 24_000;
    let got = send_and_receive(&lab, host.ns.name(), SENT, 100, Duration::from_micros(100));
    let received: std::collections::HashSet<u32> = got.iter().map(|g| g.0).collect();
    let mut bursts = Vec::new();
    let mut run = 0;
    for i in 0..SENT {
        if received.contains(&i) {
            if run > 0 {
                bursts.push(run);
            }
            run = 0;
        } else {
            run += 1;
        }
    }
    let lost: u32 = bursts.iter().sum();
    assert!((240..=740).contains(&lost), "2 % of {SENT} lost: {lost}");
    assert!(
        bursts.iter().filter(|&&b| b >= 3).count() * 10 >= bursts.len() * 9,
        "bursts of 3-8: {bursts:?}"
    );
}

#[test]
fn a_cap_limits_the_rate_and_an_outage_stops_everything() {
    let lab = lab();
    let host = lab.add_host("cap").expect("host");
    let mut imp = Impairment::default();
    imp.up.cap_kbps = Some(400);
    host.link.apply(imp).expect("cap");
    // 1.6 Mbit/s offered for 2 s: 1000-byte datagrams every 5 ms.
    let got = send_and_receive(&lab, host.ns.name(), 400, 1000, Duration::from_millis(5));
    let kbps = got.len() as f64 * 1000.0 * 8.0 / 2.0 / 1000.0;
    assert!(
        (300.0..560.0).contains(&kbps),
        "about 400 kbit/s got through: {kbps}"
    );

    host.link
        .apply(Impairment {
            outage: true,
            ..Impairment::default()
        })
        .expect("outage");
    assert!(send_and_receive(&lab, host.ns.name(), 100, 100, Duration::from_millis(2)).is_empty());
    host.link.apply(Impairment::default()).expect("back");
    assert_eq!(
        send_and_receive(&lab, host.ns.name(), 100, 100, Duration::from_millis(2)).len(),
        100
    );
}

#[test]
fn nothing_is_left_behind() {
    let names: Vec<String> = {
        let lab = lab();
        let host = lab.add_host("gone").expect("host");
        let mut imp = Impairment::default();
        imp.down.delay = Delay {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
        };
        imp.down.cap_kbps = Some(1000);
        host.link.apply(imp).expect("impair");
        vec![
            lab.server.name().to_owned(),
            host.ns.name().to_owned(),
            host.link.router().name().to_owned(),
        ]
    };
    let list = netns::run("ip", &["netns", "list"]).expect("ip netns list");
    for name in names {
        assert!(!list.contains(&name), "{name} is still there:\n{list}");
    }
}
