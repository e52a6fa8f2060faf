//! What a link reads from and writes to: WebSocket halves, or an in-process virtual pair.
//!
//! The link driver only sees [`FrameSource`] and [`FrameSink`], so one driver (and one test
//! suite) serves real sockets and the virtual connector alike.

use std::future::Future;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage, Utf8Bytes};

pub use crate::error::TransportError;

/// A frame as the link sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame, as received (no copy: a reply's requester decodes it from the same bytes).
    Text(Text),
    /// A binary frame: read as text where the protocol says so (`binary text`), else refused.
    Binary(Vec<u8>),
    /// The peer closed, with its code and reason when it sent them.
    Close(Option<(u16, String)>),
}

/// The text of a frame: cheap to clone (fan-out sends one encoded frame to many links), and
/// handed to and from the WebSocket layer without a copy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Text(Utf8Bytes);

impl Text {
    /// The frame's text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Text(Utf8Bytes::from(text))
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Text(Utf8Bytes::from(text))
    }
}

impl TryFrom<Vec<u8>> for Text {
    type Error = std::string::FromUtf8Error;

    /// The bytes as text, without a copy, when they are UTF-8.
    fn try_from(bytes: Vec<u8>) -> Result<Self, Self::Error> {
        String::from_utf8(bytes).map(Text::from)
    }
}

/// The reading half of a connection.
pub trait FrameSource: Send + 'static {
    /// The next frame; `None` once the connection is gone.
    fn next_frame(&mut self) -> impl Future<Output = Option<Result<Frame, TransportError>>> + Send;
}

/// The writing half of a connection.
pub trait FrameSink: Send + 'static {
    /// Queues a text frame without flushing (write coalescing: flush once per batch).
    fn feed(&mut self, text: Text) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Writes everything queued.
    fn flush(&mut self) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Sends a close frame with a code and reason, then stops.
    fn close(&mut self, code: u16, reason: String) -> impl Future<Output = ()> + Send;
}

/// The reading half of a WebSocket.
pub struct WsSource<S>(pub(crate) futures_util::stream::SplitStream<WebSocketStream<S>>);

/// The writing half of a WebSocket.
pub struct WsSink<S>(pub(crate) futures_util::stream::SplitSink<WebSocketStream<S>, WsMessage>);

/// Splits a WebSocket into the halves a link drives.
#[doc(hidden)] // For benchmarks of the link over custom sockets; not public API.
pub fn split_ws<S>(ws: WebSocketStream<S>) -> (WsSource<S>, WsSink<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, source) = ws.split();
    (WsSource(source), WsSink(sink))
}

fn lost(e: WsError) -> TransportError {
    match e {
        WsError::Capacity(_) => TransportError::TooLarge,
        WsError::Utf8(_) => TransportError::NotUtf8,
        // A protocol error that is only the peer vanishing is a lost connection.
        WsError::Protocol(
            tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => TransportError::Lost(e.to_string()),
        WsError::Protocol(p) => TransportError::Protocol(p.to_string()),
        other => TransportError::Lost(other.to_string()),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> FrameSource for WsSource<S> {
    async fn next_frame(&mut self) -> Option<Result<Frame, TransportError>> {
        loop {
            let message = match self.0.next().await? {
                Ok(message) => message,
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return None,
                Err(e) => return Some(Err(lost(e))),
            };
            return Some(Ok(match message {
                WsMessage::Text(text) => Frame::Text(Text(text)),
                WsMessage::Binary(bytes) => Frame::Binary(Vec::from(bytes)),
                WsMessage::Close(frame) => {
                    Frame::Close(frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned())))
                }
                // tungstenite answers pings itself; neither carries protocol data.
                WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => continue,
            }));
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> FrameSink for WsSink<S> {
    async fn feed(&mut self, text: Text) -> Result<(), TransportError> {
        self.0.feed(WsMessage::Text(text.0)).await.map_err(lost)
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.0.flush().await.map_err(lost)
    }

    async fn close(&mut self, code: u16, reason: String) {
        let frame = CloseFrame {
            code: WsCloseCode::from(code),
            reason: reason.into(),
        };
        // The peer may already be gone; closing is best effort.
        let _ = self.0.send(WsMessage::Close(Some(frame))).await;
        let _ = self.0.close().await;
    }
}

/// One end of an in-process pair: frames cross through bounded channels.
pub struct VirtualSource(mpsc::Receiver<Frame>);

/// The writing end of an in-process pair.
pub struct VirtualSink {
    tx: mpsc::Sender<Frame>,
    batch: Vec<Text>,
}

/// Two connected ends: what one side's sink writes, the other side's source reads.
pub fn virtual_pair(
    capacity: usize,
) -> ((VirtualSource, VirtualSink), (VirtualSource, VirtualSink)) {
    let (a_tx, a_rx) = mpsc::channel(capacity.max(1));
    let (b_tx, b_rx) = mpsc::channel(capacity.max(1));
    (
        (
            VirtualSource(a_rx),
            VirtualSink {
                tx: b_tx,
                batch: Vec::new(),
            },
        ),
        (
            VirtualSource(b_rx),
            VirtualSink {
                tx: a_tx,
                batch: Vec::new(),
            },
        ),
    )
}

impl FrameSource for VirtualSource {
    async fn next_frame(&mut self) -> Option<Result<Frame, TransportError>> {
        self.0.recv().await.map(Ok)
    }
}

impl FrameSink for VirtualSink {
    async fn feed(&mut self, text: Text) -> Result<(), TransportError> {
        self.batch.push(text);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        for text in self.batch.drain(..) {
            self.tx
                .send(Frame::Text(text))
                .await
                .map_err(|_| TransportError::Lost("the other end is gone".into()))?;
        }
        Ok(())
    }

    async fn close(&mut self, code: u16, reason: String) {
        let _ = self.flush().await;
        let _ = self.tx.send(Frame::Close(Some((code, reason)))).await;
    }
}
