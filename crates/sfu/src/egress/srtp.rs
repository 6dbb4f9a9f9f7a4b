//! SRTP protection of the RTP the server sends, done in place so forwarding allocates
//! nothing: AEAD_AES_128_GCM (RFC 7714) and AES_CM_128_HMAC_SHA1_80 (RFC 3711), the two
//! profiles browsers offer. The session keys come from the DTLS handshake's master keys
//! through the RFC 3711 key derivation (with a key derivation rate of 0, as WebRTC uses).
use aes::cipher::{BlockEncrypt, InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper};
use aes::Aes128;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha1::Sha1;

type Aes128Ctr = StreamCipherCoreWrapper<ctr::CtrCore<Aes128, ctr::flavors::Ctr128BE>>;

/// RFC 3711 §4.3.1 labels.
const LABEL_ENCRYPTION: u8 = 0x00;
const LABEL_AUTH: u8 = 0x01;
const LABEL_SALT: u8 = 0x02;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpProfile {
    AeadAes128Gcm,
    Aes128CmHmacSha1_80,
}

impl SrtpProfile {
    pub fn master_salt_len(self) -> usize {
        match self {
            SrtpProfile::AeadAes128Gcm => 12,
            SrtpProfile::Aes128CmHmacSha1_80 => 14,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SrtpError {
    #[error("SRTP master key must be 16 bytes and the salt {expected} bytes")]
    KeyLength { expected: usize },
    #[error("SRTP encryption failed")]
    Encrypt,
}

/// Encrypts the outgoing RTP of one connection (all its SSRCs share the keys).
pub struct SrtpEncryptor {
    cipher: Cipher,
}

enum Cipher {
    Gcm {
        aead: Box<Aes128Gcm>,
        salt: [u8; 12],
    },
    CmSha1 {
        aes: Box<Aes128>,
        salt: [u8; 14],
        auth: Box<Hmac<Sha1>>,
    },
}

impl SrtpEncryptor {
    pub fn new(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<Self, SrtpError> {
        if master_key.len() != 16 || master_salt.len() != profile.master_salt_len() {
            return Err(SrtpError::KeyLength {
                expected: profile.master_salt_len(),
            });
        }
        let prf = Aes128::new_from_slice(master_key).map_err(|_| SrtpError::Encrypt)?;
        let mut session_key = [0u8; 16];
        derive(&prf, master_salt, LABEL_ENCRYPTION, &mut session_key);
        let cipher = match profile {
            SrtpProfile::AeadAes128Gcm => {
                let mut salt = [0u8; 12];
                derive(&prf, master_salt, LABEL_SALT, &mut salt);
                let aead =
                    Aes128Gcm::new_from_slice(&session_key).map_err(|_| SrtpError::Encrypt)?;
                Cipher::Gcm {
                    aead: Box::new(aead),
                    salt,
                }
            }
            SrtpProfile::Aes128CmHmacSha1_80 => {
                let mut salt = [0u8; 14];
                derive(&prf, master_salt, LABEL_SALT, &mut salt);
                let mut auth_key = [0u8; 20];
                derive(&prf, master_salt, LABEL_AUTH, &mut auth_key);
                let aes = Aes128::new_from_slice(&session_key).map_err(|_| SrtpError::Encrypt)?;
                let auth = <Hmac<Sha1> as Mac>::new_from_slice(&auth_key)
                    .map_err(|_| SrtpError::Encrypt)?;
                Cipher::CmSha1 {
                    aes: Box::new(aes),
                    salt,
                    auth: Box::new(auth),
                }
            }
        };
        Ok(SrtpEncryptor { cipher })
    }

    /// Bytes the protection adds after the payload.
    pub fn trailer_len(&self) -> usize {
        match self.cipher {
            Cipher::Gcm { .. } => 16,
            Cipher::CmSha1 { .. } => 10,
        }
    }

    /// Protects the RTP packet in `packet` (header of `header_len` bytes, then payload) in
    /// place and appends the tag. `roc` is the stream's rollover counter for `seq`.
    /// Allocates nothing when `packet` has room for the trailer.
    pub fn protect_rtp(
        &self,
        packet: &mut Vec<u8>,
        header_len: usize,
        ssrc: u32,
        seq: u16,
        roc: u32,
    ) -> Result<(), SrtpError> {
        if header_len > packet.len() {
            return Err(SrtpError::Encrypt);
        }
        match &self.cipher {
            Cipher::Gcm { aead, salt } => {
                // RFC 7714 §8.1: IV = (0x0000 || SSRC || ROC || SEQ) XOR salt.
                let mut iv = *salt;
                xor_be(&mut iv[2..6], ssrc);
                xor_be(&mut iv[6..10], roc);
                iv[10] ^= (seq >> 8) as u8;
                iv[11] ^= seq as u8;
                let (header, payload) = packet.split_at_mut(header_len);
                let tag = aead
                    .encrypt_in_place_detached(Nonce::from_slice(&iv), header, payload)
                    .map_err(|_| SrtpError::Encrypt)?;
                packet.extend_from_slice(&tag);
            }
            Cipher::CmSha1 { aes, salt, auth } => {
                // RFC 3711 §4.1.1: IV = (salt * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16).
                let mut iv = [0u8; 16];
                iv[..14].copy_from_slice(salt);
                xor_be(&mut iv[4..8], ssrc);
                xor_be(&mut iv[8..12], roc);
                iv[12] ^= (seq >> 8) as u8;
                iv[13] ^= seq as u8;
                let core = ctr::CtrCore::<Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(
                    (**aes).clone(),
                    &iv.into(),
                );
                let mut ctr = Aes128Ctr::from_core(core);
                ctr.apply_keystream(&mut packet[header_len..]);
                let mut mac = (**auth).clone();
                mac.update(packet);
                mac.update(&roc.to_be_bytes());
                let tag = mac.finalize().into_bytes();
                packet.extend_from_slice(&tag[..10]);
            }
        }
        Ok(())
    }
}

fn xor_be(dst: &mut [u8], value: u32) {
    for (d, s) in dst.iter_mut().zip(value.to_be_bytes()) {
        *d ^= s;
    }
}

/// RFC 3711 §4.3.3: the AES-CM PRF keyed with the master key, over the master salt with
/// the label at byte 7 (the key derivation rate is 0, so the index term is zero).
fn derive(prf: &Aes128, master_salt: &[u8], label: u8, out: &mut [u8]) {
    let mut x = [0u8; 16];
    x[..master_salt.len()].copy_from_slice(master_salt);
    x[7] ^= label;
    for (i, chunk) in out.chunks_mut(16).enumerate() {
        let mut block = x;
        block[14] = (i >> 8) as u8;
        block[15] = i as u8;
        let mut block = block.into();
        prf.encrypt_block(&mut block);
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// The rollover counter of one outgoing SSRC (RFC 3711 §3.3.1), from the sequence numbers
/// the stream sends, including late ones (retransmissions) from before a wrap.
#[derive(Debug, Default, Clone, Copy)]
pub struct RolloverCounter {
    highest: Option<u16>,
    roc: u32,
}

impl RolloverCounter {
    pub fn roc_for(&mut self, seq: u16) -> u32 {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            return self.roc;
        };
        let ahead = seq.wrapping_sub(highest);
        if ahead != 0 && ahead < 0x8000 {
            if seq < highest {
                self.roc = self.roc.wrapping_add(1);
            }
            self.highest = Some(seq);
            self.roc
        } else if seq > highest {
            // Older than the highest, from before the last wrap.
            self.roc.wrapping_sub(1)
        } else {
            self.roc
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use webrtc::srtp::context::Context;
    use webrtc::srtp::protection_profile::ProtectionProfile;
    use webrtc::util::Marshal;

    fn packet(seq: u16, payload_len: usize) -> (Vec<u8>, usize) {
        let mut header = rtp::header::Header {
            version: 2,
            payload_type: 96,
            sequence_number: seq,
            timestamp: 12345,
            ssrc: 0xDEAD_BEEF,
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

    /// What webrtc-rs (the receiving side of our bots, proven against Chrome) decrypts.
    fn round_trip(profile: SrtpProfile, theirs: ProtectionProfile, key: &[u8], salt: &[u8]) {
        let ours = SrtpEncryptor::new(profile, key, salt).expect("keys");
        let mut receiver = Context::new(key, salt, theirs, None, None).expect("context");
        let mut counter = RolloverCounter::default();
        // Across a wrap, so the rollover counter is exercised too.
        for seq in (65_530u16..=65_535).chain(0..5) {
            let (plain, header_len) = packet(seq, 900);
            let mut buf = plain.clone();
            buf.reserve(ours.trailer_len());
            let cap = buf.capacity();
            ours.protect_rtp(&mut buf, header_len, 0xDEAD_BEEF, seq, counter.roc_for(seq))
                .expect("protect");
            assert_eq!(buf.capacity(), cap, "no reallocation");
            assert_eq!(buf.len(), plain.len() + ours.trailer_len());
            assert_ne!(buf[header_len..plain.len()], plain[header_len..]);
            let decrypted = receiver.decrypt_rtp(&buf).expect("webrtc-rs decrypts it");
            assert_eq!(&decrypted[..], &plain[..], "seq {seq}");
        }
    }

    #[test]
    fn gcm_packets_decrypt_with_webrtc_rs() {
        round_trip(
            SrtpProfile::AeadAes128Gcm,
            ProtectionProfile::AeadAes128Gcm,
            &[7u8; 16],
            &[9u8; 12],
        );
    }

    #[test]
    fn cm_sha1_packets_decrypt_with_webrtc_rs() {
        round_trip(
            SrtpProfile::Aes128CmHmacSha1_80,
            ProtectionProfile::Aes128CmHmacSha1_80,
            &[1u8; 16],
            &[2u8; 14],
        );
    }

    #[test]
    fn rfc3711_key_derivation_test_vector() {
        // RFC 3711 Appendix B.3.
        let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let prf = Aes128::new_from_slice(&key).expect("key");
        let mut out = [0u8; 16];
        derive(&prf, &salt, LABEL_ENCRYPTION, &mut out);
        assert_eq!(out.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut salt_out = [0u8; 14];
        derive(&prf, &salt, LABEL_SALT, &mut salt_out);
        assert_eq!(salt_out.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    }

    #[test]
    fn rollover_counter_follows_wraps_and_late_packets() {
        let mut c = RolloverCounter::default();
        assert_eq!(c.roc_for(65_534), 0);
        assert_eq!(c.roc_for(65_535), 0);
        assert_eq!(c.roc_for(1), 1);
        assert_eq!(
            c.roc_for(65_533),
            0,
            "a retransmission from before the wrap"
        );
        assert_eq!(c.roc_for(2), 1);
    }

    #[test]
    fn wrong_key_lengths_are_refused() {
        assert!(SrtpEncryptor::new(SrtpProfile::AeadAes128Gcm, &[0; 16], &[0; 14]).is_err());
        assert!(SrtpEncryptor::new(SrtpProfile::Aes128CmHmacSha1_80, &[0; 15], &[0; 14]).is_err());
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }
}
