//! Safari, as the server meets it: the offer Safari writes for the web client (a
//! constrained-baseline H.264 simulcast camera it can also send, among codecs the server does
//! not take), sent by a [`ShapedClient`] whose connection numbers everything the same way, then
//! the H.264 layers it promised from the loops in `media/`.
use std::path::PathBuf;

use roomcast_bots::BotConfig;
use serde_json::json;
use tokio::task::JoinHandle;

use super::shaped_client::{add_simulcast_h264, codec, Codecs, ShapedClient};

/// Safari 17 (WebKit's libwebrtc) offering the web client's two sending transceivers,
/// written from RFC 8829 (JSEP), RFC 8853 (simulcast) and the payload types and extension ids
/// Safari uses: Opus, RED, G.722, PCMU/PCMA, CN, telephone-event for audio; H.264 High
/// (640c1f) first, constrained baseline (42e01f), H.265, each with RTX, then RED and ULPFEC for
/// video; no VP8 (Safari on older iOS, or with VP8 turned off). `{…}` are this connection's
/// values: its BUNDLE group, each section's mid, ICE and DTLS values, candidates, and its
/// microphone's SSRC. The session's part comes first.
const SAFARI_SESSION: &str = "v=0\r
o=- 6954186925546018612 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
{bundle}\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS safari\r
";

/// The microphone's media section.
const SAFARI_AUDIO: &str = "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
{candidates}a=ice-ufrag:{ufrag}\r
a=ice-pwd:{pwd}\r
a=ice-options:trickle\r
a=fingerprint:{fingerprint}\r
a=setup:actpass\r
a=mid:{mid}\r
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=sendonly\r
a=msid:safari microphone\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=fmtp:63 111/111\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:13 CN/8000\r
a=rtpmap:110 telephone-event/48000\r
a=rtpmap:126 telephone-event/8000\r
a=ssrc:{audio_ssrc} cname:safari-cname\r
a=ssrc:{audio_ssrc} msid:safari microphone\r
";

/// The camera's media section.
const SAFARI_VIDEO: &str = "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 127 125 104\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:{ufrag}\r
a=ice-pwd:{pwd}\r
a=ice-options:trickle\r
a=fingerprint:{fingerprint}\r
a=setup:actpass\r
a=mid:{mid}\r
a=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r
a=extmap:13 urn:3gpp:video-orientation\r
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay\r
a=extmap:6 http://www.webrtc.org/experiments/rtp-hdrext/video-content-type\r
a=extmap:7 http://www.webrtc.org/experiments/rtp-hdrext/video-timing\r
a=extmap:8 http://www.webrtc.org/experiments/rtp-hdrext/color-space\r
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r
a=sendonly\r
a=msid:safari camera\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:96 H264/90000\r
a=rtcp-fb:96 goog-remb\r
a=rtcp-fb:96 transport-cc\r
a=rtcp-fb:96 ccm fir\r
a=rtcp-fb:96 nack\r
a=rtcp-fb:96 nack pli\r
a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtpmap:98 H264/90000\r
a=rtcp-fb:98 goog-remb\r
a=rtcp-fb:98 transport-cc\r
a=rtcp-fb:98 ccm fir\r
a=rtcp-fb:98 nack\r
a=rtcp-fb:98 nack pli\r
a=fmtp:98 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r
a=rtpmap:99 rtx/90000\r
a=fmtp:99 apt=98\r
a=rtpmap:100 H265/90000\r
a=rtcp-fb:100 goog-remb\r
a=rtcp-fb:100 transport-cc\r
a=rtcp-fb:100 ccm fir\r
a=rtcp-fb:100 nack\r
a=rtcp-fb:100 nack pli\r
a=fmtp:100 level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST\r
a=rtpmap:101 rtx/90000\r
a=fmtp:101 apt=100\r
a=rtpmap:127 red/90000\r
a=rtpmap:125 rtx/90000\r
a=fmtp:125 apt=127\r
a=rtpmap:104 ulpfec/90000\r
a=rid:q send\r
a=rid:h send\r
a=rid:f send\r
a=simulcast:send q;h;f\r
";

pub const H264_HIGH: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f";
pub const H264_BASELINE: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// The lines of `sdp`'s media section `mid`.
pub fn section<'a>(sdp: &'a str, mid: &str) -> Vec<&'a str> {
    sdp.split("\r\nm=")
        .skip(1)
        .map(|s| s.split("\r\n").collect::<Vec<_>>())
        .find(|lines| lines.contains(&format!("a=mid:{mid}").as_str()))
        .unwrap_or_else(|| panic!("no m-line with mid {mid} in\n{sdp}"))
}

/// `a=<key>:` values of one media section.
pub fn values<'a>(lines: &[&'a str], key: &str) -> Vec<&'a str> {
    let prefix = format!("a={key}:");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// The connection's own offer `own` as Safari writes it: its sending microphone and camera
/// sections and the session part in Safari's words, filled with `own`'s values; the sections it
/// receives on (from earlier server offers) as they are.
pub fn safari_offer(own: &str) -> String {
    let attr = |key: &str| {
        own.split("\r\n")
            .find_map(|l| l.strip_prefix(&format!("a={key}:")).map(str::to_owned))
            .unwrap_or_else(|| panic!("no a={key} in\n{own}"))
    };
    assert!(own.contains("a=candidate:"), "gathered candidates:\n{own}");
    let bundle = own
        .split("\r\n")
        .find(|l| l.starts_with("a=group:BUNDLE "))
        .expect("a BUNDLE group");
    let mut offer = SAFARI_SESSION.replace("{bundle}", bundle);
    for text in own.split("\r\nm=").skip(1) {
        let lines: Vec<&str> = text.split("\r\n").collect();
        let sends = lines.contains(&"a=sendonly");
        let template = match lines[0].split_whitespace().next() {
            Some("audio") if sends => SAFARI_AUDIO,
            Some("video") if sends => SAFARI_VIDEO,
            _ => {
                offer.push_str(&format!("m={}\r\n", text.trim_end_matches("\r\n")));
                continue;
            }
        };
        let candidates: String = lines
            .iter()
            .filter(|l| l.starts_with("a=candidate:"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        let ssrc = values(&lines, "ssrc")
            .first()
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or_default()
            .to_owned();
        offer.push_str(
            &template
                .replace("{mid}", values(&lines, "mid")[0])
                .replace("{candidates}", &candidates)
                .replace("{ufrag}", &attr("ice-ufrag"))
                .replace("{pwd}", &attr("ice-pwd"))
                .replace("{fingerprint}", &attr("fingerprint"))
                .replace("{audio_ssrc}", &ssrc),
        );
    }
    offer
}

/// What Safari's connection speaks: Opus; H.264 High (96) and constrained baseline (98).
pub fn codecs() -> Codecs {
    Codecs {
        audio: vec![codec(
            "audio/opus",
            48_000,
            2,
            "minptime=10;useinbandfec=1",
            111,
        )],
        video: vec![
            codec("video/H264", 90_000, 0, H264_HIGH, 96),
            codec("video/H264", 90_000, 0, H264_BASELINE, 98),
        ],
    }
}

/// A Safari that joined `room` and publishes its microphone (silent) and its camera as
/// simulcast H.264 layers q, h, f (320x180, 640x360, 1280x720).
pub struct Safari {
    pub client: ShapedClient,
    /// The offer as sent, and the server's answer.
    pub offer: String,
    pub answer: String,
    players: Vec<JoinHandle<()>>,
}

impl Safari {
    pub async fn publish(ws_url: &str, room: &str, name: &str) -> Safari {
        let client = ShapedClient::join(ws_url, room, name, codecs()).await;
        let loops = BotConfig::default_media_dir();
        let layer = |file: &str| -> PathBuf { loops.join(file) };
        let players = add_simulcast_h264(
            &client.pc,
            &codecs().video[1],
            &codecs().audio[0],
            &[
                ("q", &layer("h264-320x180.h264")),
                ("h", &layer("h264-640x360.h264")),
                ("f", &layer("h264-1280x720.h264")),
            ],
        )
        .await;
        let mut offer = String::new();
        let answer = client
            .publish(
                json!([{"mid": "0", "source": "microphone"}, {"mid": "1", "source": "camera"}]),
                |own| {
                    offer = safari_offer(own);
                    offer.clone()
                },
            )
            .await;
        Safari {
            client,
            offer,
            answer,
            players,
        }
    }

    pub async fn leave(self) {
        for player in &self.players {
            player.abort();
        }
        self.client.leave().await;
    }
}
