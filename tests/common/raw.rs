//! A bare WebSocket client for messages a bot would never send (e.g. before `join`).
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Raw {
    socket: Mutex<Socket>,
}

pub async fn connect(url: &str) -> Raw {
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    Raw {
        socket: Mutex::new(socket),
    }
}

impl Raw {
    /// Sends `frame` and expects the next server message to be an error with `code`.
    pub async fn expect_error(&self, frame: &str, code: &str) {
        let mut s = self.socket.lock().await;
        s.send(Message::Text(frame.into())).await.expect("sent");
        let reply = tokio::time::timeout(super::MESSAGE_TIMEOUT, async {
            loop {
                match s.next().await {
                    Some(Ok(Message::Text(t))) => break t.to_string(),
                    Some(Ok(_)) => continue,
                    other => panic!("connection ended instead of an error: {other:?}"),
                }
            }
        })
        .await
        .expect("a reply in time");
        let v: serde_json::Value = serde_json::from_str(&reply).expect("JSON reply");
        assert_eq!(v["type"], "error", "for {frame}: {reply}");
        assert_eq!(v["code"], code, "for {frame}: {reply}");
    }
}
