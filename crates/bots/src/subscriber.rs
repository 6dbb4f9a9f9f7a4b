//! One task per received track: reads its RTP and feeds its counters.
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_protocol::TrackKind;
use tracing::{debug, Instrument, Span};
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::track::track_remote::TrackRemote;

use crate::subscriber_stats::{Feed, Subscriptions, TrackKey};

/// How often a reader re-reads the track's msid: a renegotiation can move the same SSRC to
/// another publisher's track without a new `on_track`.
const MSID_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// How often plain packet progress wakes `wait_for_media`.
const PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_millis(20);
/// Larger than webrtc-rs's receive MTU.
const READ_BUFFER: usize = 1500;

/// Starts reading a track that `on_track` announced. The reader ends with the track.
pub(crate) fn spawn_reader(subscriptions: Arc<Subscriptions>, track: Arc<TrackRemote>, span: Span) {
    let reader = tokio::spawn(read(Arc::clone(&subscriptions), track).instrument(span));
    subscriptions.add_reader(reader.abort_handle());
}

fn open(subscriptions: &Subscriptions, track: &TrackRemote) -> Feed {
    let key = TrackKey {
        publisher_id: track.stream_id(),
        track_id: track.id(),
    };
    let kind = match track.kind() {
        RTPCodecType::Audio => TrackKind::Audio,
        _ => TrackKind::Video,
    };
    let codec = track.codec();
    debug!(
        publisher_id = %key.publisher_id,
        track_id = %key.track_id,
        codec = %codec.capability.mime_type,
        ssrc = track.ssrc(),
        "receiving track"
    );
    subscriptions.open(
        key,
        kind,
        &codec.capability.mime_type,
        codec.capability.clock_rate,
        track.ssrc(),
    )
}

async fn read(subscriptions: Arc<Subscriptions>, track: Arc<TrackRemote>) {
    let mut feed = open(&subscriptions, &track);
    let mut buf = vec![0u8; READ_BUFFER];
    let mut msid_checked_at = Instant::now();
    let mut notified_at = Instant::now();
    loop {
        let packet = match track.read(&mut buf).await {
            Ok((packet, _)) => packet,
            Err(e) => {
                debug!(track_id = %feed.key.track_id, error = %e, "track ended");
                break;
            }
        };
        let now = Instant::now();
        if now.duration_since(msid_checked_at) >= MSID_CHECK_INTERVAL {
            msid_checked_at = now;
            if track.stream_id() != feed.key.publisher_id || track.id() != feed.key.track_id {
                subscriptions.close(&feed);
                feed = open(&subscriptions, &track);
            }
        }
        let news = feed.counters.lock().record(
            packet.header.sequence_number,
            packet.header.timestamp,
            &packet.payload,
            now,
        );
        if news || now.duration_since(notified_at) >= PROGRESS_NOTIFY_INTERVAL {
            notified_at = now;
            subscriptions.notify();
        }
    }
    subscriptions.close(&feed);
}
