//! A subscriber's RTCP through the compound parser into its bandwidth estimator
//! (transport-cc feedback, REMB, receiver reports), as the server handles each datagram.
//!
//! Input: two bytes giving how many packets were sent before (recorded in the send history
//! from transport-wide number 0), then datagrams of `[length, elapsed ms]` and `length`
//! bytes of RTCP.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use roomcast_sfu::bandwidth::{FeedbackParser, SubscriberBandwidth};
use rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let mut rest = rest;
    let t0 = Instant::now();
    let bandwidth = SubscriberBandwidth::new(t0);
    let sent = u16::from_be_bytes([*a, *b]) % 8192;
    for seq in 0..sent {
        bandwidth.history.record(
            seq,
            1_000 + usize::from(seq % 300),
            t0 + Duration::from_micros(u64::from(seq) * 500),
        );
    }
    let mut parser = FeedbackParser::new();
    let mut results = Vec::new();
    let mut now = t0;
    while let [len, elapsed, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (raw, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_millis(u64::from(*elapsed));
        let Ok(packets) = rtcp::packet::unmarshal(&mut Bytes::copy_from_slice(raw)) else {
            continue;
        };
        for packet in &packets {
            bandwidth.on_rtcp(now, packet.as_ref());
            if let Some(feedback) = packet.as_any().downcast_ref::<TransportLayerCc>() {
                parser.parse(feedback, &bandwidth.history, &mut results);
                assert!(results.len() <= usize::from(feedback.packet_status_count));
            }
        }
        let _ = bandwidth.estimate();
    }
});
