//! The Skynet reference server and client commands, built only on the generated `skynet`
//! bindings, with fan-out through a [`Broker`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use protolink::broker::{Broker, LocalBroker, PublishError, SubscriberId};
use protolink::link::encode_frame;
use protolink::ws::{Backoff, WsServer, connect};
use protolink::{Link, RemoteError, Session};
use protolink_protocols::skynet::{self as sk, Channel, ClientHandler, ServerHandler};
use protolink_redis::{CappedList, RedisBroker, RedisConfig};

use crate::output::{Printer, serve_until_signal, shutdown_signal};

/// The message log, newest first, with each entry's size as its event frame.
#[derive(Default)]
pub(crate) struct Log {
    entries: VecDeque<(sk::LogEntry, usize)>,
    bytes: usize,
}

/// How much of a `log` reply may be entries: the runtime's largest message, less room for the
/// envelope.
const LOG_REPLY_BYTES: usize = (16 << 20) - 1024;

/// Where the message log lives: in this process, or in Redis, shared by every server there.
pub(crate) enum MessageLog {
    /// The log of this process.
    Local(Mutex<Log>),
    /// A capped list in Redis (`LPUSH` + `LTRIM` to `--log-size`), each entry a `LogEntry` as JSON.
    Shared(CappedList),
}

/// What every connection shares: the broker and the message log.
pub(crate) struct Hub<B> {
    broker: B,
    log: MessageLog,
    log_size: usize,
    log_bytes: usize,
    next_subscriber: AtomicU64,
    next_message: AtomicU64,
    /// Starts every message id: makes them unique across restarts (the start time) and, with a
    /// broker spanning processes, across the processes (each one's node id too).
    id_prefix: String,
}

impl<B: Broker> Hub<B> {
    /// A hub keeping at most `log_size` messages and `log_bytes` bytes of them in its log;
    /// `node` is this process's id among the processes sharing a broker, if any.
    pub(crate) fn new(
        broker: B,
        log: MessageLog,
        log_size: usize,
        log_bytes: usize,
        node: Option<u64>,
    ) -> Self {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Hub {
            broker,
            log,
            log_size,
            log_bytes,
            next_subscriber: AtomicU64::new(1),
            next_message: AtomicU64::new(0),
            id_prefix: match node {
                None => format!("{epoch:x}"),
                Some(node) => format!("{epoch:x}{node:016x}"),
            },
        }
    }

    /// A hub with its log in this process.
    pub(crate) fn local(broker: B, log_size: usize, log_bytes: usize) -> Self {
        Hub::new(
            broker,
            MessageLog::Local(Mutex::new(Log::default())),
            log_size,
            log_bytes,
            None,
        )
    }
}

impl Log {
    /// Adds the newest entry; the oldest go first, by count and by bytes.
    fn push(&mut self, entry: sk::LogEntry, size: usize, log_size: usize, log_bytes: usize) {
        self.entries.push_front((entry, size));
        self.bytes += size;
        while self.entries.len() > log_size || self.bytes > log_bytes {
            let Some((_, size)) = self.entries.pop_back() else {
                break;
            };
            self.bytes -= size;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A failed publish as Skynet words errors.
fn broker_error(e: PublishError) -> RemoteError {
    RemoteError::new(format!("Error: {e}"))
}

/// A channel's broker topic: its JSON text, so `42` and `"42"` stay apart.
fn topic(channel: &Channel) -> String {
    serde_json::to_string(channel).unwrap_or_default()
}

/// How the real server prints a channel in its errors (JavaScript's string conversion).
fn shown(channel: &Channel) -> String {
    match channel {
        Channel::String(s) => s.clone(),
        Channel::Int(n) => n.to_string(),
        Channel::Float(x) => x.to_string(),
    }
}

/// A `log` bound as the real server reads it: `message.start || default`, then `slice`'s
/// conversion to an integer (`"1"` is 1, `1.5` is 1, what is not a number is 0).
fn js_index(value: Option<&serde_json::Value>, default: i64) -> i64 {
    use serde_json::Value;
    fn number(text: &str) -> f64 {
        let text = text.trim();
        if text.is_empty() {
            return 0.0;
        }
        let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"));
        match hex {
            Some(digits) => i64::from_str_radix(digits, 16).map_or(f64::NAN, |n| n as f64),
            None => text.parse::<f64>().unwrap_or(f64::NAN),
        }
    }
    let n = match value {
        None | Some(Value::Null | Value::Bool(false)) => return default,
        Some(Value::Bool(true)) => 1.0,
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) if s.is_empty() => return default,
        Some(Value::String(s)) => number(s),
        // `[x]` converts through its one element's text; any other array or object is NaN.
        Some(Value::Array(items)) => match items.as_slice() {
            [] => 0.0,
            [Value::String(s)] => number(s),
            [Value::Number(n)] => n.as_f64().unwrap_or(0.0),
            _ => f64::NAN,
        },
        Some(Value::Object(_)) => f64::NAN,
    };
    if n == 0.0 || n.is_nan() {
        // Falsy (0, NaN) takes the default, as `||` does; `[]` and `"0"` are truthy but 0.
        return if matches!(value, Some(Value::Number(_))) {
            default
        } else {
            0
        };
    }
    // `as` saturates: infinities become the ends of the range, as slice clamps them.
    n.trunc() as i64
}

/// One connection.
pub(crate) struct Connection<B: Broker> {
    hub: Arc<Hub<B>>,
    link: Link<sk::Server>,
    id: SubscriberId,
    channels: Mutex<Vec<Channel>>,
}

impl<B: Broker> Connection<B> {
    fn channels(&self) -> std::sync::MutexGuard<'_, Vec<Channel>> {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<B: Broker> Drop for Connection<B> {
    fn drop(&mut self) {
        self.hub.broker.unsubscribe_all(self.id);
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `Array.prototype.slice` bounds: negative counts from the end, everything clamped.
fn slice_bounds(len: usize, start: i64, end: i64) -> (usize, usize) {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let clamp = |i: i64| -> usize {
        let i = if i < 0 {
            (len_i + i).max(0)
        } else {
            i.min(len_i)
        };
        usize::try_from(i).unwrap_or(0)
    };
    let (s, e) = (clamp(start), clamp(end));
    (s, e.max(s))
}

impl<B: Broker> ServerHandler for Connection<B> {
    async fn open(&self, request: sk::Open) -> Result<sk::OpenReply, RemoteError> {
        let topic = topic(&request.channel);
        let channels = {
            let mut channels = self.channels();
            if !channels.contains(&request.channel) {
                let link: Arc<dyn protolink::broker::Deliver> = Arc::new(self.link.clone());
                self.hub.broker.subscribe(&topic, self.id, link);
                channels.push(request.channel);
            }
            channels.clone()
        };
        // Across processes, the channel is open once every server's messages reach it.
        self.hub.broker.subscribed(&topic).await;
        Ok(sk::OpenReply { channels })
    }

    async fn close_channel(
        &self,
        request: sk::CloseChannel,
    ) -> Result<sk::CloseChannelReply, RemoteError> {
        let mut channels = self.channels();
        let Some(at) = channels.iter().position(|c| *c == request.channel) else {
            return Err(RemoteError::new(format!(
                "Error: Channel {} not open.",
                shown(&request.channel)
            )));
        };
        channels.remove(at);
        self.hub
            .broker
            .unsubscribe(&topic(&request.channel), self.id);
        Ok(sk::CloseChannelReply {
            channels: channels.clone(),
        })
    }

    // Anyone may send on any channel, opened or not, as on the real server.
    async fn message(&self, request: sk::Message) -> Result<sk::SentMessage, RemoteError> {
        let n = self.hub.next_message.fetch_add(1, Ordering::Relaxed);
        let sent = sk::SentMessage {
            channel: request.channel,
            message: request.message,
            id: format!("{}{n:08x}", self.hub.id_prefix),
            time: now_ms(),
            extra: request.extra,
        };
        // Encoded once, delivered to every other listener of the channel or of `*`.
        let frame = encode_frame::<sk::Server, _>(&sk::MessageEvent(sent.clone()))
            .map_err(|e| RemoteError::new(format!("Error: {e}")))?;
        let entry = sk::LogEntry {
            r#type: Some("message".to_owned()),
            channel: sent.channel.clone(),
            message: sent.message.clone(),
            id: sent.id.clone(),
            time: sent.time,
            extra: sent.extra.clone(),
        };
        let text;
        let logged = match &self.hub.log {
            MessageLog::Local(log) => {
                lock(log).push(entry, frame.len(), self.hub.log_size, self.hub.log_bytes);
                None
            }
            MessageLog::Shared(list) => {
                text = serde_json::to_string(&entry)
                    .map_err(|e| RemoteError::new(format!("Error: {e}")))?;
                Some(list.push(&text))
            }
        };
        let channel_topic = topic(&sent.channel);
        let everything = topic(&Channel::String("*".to_owned()));
        let topics = [channel_topic.as_str(), everything.as_str()];
        // Both are queued before either is awaited, so they keep the order of the messages.
        let published = self.hub.broker.publish(&topics, &frame, Some(self.id));
        published.await.map_err(broker_error)?;
        // The message went out: the sender is told so even if it could not be logged.
        if let Some(Err(e)) = match logged {
            Some(logged) => Some(logged.await),
            None => None,
        } {
            tracing::warn!(error = %e, "a message was published but not logged");
        }
        Ok(sent)
    }

    async fn log(&self, request: sk::Log) -> Result<sk::LogReply, RemoteError> {
        let start = js_index(request.start.as_ref(), 0);
        let end = js_index(request.end.as_ref(), 100);
        let log = match &self.hub.log {
            MessageLog::Local(log) => {
                let log = lock(log);
                let entries: Vec<_> = log.entries.iter().collect();
                return Ok(sk::LogReply {
                    log: log_range(&entries, start, end),
                });
            }
            MessageLog::Shared(list) => list.newest().await.map_err(broker_error)?,
        };
        // The newest entries that fit in `--log-bytes`, as the local log keeps them.
        let mut bytes = 0usize;
        let entries: Vec<(sk::LogEntry, usize)> = log
            .iter()
            .filter_map(|text| Some((serde_json::from_str(text).ok()?, text.len())))
            .take_while(|(_, size)| {
                bytes = bytes.saturating_add(*size);
                bytes <= self.hub.log_bytes
            })
            .collect();
        let entries: Vec<_> = entries.iter().collect();
        Ok(sk::LogReply {
            log: log_range(&entries, start, end),
        })
    }
}

/// The entries of a `log` reply: `start..end` of the log (newest first) as JavaScript slices
/// it, as many as fit in one frame.
fn log_range(entries: &[&(sk::LogEntry, usize)], start: i64, end: i64) -> Vec<sk::LogEntry> {
    let (start, end) = slice_bounds(entries.len(), start, end);
    let mut room = LOG_REPLY_BYTES;
    entries[start..end]
        .iter()
        .take_while(|(_, size)| match room.checked_sub(*size) {
            Some(left) => {
                room = left;
                true
            }
            None => false,
        })
        .map(|(entry, _)| entry.clone())
        .collect()
}

/// The session every server link runs: no handshake; the definition words every error.
pub(crate) fn server_session() -> Session<sk::Server> {
    Session::new()
}

/// Starts serving on `server` with a hub; returns the shutdown handle and the accept task.
pub(crate) fn start<B: Broker>(
    server: WsServer<sk::Server>,
    hub: Arc<Hub<B>>,
) -> (protolink::ws::ShutdownHandle, tokio::task::JoinHandle<()>) {
    server.serve(server_session(), move |link| Connection {
        id: hub.next_subscriber.fetch_add(1, Ordering::Relaxed),
        hub: hub.clone(),
        link,
        channels: Mutex::new(Vec::new()),
    })
}

/// `protolink serve skynet`: with `broker`, a Redis URL, messages and the log are shared with
/// every server on that Redis.
pub(crate) async fn serve(
    listen: &str,
    log_size: usize,
    log_bytes: usize,
    broker: Option<&str>,
) -> std::io::Result<()> {
    // At the definition's `path` (`/connect`).
    let server = WsServer::<sk::Server>::bind(listen).await?;
    let redis = match broker {
        Some(url) => Some(
            RedisBroker::connect(RedisConfig::new(url, "skynet"))
                .await
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let stop = shutdown_signal();
    Printer::stdout().line_text(&format!(
        "listening on {}",
        crate::output::ws_url::<sk::Skynet>(server.local_addr()?)
    ));
    let (shutdown, task) = match redis {
        Some(broker) => {
            let log = MessageLog::Shared(broker.capped_list("log", log_size));
            let node = Some(broker.node());
            start(
                server,
                Arc::new(Hub::new(broker, log, log_size, log_bytes, node)),
            )
        }
        None => start(
            server,
            Arc::new(Hub::local(LocalBroker::new(), log_size, log_bytes)),
        ),
    };
    serve_until_signal(stop, shutdown, task).await
}

/// Prints every `message` event as a JSON line.
struct Listener {
    out: Printer,
}

impl ClientHandler for Listener {
    async fn message_event(&self, message: sk::MessageEvent) {
        self.out
            .line(serde_json::to_value(&message.0).unwrap_or_default());
    }
}

/// A channel from the command line: a JSON number is a number channel, anything else a string
/// (write `'"42"'` for the string "42").
pub(crate) fn parse_channel(text: &str) -> Channel {
    match serde_json::from_str::<Channel>(text) {
        Ok(channel) => channel,
        Err(_) => Channel::String(text.to_owned()),
    }
}

async fn client(url: &str, out: Printer) -> Result<Link<sk::Client>, std::io::Error> {
    connect(url)
        .handler(move |_| Listener { out })
        .await
        .map_err(std::io::Error::other)
}

/// `protolink skynet listen`: opens the channels and prints messages until interrupted. It
/// stays connected: after a drop it says so (`{"disconnected": ...}`), waits (jittered
/// exponential backoff) and reconnects, opening the channels again. On SIGINT or SIGTERM it
/// closes the link with a close frame.
pub(crate) async fn listen(url: &str, channels: Vec<String>) -> std::io::Result<()> {
    use protolink::Sender;
    let out = Printer::stdout();
    let channels: Arc<Vec<Channel>> = Arc::new(channels.iter().map(|c| parse_channel(c)).collect());
    let printer = out.clone();
    let listener = move |_| Listener {
        out: printer.clone(),
    };
    let backoff = Backoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(30),
    };
    let client = connect::<sk::Client>(url).handler(listener).reconnecting(
        backoff,
        move |link: Link<sk::Client>| {
            let (channels, out) = (channels.clone(), out.clone());
            async move {
                for channel in channels.iter() {
                    match link
                        .request(sk::Open {
                            channel: channel.clone(),
                        })
                        .await
                    {
                        Ok(reply) => out.line(serde_json::json!({"open": reply.channels})),
                        Err(e) => out.line(serde_json::json!({"error": e.to_string()})),
                    }
                }
                tokio::spawn(async move {
                    let (code, reason) = link.closed().await;
                    out.line(serde_json::json!({"disconnected": {"code": code, "reason": reason}}));
                });
            }
        },
    );
    shutdown_signal().await;
    client.stop_and_wait(Duration::from_secs(2)).await;
    Ok(())
}

/// `protolink skynet send`: opens the channel, sends one message and prints the result.
pub(crate) async fn send(url: &str, channel: &str, message: &str) -> std::io::Result<()> {
    use protolink::Sender;
    let out = Printer::stdout();
    let link = client(url, out.clone()).await?;
    let channel = parse_channel(channel);
    link.request(sk::Open {
        channel: channel.clone(),
    })
    .await
    .map_err(std::io::Error::other)?;
    // The message is JSON when it parses as JSON, else a string.
    let message = serde_json::from_str(message)
        .unwrap_or_else(|_| serde_json::Value::String(message.to_owned()));
    let sent = link
        .request(sk::Message {
            channel,
            message,
            extra: Default::default(),
        })
        .await
        .map_err(std::io::Error::other)?;
    out.line(serde_json::to_value(&sent).unwrap_or_default());
    link.close_gracefully(protolink::link::close::NORMAL, "done")
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{js_index, slice_bounds};
    use serde_json::json;

    #[test]
    fn reads_bounds_like_javascript() {
        let at = |v: serde_json::Value| js_index(Some(&v), 100);
        assert_eq!(js_index(None, 100), 100);
        assert_eq!(at(json!(0)), 100);
        assert_eq!(at(json!(null)), 100);
        assert_eq!(at(json!(false)), 100);
        assert_eq!(at(json!("")), 100);
        assert_eq!(at(json!(2)), 2);
        assert_eq!(at(json!(-2)), -2);
        assert_eq!(at(json!(1.5)), 1);
        assert_eq!(at(json!("1")), 1);
        assert_eq!(at(json!(" 3 ")), 3);
        assert_eq!(at(json!("0x10")), 16);
        assert_eq!(at(json!("0")), 0);
        assert_eq!(at(json!("bad")), 0);
        assert_eq!(at(json!(true)), 1);
        assert_eq!(at(json!({})), 0);
        assert_eq!(at(json!([])), 0);
        assert_eq!(at(json!(["4"])), 4);
        assert_eq!(at(json!(1e300)), i64::MAX);
    }

    #[test]
    fn slices_like_javascript() {
        assert_eq!(slice_bounds(5, 0, 100), (0, 5));
        assert_eq!(slice_bounds(5, 1, 2), (1, 2));
        assert_eq!(slice_bounds(5, -2, 100), (3, 5));
        assert_eq!(slice_bounds(5, 3, 1), (3, 3));
        assert_eq!(slice_bounds(5, 10, 20), (5, 5));
        assert_eq!(slice_bounds(5, -10, -4), (0, 1));
        assert_eq!(slice_bounds(0, 0, 100), (0, 0));
    }
}
