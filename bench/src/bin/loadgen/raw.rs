//! Pieces of the hand-written tokio-tungstenite baselines.

use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The WebSocket settings the runtime uses (`protolink::ws::WsLimits::default()`), so the
/// baselines pay the same in the WebSocket layer. `read_buffer` is tungstenite's read buffer:
/// `None` keeps tungstenite's default (128 KiB), as the runtime does.
pub(crate) fn ws_config(read_buffer: Option<usize>) -> WebSocketConfig {
    let max_message = 16 << 20;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
        .write_buffer_size(64 << 10)
        .max_write_buffer_size((8 << 20usize).max((64 << 10) + max_message));
    match read_buffer {
        Some(size) => config.read_buffer_size(size),
        None => config,
    }
}

/// A lean client's connection.
pub(crate) type ClientWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a lean client connection (64 KiB read buffer, no Nagle delay).
pub(crate) async fn dial(url: &str) -> crate::proc::Result<ClientWs> {
    dial_with(url, 64 << 10).await
}

/// Opens a lean client connection with a read buffer of `read_buffer` bytes.
pub(crate) async fn dial_with(url: &str, read_buffer: usize) -> crate::proc::Result<ClientWs> {
    let config = ws_config(Some(read_buffer));
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true).await?;
    Ok(ws)
}

/// The runtime's writer, by hand: feeds every frame that is ready, then flushes once.
pub(crate) async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut rx: mpsc::Receiver<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(first) = rx.recv().await {
        if sink.feed(Message::text(first)).await.is_err() {
            return;
        }
        while let Ok(next) = rx.try_recv() {
            if sink.feed(Message::text(next)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

/// The runtime's default send queue.
pub(crate) const SEND_QUEUE: usize = 1024;

/// Whether `s` is a snowflake (the definition's `pattern "^[0-9]+$"`).
pub(crate) fn snowflake(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The checks `litecord_example` declares on a guild (what the runtime validates on a reply).
pub(crate) fn valid_guild(guild: &protolink_protocols::litecord_example::Guild) -> bool {
    snowflake(&guild.id)
        && snowflake(&guild.owner_id)
        && (2..=100).contains(&guild.name.chars().count())
}
