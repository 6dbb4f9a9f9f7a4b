//! What the mux needs to know about a datagram before anyone else sees it: which protocol
//! it is (RFC 7983's first-byte ranges) and, for STUN, the few header fields and
//! attributes that route it. Read from the received bytes only, in place: nothing is
//! copied or allocated, and nothing past the datagram's length is looked at.

/// The protocols that share the media port, told apart by the first byte (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stun,
    Dtls,
    /// SRTP or SRTCP.
    Rtp,
    /// Anything else (ZRTP, TURN channels, junk): nothing on this port speaks it.
    Other,
}

pub fn classify(datagram: &[u8]) -> Kind {
    match datagram.first() {
        Some(0..=3) => Kind::Stun,
        Some(20..=63) => Kind::Dtls,
        Some(128..=191) => Kind::Rtp,
        _ => Kind::Other,
    }
}

const HEADER_LEN: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const METHOD_BINDING: u16 = 0x001;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_USE_CANDIDATE: u16 = 0x0025;

pub type TransactionId = [u8; 12];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

/// The parts of a STUN message that route it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stun<'a> {
    pub class: Class,
    pub binding: bool,
    pub transaction: TransactionId,
    /// USERNAME up to its `:`: for a check sent to us, our own ufrag.
    pub ufrag: Option<&'a str>,
    /// The controlling agent picked this pair (USE-CANDIDATE).
    pub use_candidate: bool,
}

impl Stun<'_> {
    /// A response (success or error) to one of the peer's requests.
    pub fn is_response(&self) -> bool {
        matches!(self.class, Class::Success | Class::Error)
    }
}

/// Parses the STUN header and walks the attributes, or `None` if `datagram` is not a
/// well-formed STUN message (wrong cookie, a length that does not fit, an attribute that
/// runs past the end).
pub fn parse(datagram: &[u8]) -> Option<Stun<'_>> {
    let header = datagram.get(..HEADER_LEN)?;
    let typ = u16::from_be_bytes([header[0], header[1]]);
    let body_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if typ & 0xC000 != 0 || header[4..8] != MAGIC_COOKIE || body_len % 4 != 0 {
        return None;
    }
    let mut body = datagram.get(HEADER_LEN..HEADER_LEN + body_len)?;
    let mut stun = Stun {
        class: class_of(typ),
        binding: method_of(typ) == METHOD_BINDING,
        transaction: header[8..20].try_into().ok()?,
        ufrag: None,
        use_candidate: false,
    };
    while !body.is_empty() {
        let attr_header = body.get(..4)?;
        let attr_type = u16::from_be_bytes([attr_header[0], attr_header[1]]);
        let len = usize::from(u16::from_be_bytes([attr_header[2], attr_header[3]]));
        let value = body.get(4..4 + len)?;
        match attr_type {
            ATTR_USERNAME => {
                let username = std::str::from_utf8(value).ok()?;
                stun.ufrag = username.split(':').next();
            }
            ATTR_USE_CANDIDATE => stun.use_candidate = true,
            _ => {}
        }
        let padded = (4 + len).div_ceil(4) * 4;
        body = body.get(padded..)?;
    }
    Some(stun)
}

/// The transaction id of a STUN response we are about to send, read from the header only.
pub fn response_transaction(datagram: &[u8]) -> Option<TransactionId> {
    let header = datagram.get(..HEADER_LEN)?;
    let typ = u16::from_be_bytes([header[0], header[1]]);
    if typ & 0xC000 != 0 || header[4..8] != MAGIC_COOKIE {
        return None;
    }
    match class_of(typ) {
        Class::Success | Class::Error => header[8..20].try_into().ok(),
        Class::Request | Class::Indication => None,
    }
}

fn class_of(typ: u16) -> Class {
    match ((typ >> 7) & 0b10) | ((typ >> 4) & 0b1) {
        0 => Class::Request,
        1 => Class::Indication,
        2 => Class::Success,
        _ => Class::Error,
    }
}

fn method_of(typ: u16) -> u16 {
    (typ & 0x000F) | ((typ >> 1) & 0x0070) | ((typ >> 2) & 0x0F80)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A STUN message with the given type and attributes (type, value), as bytes.
    pub fn message(typ: u16, transaction: TransactionId, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&typ.to_be_bytes());
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&transaction);
        m.extend_from_slice(&body);
        m
    }

    /// A binding request to `ufrag` (USERNAME `ufrag:peer`), nominating when `nominate`.
    pub fn binding_request(ufrag: &str, transaction: TransactionId, nominate: bool) -> Vec<u8> {
        let username = format!("{ufrag}:peer");
        let mut attrs: Vec<(u16, &[u8])> = vec![(ATTR_USERNAME, username.as_bytes())];
        if nominate {
            attrs.push((ATTR_USE_CANDIDATE, &[]));
        }
        attrs.push((0x8028, &[0, 0, 0, 0])); // FINGERPRINT, not checked here
        message(0x0001, transaction, &attrs)
    }

    pub fn binding_success(transaction: TransactionId) -> Vec<u8> {
        message(0x0101, transaction, &[(0x0020, &[0, 1, 0, 0, 0, 0, 0, 0])])
    }

    #[test]
    fn first_byte_tells_the_protocol() {
        assert_eq!(classify(&[0, 1]), Kind::Stun);
        assert_eq!(classify(&[22, 254, 253]), Kind::Dtls);
        assert_eq!(classify(&[0x80, 96]), Kind::Rtp);
        assert_eq!(classify(&[0xBF]), Kind::Rtp);
        assert_eq!(classify(&[64]), Kind::Other);
        assert_eq!(classify(&[0xFF]), Kind::Other);
        assert_eq!(classify(&[]), Kind::Other);
    }

    #[test]
    fn a_binding_request_gives_ufrag_transaction_and_nomination() {
        let m = binding_request("abcd", [7; 12], true);
        let stun = parse(&m).expect("parses");
        assert_eq!(stun.class, Class::Request);
        assert!(stun.binding);
        assert_eq!(stun.transaction, [7; 12]);
        assert_eq!(stun.ufrag, Some("abcd"));
        assert!(stun.use_candidate);
        assert!(
            !parse(&binding_request("abcd", [7; 12], false))
                .expect("parses")
                .use_candidate
        );
    }

    #[test]
    fn responses_are_recognised_on_the_way_out() {
        let success = binding_success([3; 12]);
        assert_eq!(response_transaction(&success), Some([3; 12]));
        let error = message(0x0111, [4; 12], &[]);
        assert_eq!(response_transaction(&error), Some([4; 12]));
        assert!(parse(&error).expect("parses").is_response());
        assert_eq!(
            response_transaction(&binding_request("x", [5; 12], false)),
            None
        );
        assert_eq!(response_transaction(&[0x80; 40]), None);
    }

    #[test]
    fn malformed_messages_are_refused_without_reading_past_the_end() {
        let good = binding_request("abcd", [1; 12], false);
        // Every truncation: a length field that promises more than arrived.
        for len in 0..good.len() {
            assert_eq!(parse(&good[..len]), None, "truncated to {len}");
        }
        let mut bad_cookie = good.clone();
        bad_cookie[4] ^= 1;
        assert_eq!(parse(&bad_cookie), None);
        // An attribute whose length runs past the message.
        let mut overrun = good.clone();
        overrun[HEADER_LEN + 3] = 200;
        assert_eq!(parse(&overrun), None);
        // A USERNAME that is not UTF-8.
        let not_utf8 = message(0x0001, [1; 12], &[(ATTR_USERNAME, &[0xFF, 0xFE])]);
        assert_eq!(parse(&not_utf8), None);
    }

    #[test]
    fn bytes_after_the_message_are_not_read() {
        // The buffer the socket reads into is bigger than the datagram: only the message's
        // own length counts, whatever follows it.
        let m = binding_request("abcd", [1; 12], false);
        let mut longer = m.clone();
        longer.extend_from_slice(&[0xAA; 64]);
        assert_eq!(parse(&longer), parse(&m));
        assert!(parse(&m).is_some());
    }
}
