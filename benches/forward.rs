//! The per-packet forwarding path without webrtc-rs or signaling: one publisher packet to
//! one subscriber. Prints allocations per packet, then criterion's ns per packet for:
//!
//! - `prepare`: the forwarding decision and rewrite (sequence number/timestamp munging,
//!   payload type, header extensions, header and payload written into the send buffer);
//! - `prepare+srtp`: plus SRTP protection in place (AEAD AES-128-GCM, what Chrome picks);
//! - `forward`: plus the `sendto` on a loopback UDP socket, i.e. everything a subscriber
//!   costs the server per packet (a thread drains the receiving socket).
//!
//!   cargo bench --bench forward
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use roomcast_codec::vp8::descriptor_fields;
use roomcast_sfu::egress::Egress;
use roomcast_sfu::media::down_track::{DownTrack, Incoming};
use roomcast_sfu::media::header_extensions::IncomingExtensions;
use roomcast_sfu::media::layer_selector::LayerSet;
use roomcast_sfu::srtp::{SrtpProfile, SrtpSession};
use roomcast_udp::UdpMux;
use rtp::packet::Packet;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTPCodecType,
};
use webrtc::sdp::extmap::{ABS_SEND_TIME_URI, AUDIO_LEVEL_URI, SDES_MID_URI, TRANSPORT_CC_URI};

/// Counts every allocation the process makes.
struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A 1,200-byte VP8 packet, as a 640x360 camera sends.
    Video,
    /// A 100-byte Opus packet with its audio level.
    Audio,
}

struct Setup {
    down: Arc<DownTrack>,
    packet: Packet,
    codecs: Vec<RTCRtpCodecParameters>,
    extensions: IncomingExtensions,
    kind: Kind,
    /// The layer of the next packet, and how many the track has.
    layer: u8,
    layers: u8,
    _sink: Option<UdpSocket>,
}

fn codec(kind: Kind) -> RTCRtpCodecParameters {
    let (mime, clock_rate, channels, payload_type) = match kind {
        Kind::Video => (MIME_TYPE_VP8, 90_000, 0, 96),
        Kind::Audio => (MIME_TYPE_OPUS, 48_000, 2, 111),
    };
    RTCRtpCodecParameters {
        capability: RTCRtpCodecCapability {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
        payload_type,
        ..Default::default()
    }
}

fn ext(uri: &str, id: isize) -> RTCRtpHeaderExtensionParameters {
    RTCRtpHeaderExtensionParameters {
        uri: uri.to_owned(),
        id,
    }
}

/// One bound subscriber whose egress sends to a drained loopback socket.
fn setup(kind: Kind) -> Setup {
    setup_layers(kind, 1)
}

/// Like [`setup`], for a track of `layers` simulcast layers; video payloads carry a VP8
/// descriptor with a picture id and TL0PICIDX, which the down track rewrites.
fn setup_layers(kind: Kind, layers: u8) -> Setup {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    let remote = sink.local_addr().expect("sink address");
    let drain = sink.try_clone().expect("clone sink");
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while drain.recv(&mut buf).is_ok() {}
    });
    let egress = Arc::new(Egress::new(media_socket()));
    let srtp = SrtpSession::new(SrtpProfile::AeadAes128Gcm, &[3; 16], &[4; 12]).expect("srtp keys");
    egress.set_route(remote, srtp);

    let codecs = vec![codec(kind)];
    let rtp_kind = match kind {
        Kind::Video => RTPCodecType::Video,
        Kind::Audio => RTPCodecType::Audio,
    };
    let down = Arc::new(DownTrack::new(
        "TR_1".into(),
        "PA_1".into(),
        rtp_kind,
        codecs[0].clone(),
        layers,
        egress,
    ));
    // Chrome's default ids on the subscriber's side.
    let negotiated = [
        ext(AUDIO_LEVEL_URI, 1),
        ext(ABS_SEND_TIME_URI, 2),
        ext(TRANSPORT_CC_URI, 3),
        ext(SDES_MID_URI, 4),
    ];
    down.bind_negotiated(
        "ctx".into(),
        0x1234_5678,
        codecs.clone(),
        &negotiated,
        Some("3"),
    );
    down.activate();

    // What the publisher sent: mid, abs-send-time and transport-cc (plus audio level).
    let mut packet = Packet::default();
    packet.header.version = 2;
    packet.header.payload_type = codecs[0].payload_type;
    packet.header.ssrc = 0xABCD;
    packet.header.sequence_number = 1;
    packet.header.timestamp = 90_000;
    let set = |p: &mut Packet, id: u8, v: &'static [u8]| {
        p.header
            .set_extension(id, Bytes::from_static(v))
            .expect("valid extension");
    };
    set(&mut packet, 4, b"1");
    set(&mut packet, 2, &[1, 2, 3]);
    set(&mut packet, 3, &[0, 1]);
    let payload_len = match kind {
        Kind::Video => 1200,
        Kind::Audio => {
            set(&mut packet, 1, &[0x85]);
            100
        }
    };
    let mut payload = vec![0x55u8; payload_len];
    if kind == Kind::Video {
        payload[..5].copy_from_slice(&[0x90, 0xc0, 0x80, 0x01, 0x07]);
    }
    packet.payload = Bytes::from(payload);
    let extensions = IncomingExtensions::from_negotiated(&negotiated);
    Setup {
        down,
        packet,
        codecs,
        extensions,
        kind,
        layer: layers - 1,
        layers,
        _sink: Some(sink),
    }
}

impl Setup {
    fn incoming(&self, now: Instant) -> Incoming<'_> {
        Incoming {
            packet: &self.packet,
            layer: self.layer,
            arriving: LayerSet::all(self.layers),
            vp8: (self.kind == Kind::Video)
                .then(|| descriptor_fields(&self.packet.payload))
                .flatten(),
            is_keyframe: true,
            extensions: self.extensions,
            codecs: &self.codecs,
            received_at: now,
            redundancy: Default::default(),
        }
    }

    fn next_packet(&mut self) {
        let h = &mut self.packet.header;
        h.sequence_number = h.sequence_number.wrapping_add(1);
        h.timestamp = h.timestamp.wrapping_add(match self.kind {
            Kind::Video => 3000,
            Kind::Audio => 960,
        });
    }

    fn prepare(&mut self, buf: &mut Vec<u8>) -> roomcast_sfu::egress::Prepared {
        self.next_packet();
        let incoming = self.incoming(Instant::now());
        self.down.prepare(&incoming, buf).expect("forwarded")
    }
}

fn prepare_and_protect(s: &mut Setup, buf: &mut Vec<u8>, egress: &Egress) {
    let p = s.prepare(buf);
    egress
        .protect_rtp(buf, p.header_len, p.ssrc, p.sequence_number, p.roc)
        .expect("protected");
}

fn allocations_per_packet() {
    for (name, kind) in [("video", Kind::Video), ("audio", Kind::Audio)] {
        let mut s = setup(kind);
        let egress = egress_of(&s);
        let mut buf = Vec::with_capacity(1600);
        for _ in 0..1000 {
            prepare_and_protect(&mut s, &mut buf, &egress);
        }
        const N: u64 = 100_000;
        let before = ALLOCATIONS.load(Relaxed);
        for _ in 0..N {
            prepare_and_protect(&mut s, &mut buf, &egress);
        }
        let prepared = ALLOCATIONS.load(Relaxed) - before;
        let before = ALLOCATIONS.load(Relaxed);
        for _ in 0..N {
            s.next_packet();
            let now = Instant::now();
            let incoming = s.incoming(now);
            s.down.forward(&incoming, &mut buf, now);
        }
        let forwarded = ALLOCATIONS.load(Relaxed) - before;
        println!(
            "allocations per {name} packet: prepare+srtp {:.3}, forward (with sendto) {:.3}",
            prepared as f64 / N as f64,
            forwarded as f64 / N as f64
        );
    }
}

/// The server's media socket (nothing reads it here). Bound as the README's server binds
/// it, to every address (one dual-stack socket where the host has IPv6), unless
/// `FORWARD_BIND` names an address (`127.0.0.1`: a plain IPv4 socket).
fn media_socket() -> Arc<UdpMux> {
    let ip = std::env::var("FORWARD_BIND")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    UdpMux::bind(ip, 0).expect("bind")
}

/// The benchmark's own handle on the egress the down track uses (same socket and keys).
fn egress_of(_s: &Setup) -> Egress {
    let egress = Egress::new(media_socket());
    let srtp = SrtpSession::new(SrtpProfile::AeadAes128Gcm, &[3; 16], &[4; 12]).expect("srtp keys");
    egress.set_route("127.0.0.1:9".parse().expect("address"), srtp);
    egress
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    group.throughput(Throughput::Elements(1));
    for (name, kind) in [("video", Kind::Video), ("audio", Kind::Audio)] {
        let mut s = setup(kind);
        let egress = egress_of(&s);
        let mut buf = Vec::with_capacity(1600);
        group.bench_function(BenchmarkId::new("prepare", name), |b| {
            b.iter(|| s.prepare(&mut buf))
        });
        group.bench_function(BenchmarkId::new("prepare+srtp", name), |b| {
            b.iter(|| prepare_and_protect(&mut s, &mut buf, &egress))
        });
        group.bench_function(BenchmarkId::new("forward", name), |b| {
            b.iter(|| {
                s.next_packet();
                let now = Instant::now();
                let incoming = s.incoming(now);
                s.down.forward(&incoming, &mut buf, now)
            })
        });
    }
    group.finish();

    // Simulcast: packets of three layers arrive in turn; the selector takes one layer and
    // drops the others, and the rewriter renumbers what it takes.
    let mut group = c.benchmark_group("simulcast");
    group.throughput(Throughput::Elements(1));
    let mut s = setup_layers(Kind::Video, 3);
    let mut buf = Vec::with_capacity(1600);
    group.bench_function("select+rewrite, 3 layers in turn", |b| {
        b.iter(|| {
            s.layer = (s.layer + 1) % 3;
            s.next_packet();
            let incoming = s.incoming(Instant::now());
            let _ = s.down.prepare(&incoming, &mut buf);
        })
    });
    // The worst case: every packet is a keyframe of a new target layer, so every forwarded
    // packet starts a new segment.
    let mut s = setup_layers(Kind::Video, 3);
    let mut high = false;
    group.bench_function("switch every packet", |b| {
        b.iter(|| {
            high = !high;
            s.layer = if high { 2 } else { 0 };
            s.down.set_requested(Some(s.layer));
            s.next_packet();
            let incoming = s.incoming(Instant::now());
            s.down.prepare(&incoming, &mut buf).expect("switched")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    allocations_per_packet();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
