use super::*;
use bytes::Bytes;
use webrtc::srtp::context::Context;
use webrtc::srtp::protection_profile::ProtectionProfile;
use webrtc::util::Marshal;

const SSRC: u32 = 0xDEAD_BEEF;

fn packet(seq: u16, payload_len: usize) -> (Vec<u8>, usize) {
    let mut header = rtp::header::Header {
        version: 2,
        payload_type: 96,
        sequence_number: seq,
        timestamp: 12345,
        ssrc: SSRC,
        ..Default::default()
    };
    header
        .set_extension(4, Bytes::from_static(b"1"))
        .expect("valid extension");
    let p = rtp::packet::Packet {
        header,
        payload: Bytes::from((0..payload_len).map(|i| i as u8).collect::<Vec<_>>()),
    };
    let raw = p.marshal().expect("marshal").to_vec();
    let header_len = raw.len() - payload_len;
    (raw, header_len)
}

/// A receiver report from `ssrc` about one source, as the rtcp crate writes it.
fn rtcp_packet(ssrc: u32) -> Vec<u8> {
    let report = rtcp::receiver_report::ReceiverReport {
        ssrc,
        reports: vec![rtcp::reception_report::ReceptionReport {
            ssrc: 42,
            fraction_lost: 7,
            total_lost: 100,
            last_sequence_number: 5000,
            jitter: 3,
            last_sender_report: 9,
            delay: 11,
        }],
        ..Default::default()
    };
    report.marshal().expect("marshal").to_vec()
}

struct Profiles {
    ours: SrtpProfile,
    theirs: ProtectionProfile,
    key: [u8; 16],
    salt: Vec<u8>,
}

fn both_profiles() -> [Profiles; 2] {
    [
        Profiles {
            ours: SrtpProfile::AeadAes128Gcm,
            theirs: ProtectionProfile::AeadAes128Gcm,
            key: [7; 16],
            salt: vec![9; 12],
        },
        Profiles {
            ours: SrtpProfile::Aes128CmHmacSha1_80,
            theirs: ProtectionProfile::Aes128CmHmacSha1_80,
            key: [1; 16],
            salt: vec![2; 14],
        },
    ]
}

impl Profiles {
    fn session(&self) -> SrtpSession {
        SrtpSession::new(self.ours, &self.key, &self.salt).expect("keys")
    }

    fn webrtc_rs(&self) -> Context {
        Context::new(&self.key, &self.salt, self.theirs, None, None).expect("context")
    }
}

/// Sequence numbers across a wrap, so the rollover counter is exercised both ways.
fn across_a_wrap() -> impl Iterator<Item = u16> {
    (65_530u16..=65_535).chain(0..5)
}

#[test]
fn webrtc_rs_decrypts_our_rtp() {
    for p in both_profiles() {
        let ours = p.session();
        let mut receiver = p.webrtc_rs();
        let mut counter = RolloverCounter::default();
        for seq in across_a_wrap() {
            let (plain, header_len) = packet(seq, 900);
            let mut buf = plain.clone();
            buf.reserve(ours.trailer_len());
            let cap = buf.capacity();
            ours.protect_rtp(&mut buf, header_len, SSRC, seq, counter.roc_for(seq))
                .expect("protect");
            assert_eq!(buf.capacity(), cap, "no reallocation");
            assert_eq!(buf.len(), plain.len() + ours.trailer_len());
            assert_ne!(buf[header_len..plain.len()], plain[header_len..]);
            let decrypted = receiver.decrypt_rtp(&buf).expect("webrtc-rs decrypts it");
            assert_eq!(&decrypted[..], &plain[..], "{:?} seq {seq}", p.ours);
        }
    }
}

#[test]
fn we_decrypt_webrtc_rs_rtp_across_a_wrap_and_refuse_replays() {
    for p in both_profiles() {
        let ours = p.session();
        let mut sender = p.webrtc_rs();
        let mut index = RtpIndex::default();
        let mut sent = Vec::new();
        for seq in across_a_wrap() {
            let (plain, header_len) = packet(seq, 300);
            let protected = sender.encrypt_rtp(&plain).expect("encrypt").to_vec();
            let mut buf = protected.clone();
            let i = index.estimate(seq).expect("fresh");
            let len = ours
                .unprotect_rtp(&mut buf, header_len, SSRC, seq, index::roc_of(i))
                .expect("authentic");
            index.accept(i);
            assert_eq!(&buf[..len], &plain[..], "{:?} seq {seq}", p.ours);
            sent.push(protected);
        }
        assert_eq!(index::roc_of(index.highest().expect("some")), 1);
        for seq in across_a_wrap() {
            assert_eq!(index.estimate(seq), Err(index::Refused::Replayed));
        }
    }
}

#[test]
fn a_damaged_or_forged_packet_is_refused_and_left_encrypted() {
    for p in both_profiles() {
        let ours = p.session();
        let mut sender = p.webrtc_rs();
        let (plain, header_len) = packet(100, 200);
        let protected = sender.encrypt_rtp(&plain).expect("encrypt").to_vec();
        for flip in [3, header_len + 10, protected.len() - 1] {
            let mut buf = protected.clone();
            buf[flip] ^= 0x40;
            let before = buf.clone();
            assert_eq!(
                ours.unprotect_rtp(&mut buf, header_len, SSRC, 100, 0),
                Err(SrtpError::Auth),
                "{:?} byte {flip}",
                p.ours
            );
            assert_eq!(buf, before, "nothing decrypted");
        }
        let mut wrong_roc = protected.clone();
        assert_eq!(
            ours.unprotect_rtp(&mut wrong_roc, header_len, SSRC, 100, 1),
            Err(SrtpError::Auth)
        );
        let mut short = protected[..header_len + 3].to_vec();
        assert_eq!(
            ours.unprotect_rtp(&mut short, header_len, SSRC, 100, 0),
            Err(SrtpError::TooShort)
        );
    }
}

#[test]
fn srtcp_both_ways_with_webrtc_rs() {
    for p in both_profiles() {
        let ours = p.session();
        let mut theirs = p.webrtc_rs();
        for index in [1u32, 2, 70_000, 0x7fff_ffff] {
            let plain = rtcp_packet(0x1234);
            let mut buf = plain.clone();
            ours.protect_rtcp(&mut buf, index).expect("protect");
            assert_eq!(buf.len(), plain.len() + ours.rtcp_trailer_len());
            assert_eq!(ours.rtcp_index(&buf), Some((0x1234, index)));
            let decrypted = theirs.decrypt_rtcp(&buf).expect("webrtc-rs decrypts it");
            assert_eq!(&decrypted[..], &plain[..], "{:?} index {index}", p.ours);
        }
        for _ in 0..3 {
            let plain = rtcp_packet(0x5678);
            let mut buf = theirs.encrypt_rtcp(&plain).expect("encrypt").to_vec();
            let (ssrc, _) = ours.rtcp_index(&buf).expect("an index");
            assert_eq!(ssrc, 0x5678);
            let len = ours.unprotect_rtcp(&mut buf).expect("authentic");
            assert_eq!(&buf[..len], &plain[..], "{:?}", p.ours);
        }
        let mut forged = theirs
            .encrypt_rtcp(&rtcp_packet(1))
            .expect("encrypt")
            .to_vec();
        forged[10] ^= 1;
        assert_eq!(ours.unprotect_rtcp(&mut forged), Err(SrtpError::Auth));
        assert_eq!(
            ours.unprotect_rtcp(&mut [0u8; 12]),
            Err(SrtpError::TooShort)
        );
    }
}

/// The session keys of RFC 7714 §16: key 00..0f, salt "Quid pro quo".
fn rfc7714_session() -> SrtpSession {
    let key: [u8; 16] = std::array::from_fn(|i| i as u8);
    let salt: [u8; 12] = hex("517569642070726f2071756f")
        .try_into()
        .expect("12 bytes");
    SrtpSession {
        rtp: Cipher::gcm(&key, salt).expect("key"),
        rtcp: Cipher::gcm(&key, salt).expect("key"),
    }
}

#[test]
fn rfc7714_srtp_test_vector() {
    let plain = hex(concat!(
        "8040f17b8041f8d35501a0b247616c6c696120657374206f6d6e6973206469",
        "7669736120696e207061727465732074726573"
    ));
    let protected = hex(concat!(
        "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd5",
        "0d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce"
    ));
    let session = rfc7714_session();
    let mut buf = plain.clone();
    session
        .protect_rtp(&mut buf, 12, 0x5501_a0b2, 0xf17b, 0)
        .expect("protect");
    assert_eq!(buf, protected);
    let len = session
        .unprotect_rtp(&mut buf, 12, 0x5501_a0b2, 0xf17b, 0)
        .expect("authentic");
    assert_eq!(&buf[..len], &plain[..]);
}

#[test]
fn rfc7714_srtcp_test_vector() {
    let plain = hex(concat!(
        "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61",
        "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef"
    ));
    let protected = hex(concat!(
        "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32d",
        "c676a5f1730d6fda4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf872",
        "45d9eade800005d4"
    ));
    let session = rfc7714_session();
    let mut buf = plain.clone();
    session.protect_rtcp(&mut buf, 0x5d4).expect("protect");
    assert_eq!(buf, protected);
    let len = session.unprotect_rtcp(&mut buf).expect("authentic");
    assert_eq!(&buf[..len], &plain[..]);
}

#[test]
fn rfc3711_aes_cm_keystream_test_vector() {
    // RFC 3711 Appendix B.2: session key and salt, SSRC and index zero.
    let key: [u8; 16] = hex("2B7E151628AED2A6ABF7158809CF4F3C")
        .try_into()
        .expect("16 bytes");
    let salt: [u8; 14] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")
        .try_into()
        .expect("14 bytes");
    let aes = Aes128::new_from_slice(&key).expect("key");
    let mut keystream = [0u8; 48];
    ctr(&aes, &salt, 0, 0, 0).apply_keystream(&mut keystream);
    assert_eq!(
        keystream.to_vec(),
        hex(concat!(
            "E03EAD0935C95E80E166B16DD92B4EB4",
            "D23513162B02D0F72A43A2FE4A5F97AB",
            "41E95B3BB0A2E8DD477901E4FCA894C0"
        ))
    );
}

#[test]
fn rfc3711_key_derivation_test_vector() {
    // RFC 3711 Appendix B.3.
    let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
    let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
    let prf = Aes128::new_from_slice(&key).expect("key");
    let mut out = [0u8; 16];
    derive(&prf, &salt, LABEL_RTP_ENCRYPTION, &mut out);
    assert_eq!(out.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut salt_out = [0u8; 14];
    derive(&prf, &salt, LABEL_RTP_SALT, &mut salt_out);
    assert_eq!(salt_out.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
}

#[test]
fn wrong_key_lengths_are_refused() {
    assert!(SrtpSession::new(SrtpProfile::AeadAes128Gcm, &[0; 16], &[0; 14]).is_err());
    assert!(SrtpSession::new(SrtpProfile::Aes128CmHmacSha1_80, &[0; 15], &[0; 14]).is_err());
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}
