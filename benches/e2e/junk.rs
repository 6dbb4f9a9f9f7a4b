//! Junk on the media port: what a datagram no connection asked for costs the server. An
//! idle server (no room) gets `count` datagrams from one stranger, a quarter each of:
//! random bytes, STUN with a ufrag nobody has, truncated STUN, and SRTP-looking packets,
//! paced so the socket's buffer never overflows. The server's CPU time over the burst,
//! less what it spends idle over as long, divided by the datagrams, is the cost of one;
//! the log lines it wrote meanwhile are counted too. The server logs with its default
//! filter (the README's run), so its warnings show.
use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Server;

#[derive(Debug, Default, Serialize)]
pub struct Junk {
    pub datagrams: u64,
    pub cpu_us_per_datagram: f64,
    pub log_lines: usize,
    /// What the server's `/metrics` counted (`roomcast_udp_dropped_total`), if it has it.
    pub counted: Option<u64>,
}

impl Junk {
    pub fn print(&self) {
        println!(
            "junk: {} datagrams, {:.2} us of server CPU each, {} log lines{}",
            self.datagrams,
            self.cpu_us_per_datagram,
            self.log_lines,
            self.counted
                .map_or(String::new(), |n| format!(", {n} counted in /metrics"))
        );
    }
}

fn kinds() -> [Vec<u8>; 4] {
    let mut unknown_ufrag = vec![0, 1, 0, 16, 0x21, 0x12, 0xA4, 0x42];
    unknown_ufrag.extend_from_slice(&[7; 12]);
    unknown_ufrag.extend_from_slice(&[0, 6, 0, 12]);
    unknown_ufrag.extend_from_slice(b"nobody:other");
    let truncated_stun = vec![0, 1, 0, 80, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4];
    let mut srtp = vec![0x80, 96, 0x12, 0x34];
    srtp.resize(1100, 0x5A);
    let mut random = vec![0u8; 300];
    let mut x: u32 = 0x9E37_79B9;
    for b in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    random[0] = 0xF0;
    [random, unknown_ufrag, truncated_stun, srtp]
}

pub fn run(count: u64) -> Junk {
    let server = Server::start_logged("junk", None);
    let port = server.udp_port();
    let log_before = server.log_lines();
    let idle = Duration::from_secs(2);
    let cpu0 = server.cpu_secs();
    std::thread::sleep(idle);
    let idle_cpu_per_sec = (server.cpu_secs() - cpu0) / idle.as_secs_f64();

    let stranger = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binds");
    let datagrams = kinds();
    let started = Instant::now();
    let cpu_start = server.cpu_secs();
    for i in 0..count {
        let datagram = &datagrams[(i % 4) as usize];
        let _ = stranger.send_to(datagram, (Ipv4Addr::LOCALHOST, port));
        // About 20,000 a second: far below what the server reads, so none is lost.
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Let the server finish reading before the CPU is read.
    std::thread::sleep(Duration::from_millis(500));
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = server.cpu_secs() - cpu_start - idle_cpu_per_sec * elapsed;
    let counted = server.get("/metrics").map(|m| {
        m.lines()
            .filter(|l| l.starts_with("roomcast_udp_dropped_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    });
    Junk {
        datagrams: count,
        cpu_us_per_datagram: 1e6 * cpu.max(0.0) / count as f64,
        log_lines: server.log_lines().saturating_sub(log_before),
        counted: counted.filter(|&n| n > 0),
    }
}
