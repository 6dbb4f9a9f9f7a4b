//! Test doubles for the room and its users: published tracks without a connection, and a
//! mailbox that keeps what it is given.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use roomcast_protocol::{ServerMessage, Track, TrackKind, TrackSource};
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecParameters;

use super::{Mailbox, Order};
use crate::media::published_track::PublishedTrack;

/// A track of `publisher` on its m-line `mid`, with no media behind it.
pub(crate) fn track(publisher: &str, id: &str, mid: &str, kind: TrackKind) -> Arc<PublishedTrack> {
    let info = Track {
        id: id.to_owned(),
        kind,
        source: TrackSource::default_for(kind),
        simulcast: false,
        muted: false,
    };
    Arc::new(PublishedTrack::new(
        info,
        publisher.to_owned(),
        mid.to_owned(),
        RTCRtpCodecParameters::default(),
        &[],
        Weak::new(),
    ))
}

/// Keeps every message, order and wake-up a member gets.
#[derive(Default)]
pub(crate) struct Recorder {
    told: Mutex<Vec<ServerMessage>>,
    orders: Mutex<Vec<Order>>,
    resubscribes: AtomicUsize,
}

impl Recorder {
    pub fn told(&self) -> Vec<ServerMessage> {
        self.told.lock().clone()
    }

    pub fn orders(&self) -> Vec<Order> {
        self.orders.lock().clone()
    }

    pub fn resubscribes(&self) -> usize {
        self.resubscribes.load(Ordering::Relaxed)
    }
}

impl Mailbox for Recorder {
    fn tell(&self, msg: ServerMessage) {
        self.told.lock().push(msg);
    }

    fn resubscribe(&self) {
        self.resubscribes.fetch_add(1, Ordering::Relaxed);
    }

    fn order(&self, order: Order) {
        self.orders.lock().push(order);
    }
}
