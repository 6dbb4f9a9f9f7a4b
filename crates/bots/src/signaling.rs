//! The WebSocket to the server: JSON text frames out, parsed `ServerMessage`s in.
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use roomcast_protocol::{ClientMessage, ServerMessage};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, warn};

use crate::layers::LayerDirectory;
use crate::message_log::MessageLog;
use crate::BotError;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) struct Signaling {
    sink: Mutex<Option<SplitSink<Socket, Message>>>,
    reader: std::sync::Mutex<JoinHandle<()>>,
    url: String,
    timeout: Duration,
    log: Arc<MessageLog>,
    inbox: mpsc::Sender<ServerMessage>,
    layers: Arc<LayerDirectory>,
}

impl Signaling {
    /// The server's WebSocket URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Connects and starts reading: every server message goes to `log`, then to `inbox`.
    /// `publisher_layers` is applied to `layers` before it is logged, so whoever sees it in
    /// the log also sees its effect.
    pub(crate) async fn connect(
        url: &str,
        timeout: Duration,
        log: Arc<MessageLog>,
        inbox: mpsc::Sender<ServerMessage>,
        layers: Arc<LayerDirectory>,
    ) -> Result<Self, BotError> {
        let socket = open(url, timeout).await?;
        let (sink, stream) = socket.split();
        let reader = tokio::spawn(read_frames(
            stream,
            Arc::clone(&log),
            inbox.clone(),
            Arc::clone(&layers),
        ));
        Ok(Signaling {
            sink: Mutex::new(Some(sink)),
            reader: std::sync::Mutex::new(reader),
            url: url.to_owned(),
            timeout,
            log,
            inbox,
            layers,
        })
    }

    /// Replaces the connection with a new one to the same URL (the old one is dropped).
    /// Server messages keep going to the same log and inbox.
    pub(crate) async fn reconnect(&self) -> Result<(), BotError> {
        self.drop_connection().await;
        let socket = open(&self.url, self.timeout).await?;
        let (sink, stream) = socket.split();
        self.log.reopen();
        let reader = tokio::spawn(read_frames(
            stream,
            Arc::clone(&self.log),
            self.inbox.clone(),
            Arc::clone(&self.layers),
        ));
        let old = std::mem::replace(
            &mut *self.reader.lock().unwrap_or_else(|e| e.into_inner()),
            reader,
        );
        old.abort();
        *self.sink.lock().await = Some(sink);
        Ok(())
    }

    pub(crate) async fn send(&self, message: &ClientMessage) -> Result<(), BotError> {
        let text = serde_json::to_string(message)
            .map_err(|e| BotError::Protocol(format!("cannot encode {message:?}: {e}")))?;
        self.send_text(text).await
    }

    /// Sends one text frame as is.
    pub(crate) async fn send_text(&self, text: String) -> Result<(), BotError> {
        let mut sink = self.sink.lock().await;
        let sink = sink.as_mut().ok_or(BotError::Closed)?;
        sink.send(Message::text(text)).await.map_err(|e| {
            debug!(error = %e, "signaling send failed");
            BotError::Closed
        })
    }

    /// Drops the connection without a close handshake, as a crashing client would.
    pub(crate) async fn drop_connection(&self) {
        self.reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort();
        self.sink.lock().await.take();
    }
}

impl Drop for Signaling {
    fn drop(&mut self) {
        self.reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort();
    }
}

async fn open(url: &str, timeout: Duration) -> Result<Socket, BotError> {
    let connect_error = |reason: String| BotError::Connect {
        url: url.to_owned(),
        reason,
    };
    let (socket, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| connect_error(format!("no WebSocket after {timeout:?}")))?
        .map_err(|e| connect_error(e.to_string()))?;
    Ok(socket)
}

async fn read_frames(
    mut stream: SplitStream<Socket>,
    log: Arc<MessageLog>,
    inbox: mpsc::Sender<ServerMessage>,
    layers: Arc<LayerDirectory>,
) {
    let mut close_code = None;
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(Message::Text(text)) => match serde_json::from_str::<ServerMessage>(&text) {
                Ok(message) => {
                    if let ServerMessage::PublisherLayers { mid, rids, .. } = &message {
                        layers.request(mid, rids);
                    }
                    log.push(message.clone());
                    // A closed inbox means the bot is shutting down; keep logging until then.
                    let _ = inbox.send(message).await;
                }
                Err(e) => {
                    let frame: String = text.chars().take(200).collect();
                    warn!(error = %e, %frame, "ignoring unknown server frame");
                }
            },
            Ok(Message::Close(frame)) => {
                close_code = frame.map(|f| u16::from(f.code));
                debug!(?close_code, "server closed the connection");
            }
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "signaling read failed");
                break;
            }
        }
    }
    log.mark_closed(close_code);
}
