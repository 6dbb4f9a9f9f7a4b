//! roomcast patch: a server configured with `insecure_skip_verify_hello` answers the first
//! ClientHello with its ServerHello flight, and the handshake completes as with the cookie.
use std::sync::Mutex as StdMutex;

use async_trait::async_trait;
use util::conn::conn_pipe::pipe;
use util::KeyingMaterialExporter;

use super::*;
use crate::content::ContentType;
use crate::crypto::Certificate;

/// A conn that records the handshake message types of what it sends.
struct Recording {
    inner: Arc<dyn util::Conn + Send + Sync>,
    sent: StdMutex<Vec<u8>>,
}

#[async_trait]
impl util::Conn for Recording {
    async fn connect(&self, addr: SocketAddr) -> util::Result<()> {
        self.inner.connect(addr).await
    }
    async fn recv(&self, buf: &mut [u8]) -> util::Result<usize> {
        self.inner.recv(buf).await
    }
    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        self.inner.recv_from(buf).await
    }
    async fn send(&self, buf: &[u8]) -> util::Result<usize> {
        // A handshake record (content type 22) in epoch 0 starts its body with the type.
        if buf.len() > 13 && buf[0] == ContentType::Handshake as u8 && buf[3..5] == [0, 0] {
            self.sent.lock().unwrap().push(buf[13]);
        }
        self.inner.send(buf).await
    }
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        self.inner.send_to(buf, target).await
    }
    fn local_addr(&self) -> util::Result<SocketAddr> {
        self.inner.local_addr()
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }
    async fn close(&self) -> util::Result<()> {
        self.inner.close().await
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

const HELLO_VERIFY_REQUEST: u8 = 3;
const SERVER_HELLO: u8 = 2;

async fn handshake(skip: bool) -> Vec<u8> {
    let (a, b) = pipe();
    let recording = Arc::new(Recording {
        inner: Arc::new(b),
        sent: StdMutex::new(Vec::new()),
    });
    let client = tokio::spawn(async move {
        let cfg = Config {
            certificates: vec![Certificate::generate_self_signed(vec!["c".to_owned()]).unwrap()],
            srtp_protection_profiles: vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80],
            insecure_skip_verify: true,
            ..Default::default()
        };
        DTLSConn::new(Arc::new(a), cfg, true, None).await.unwrap()
    });
    let cfg = Config {
        certificates: vec![Certificate::generate_self_signed(vec!["s".to_owned()]).unwrap()],
        srtp_protection_profiles: vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80],
        insecure_skip_verify_hello: skip,
        ..Default::default()
    };
    let conn: Arc<dyn util::Conn + Send + Sync> = recording.clone();
    let server = DTLSConn::new(conn, cfg, false, None).await.unwrap();
    let client = client.await.unwrap();

    // Both ends hold the same keys, and data flows.
    let label = "EXTRACTOR-dtls_srtp";
    let server_key = server
        .connection_state()
        .await
        .export_keying_material(label, &[], 30)
        .await
        .unwrap();
    let client_key = client
        .connection_state()
        .await
        .export_keying_material(label, &[], 30)
        .await
        .unwrap();
    assert_eq!(server_key, client_key);
    client.write(b"hello", None).await.unwrap();
    let mut buf = [0u8; 16];
    let n = server.read(&mut buf, None).await.unwrap();
    assert_eq!(&buf[..n], b"hello");
    let sent = recording.sent.lock().unwrap().clone();
    sent
}

#[tokio::test]
async fn a_server_that_skips_hello_verify_answers_the_first_client_hello() {
    let sent = handshake(true).await;
    assert_eq!(sent.first(), Some(&SERVER_HELLO), "server sent {sent:?}");
    assert!(!sent.contains(&HELLO_VERIFY_REQUEST), "server sent {sent:?}");
}

#[tokio::test]
async fn by_default_the_server_asks_for_a_cookie_first() {
    let sent = handshake(false).await;
    assert_eq!(sent.first(), Some(&HELLO_VERIFY_REQUEST), "server sent {sent:?}");
}
