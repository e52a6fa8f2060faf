//! Links: one side of a connection, generic over the generated protocol and side.
//!
//! A link runs as one future over a connection's halves (one task per connection): the
//! *driver* reads frames, runs the session rules (handshake, heartbeat, close), resolves
//! replies and dispatches messages into the handler; the *writer* drains a bounded queue,
//! feeding every frame that is ready and flushing once per batch. The two are polled together,
//! the driver first, so what the driver queues while reading a batch of frames goes out in one
//! flush. [`Link::spawn`] spawns that future; a server awaits it in the connection's task. The returned [`Link`] is a cheap handle for typed sends
//! and requests; it implements [`Sender`].

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{Instrument, debug, debug_span, warn};

use crate::fast::{Fast, FastReply};
use crate::machine::{Action, Machine, my_role};
use crate::message::{
    CloseCode as _, Dispatch, Inbound, Message, Outcome, Protocol, Reply, Request, SendableBy,
    Sender, Side,
};
use crate::outbox::{Outbox, SendTimeoutError, TrySendError};
use crate::requests::{Refused, Requests};
use crate::scan::ScanDecode;
use crate::session::{Beat, Interval, InvalidAction, InvalidKind, InvalidRule, Placeholders};
use crate::state::StateCell;
use crate::transport::{Frame, FrameSink, FrameSource, Text, TransportError};
use crate::validate::Validate;
use crate::wire::{
    FrameClass, Framing, Kind, Payload, RawFrame, RawMessage, RequestId, RequestIdPlace, Tag,
    TagRef, WireProfile,
};
use crate::{DecodeError, RemoteError, RequestError, SendError};

/// The buffer a frame is encoded into starts this large: most frames fit, so most are written
/// without growing it.
const FRAME_CAPACITY: usize = 256;

/// Close codes the runtime itself uses (RFC 6455).
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (server shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the WebSocket protocol (RFC 6455).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A frame type the protocol does not use (binary on a text protocol).
    pub const UNSUPPORTED: u16 = 1003;
    /// A frame's data is not what its type says (text that is not UTF-8).
    pub const INVALID_DATA: u16 = 1007;
    /// Repeated invalid frames, or a peer too slow to read.
    pub const POLICY: u16 = 1008;
    /// A frame over the size limit.
    pub const TOO_BIG: u16 = 1009;
}

/// Limits and timeouts of a link; every one has a sane default.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// How long a request waits for its reply.
    pub request_timeout: Duration,
    /// Requests waiting for a reply at once, at most.
    pub max_pending: usize,
    /// Frames queued for the writer, at most (backpressure beyond).
    pub send_queue: usize,
    /// How long a send waits for queue space before the peer counts as too slow and the link
    /// closes with 1008.
    pub send_timeout: Duration,
    /// How long the whole handshake may take (the definition's `timeout` wins when declared).
    pub handshake_timeout: Duration,
    /// Invalid frames tolerated before the link closes with 1008.
    pub max_invalid: u32,
    /// Which heartbeat variant runs, when the protocol declares several.
    pub heartbeat_variant: Option<String>,
    /// Overrides the heartbeat interval (for protocols whose server chooses it).
    pub heartbeat_interval: Option<Duration>,
    /// Overrides the time without traffic after which the peer counts as dead.
    pub heartbeat_timeout: Option<Duration>,
    /// On the accepting side of a protocol without a handshake, how long a new connection may
    /// stay silent before it closes with 1008 (a handshake's timeout bounds the others); `None`
    /// waits for ever.
    pub first_frame_timeout: Option<Duration>,
    /// Read frames in one pass with the generated scanner where it can (the default); `false`
    /// sends every frame through the general path (classify, then serde), as a fallback and for
    /// measuring what the one-pass path saves (`loadgen rpc`).
    pub one_pass: bool,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            request_timeout: Duration::from_secs(30),
            max_pending: 4096,
            send_queue: 1024,
            send_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_invalid: 16,
            heartbeat_variant: None,
            heartbeat_interval: None,
            heartbeat_timeout: None,
            first_frame_timeout: Some(Duration::from_secs(30)),
            one_pass: true,
        }
    }
}

/// Where a link is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Running the handshake.
    Handshaking,
    /// The handshake finished; all messages flow.
    Ready,
    /// Closed, with the close code and reason (sent or received).
    Closed {
        /// The WebSocket close code.
        code: u16,
        /// The reason text.
        reason: String,
    },
}

/// What the side must provide for its handshake steps, and how it checks the peer's.
pub struct Session<S: Side> {
    /// Shared by the links a server starts with this session (a clone per connection is cheap).
    provided: Arc<HashMap<Tag, Box<RawValue>>>,
    auth: Option<AuthHook<S>>,
    describe: Option<DescribeHook>,
    answer: Option<AnswerHook>,
    check: Option<CheckHook>,
    _side: PhantomData<fn() -> S>,
}

/// A frame the link could not use: why, for the error reply the peer gets.
#[derive(Debug)]
pub enum InvalidInput {
    /// The frame did not decode (not JSON, not an object, unknown message, bad payload).
    Decode(DecodeError),
    /// The message decoded but breaks its definition's constraints.
    Validation(crate::ValidationErrors),
}

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvalidInput::Decode(e) => write!(f, "{e}"),
            InvalidInput::Validation(e) => write!(f, "validation failed: {e}"),
        }
    }
}

type DescribeHook = Arc<dyn Fn(&InvalidInput) -> String + Send + Sync>;

type AnswerHook = Arc<dyn Fn(Tag, &InvalidInput, String) -> RemoteError + Send + Sync>;

type CheckHook = Arc<dyn Fn(Option<&RequestId>, &RawValue) -> Result<(), u16> + Send + Sync>;

type AuthHook<S> = Arc<
    dyn Fn(
            Link<S>,
            Box<RawValue>,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

impl<S: Side> Default for Session<S> {
    fn default() -> Self {
        Session {
            provided: Arc::default(),
            auth: None,
            describe: None,
            answer: None,
            check: None,
            _side: PhantomData,
        }
    }
}

impl<S: Side> Clone for Session<S> {
    fn clone(&self) -> Self {
        Session {
            provided: self.provided.clone(),
            auth: self.auth.clone(),
            describe: self.describe.clone(),
            answer: self.answer.clone(),
            check: self.check.clone(),
            _side: PhantomData,
        }
    }
}

impl<S: Side> Session<S> {
    /// No handshake payloads and no auth check.
    pub fn new() -> Self {
        Session::default()
    }

    /// The message to send at its handshake step (`HelloAck { password }`, `Hello { hb_interval }`).
    ///
    /// Session messages without required fields (heartbeats, `ready {}`) need not be provided.
    pub fn with<M: Message + SendableBy<S>>(mut self, message: M) -> Self {
        if let Ok(raw) = serde_json::value::to_raw_value(&message) {
            Arc::make_mut(&mut self.provided).insert(M::TAG, raw);
        }
        self
    }

    /// Words the error reply to a frame that could not be used (the default is the error's own
    /// description), for protocols whose peers expect particular texts.
    pub fn describe_invalid(
        mut self,
        describe: impl Fn(&InvalidInput) -> String + Send + Sync + 'static,
    ) -> Self {
        self.describe = Some(Arc::new(describe));
        self
    }

    /// The error a request that could not be used is answered with, given the request's tag,
    /// why, and the description (`describe_invalid`'s, or the error's own); the default is an
    /// error with that description only. For protocols whose peers expect an error name too
    /// (socketcluster-server answers a `#subscribe` without a channel name with an
    /// `InvalidActionError`).
    pub fn answer_invalid(
        mut self,
        answer: impl Fn(Tag, &InvalidInput, String) -> RemoteError + Send + Sync + 'static,
    ) -> Self {
        self.answer = Some(Arc::new(answer));
        self
    }

    /// Checks the envelope of each handshake message the peer sends (its request id, if any,
    /// and its payload) before anything else handles it; `Err(code)` closes the link with that
    /// code and the protocol's reason for it (SocketCluster closes with 4008 when the
    /// `#handshake` request's `cid` is not a number).
    pub fn check_handshake(
        mut self,
        check: impl Fn(Option<&RequestId>, &RawValue) -> Result<(), u16> + Send + Sync + 'static,
    ) -> Self {
        self.check = Some(Arc::new(check));
        self
    }

    /// Checks the peer's authenticating handshake message; `Err(reason)` closes the link with the
    /// step's failure code.
    pub fn authenticate<M, F, Fut>(self, check: F) -> Self
    where
        M: Message,
        F: Fn(M) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.authenticate_link(move |_link, message| check(message))
    }

    /// Like [`Session::authenticate`], with the link the message came on: for servers that
    /// register the peer (under [`Link::id`], say) before the handshake's last step goes out.
    pub fn authenticate_link<M, F, Fut>(mut self, check: F) -> Self
    where
        M: Message,
        F: Fn(Link<S>, M) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check = Arc::new(check);
        self.auth = Some(Arc::new(move |link: Link<S>, raw: Box<RawValue>| {
            let check = check.clone();
            Box::pin(async move {
                let message: M = serde_json::from_str(raw.get())
                    .map_err(|e| format!("malformed {}: {e}", M::NAME))?;
                check(link, message).await
            })
        }));
        self
    }
}

enum Outgoing {
    Frame(crate::transport::Text),
    /// Boxed: most of what is queued is frames, kept as small as a frame's text.
    Close(Box<Closing>),
}

/// The close this side sends: the protocol's close message if it has one, then the close frame.
struct Closing {
    farewell: Option<String>,
    code: u16,
    reason: String,
}

impl Outgoing {
    fn close(farewell: Option<String>, code: u16, reason: String) -> Outgoing {
        Outgoing::Close(Box::new(Closing {
            farewell,
            code,
            reason,
        }))
    }
}

/// A reply the reader decoded in one pass, for its requester to take.
type AnyReply = Box<dyn Any + Send>;

/// Decodes a reply frame as one request's reply type in one pass ([`decode_erased`]).
type ReplyDecoder = fn(&WireProfile, &str) -> Option<FastReply<AnyReply>>;

/// [`WireProfile::decode_reply_fast`] as `T`, the value boxed for the pending table.
fn decode_erased<T: for<'de> ScanDecode<'de> + Send + 'static>(
    profile: &WireProfile,
    text: &str,
) -> Option<FastReply<AnyReply>> {
    let fast = profile.decode_reply_fast::<T>(text)?;
    Some(FastReply {
        reply: Box::new(fast.reply),
        id: fast.id,
        seq: fast.seq,
    })
}

/// What a requester gets for its reply.
enum ReplyBody {
    /// The whole reply frame, as received: the requester decodes it in one pass as the reply
    /// type it expects ([`WireProfile::decode_reply_fast`]), or through the general path.
    Frame(Text),
    /// A classified reply's result, as JSON text.
    Raw(Box<RawValue>),
    /// The reply, decoded by the reader as the reply type of the request it names.
    Decoded(AnyReply),
}

impl ReplyBody {
    /// The result as JSON text (the handshake keeps its reply this way).
    fn into_raw<S: Side>(self) -> Result<Box<RawValue>, RemoteError> {
        match self {
            ReplyBody::Raw(raw) => Ok(raw),
            // Only requests made with a reply type are decoded by the reader.
            ReplyBody::Decoded(_) => Err(RemoteError::new(DecodeError::ReplyMismatch.to_string())),
            ReplyBody::Frame(text) => match wire::<S>().classify(&text) {
                Ok(RawFrame::Reply(reply)) => reply.result.map(|p| p.to_json()),
                Ok(RawFrame::Message(_)) => {
                    Err(RemoteError::new(DecodeError::NotAReply.to_string()))
                }
                Err(e) => Err(RemoteError::new(e.to_string())),
            },
        }
    }

    /// Decodes the reply to the request `name` as `T`.
    fn decode<S: Side, T: for<'de> ScanDecode<'de> + 'static>(
        self,
        name: &'static str,
    ) -> Result<T, RequestError> {
        let bad = |source| {
            RequestError::BadReply(DecodeError::Payload {
                message: name,
                source,
            })
        };
        match self {
            ReplyBody::Raw(raw) => serde_json::from_str(raw.get()).map_err(bad),
            ReplyBody::Decoded(reply) => reply
                .downcast::<T>()
                .map(|reply| *reply)
                .map_err(|_| RequestError::BadReply(DecodeError::ReplyMismatch)),
            ReplyBody::Frame(text) => {
                let profile = wire::<S>();
                if let Some(fast) = profile.decode_reply_fast::<T>(&text) {
                    return Ok(fast.reply);
                }
                // A failure, or a result that does not decode: the general path says which.
                match profile.classify(&text).map_err(RequestError::BadReply)? {
                    RawFrame::Reply(reply) => {
                        let payload = reply.result?;
                        payload.decode::<T>(name).map_err(RequestError::BadReply)
                    }
                    RawFrame::Message(_) => Err(RequestError::BadReply(DecodeError::NotAReply)),
                }
            }
        }
    }
}

type ReplyResult = Result<ReplyBody, RemoteError>;

struct Shared<S: Side> {
    /// Unique among the links of this process.
    id: u64,
    /// Frames for the writer (from the driver, the handlers and fan-out).
    out: Outbox<Outgoing>,
    /// The requests this side sent that wait for their replies.
    requests: Mutex<Requests<oneshot::Sender<ReplyResult>, ReplyDecoder>>,
    /// Serialises "take a slot, queue the frame" for protocols whose replies come in order.
    order: tokio::sync::Mutex<()>,
    next_seq: AtomicI64,
    state: StateCell,
    config: Arc<LinkConfig>,
    /// Set once the writer has stopped (after writing the close frame, or on failure).
    writer_done: Done,
    /// Set once the driver has stopped reading (the peer's close came, the connection ended, or
    /// the drain after this side's close ran out).
    reader_done: Done,
    /// Set when the link closed because the peer does not keep up: the writer drops what is
    /// still queued and writes the close frame next.
    aborted: AtomicBool,
    /// Requests being handled on this side, and a signal when the count drops.
    in_flight: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
    /// Someone waits on `idle` (a handler finishing notifies only then: most never have to).
    idle_wanted: AtomicBool,
    handshake_reply: Mutex<Option<Box<RawValue>>>,
    _side: PhantomData<fn() -> S>,
}

/// One side of a connection: typed sends and requests, close, and the connection's state.
pub struct Link<S: Side> {
    shared: Arc<Shared<S>>,
}

impl<S: Side> Clone for Link<S> {
    fn clone(&self) -> Self {
        Link {
            shared: self.shared.clone(),
        }
    }
}

impl<S: Side> std::fmt::Debug for Link<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("side", &S::NAME)
            .field("state", &self.shared.state.get())
            .finish()
    }
}

fn wire<S: Side>() -> &'static crate::wire::WireProfile {
    <S::Protocol as Protocol>::WIRE
}

fn rules<S: Side>() -> &'static crate::session::SessionRules {
    <S::Protocol as Protocol>::SESSION
}

impl<S: Side> Link<S> {
    /// This link's number, unique among the links of this process (a key for per-connection
    /// state kept elsewhere).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Starts a link over a connection's halves, dispatching what arrives into `handler`.
    ///
    /// `make_handler` receives the new link (so the handler can send on it) and returns the
    /// handler for this connection.
    pub fn spawn<H, Src, Snk>(
        source: Src,
        sink: Snk,
        config: LinkConfig,
        session: Session<S>,
        make_handler: impl FnOnce(Link<S>) -> H,
    ) -> Link<S>
    where
        S: Dispatch<H>,
        H: Send + Sync + 'static,
        Src: FrameSource,
        Snk: FrameSink,
    {
        let resume = Resume::fresh();
        let config = Arc::new(config);
        let (link, run) = Link::prepare(source, sink, config, session, make_handler, resume, None);
        tokio::spawn(run);
        link
    }

    /// The link over a connection's halves, and the one future that runs it: the driver and the
    /// writer, polled together. A server awaits it in the connection's own task (one task per
    /// connection); [`Link::spawn`] spawns it. `resume` says what a server choosing among several
    /// sides already wrote (the greeting: the handshake steps this side sends before its
    /// peer's first); `stop`, when the server stops, closes the link with 1001 once the requests
    /// in flight are answered (or their grace ran out).
    pub(crate) fn prepare<H, Src, Snk>(
        source: Src,
        sink: Snk,
        config: Arc<LinkConfig>,
        session: Session<S>,
        make_handler: impl FnOnce(Link<S>) -> H,
        resume: Resume,
        stop: Option<Stop>,
    ) -> (Link<S>, impl Future<Output = ()> + Send + 'static)
    where
        S: Dispatch<H>,
        H: Send + Sync + 'static,
        Src: FrameSource,
        Snk: FrameSink,
    {
        let requests = Requests::new(wire::<S>().request_id, config.max_pending);
        let state = StateCell::new(if rules::<S>().handshake.is_empty() {
            LinkState::Ready
        } else {
            LinkState::Handshaking
        });
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            out: Outbox::new(config.send_queue),
            requests: Mutex::new(requests),
            order: tokio::sync::Mutex::new(()),
            next_seq: AtomicI64::new(resume.next_seq),
            state,
            config,
            writer_done: Done::default(),
            reader_done: Done::default(),
            aborted: AtomicBool::new(false),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
            idle_wanted: AtomicBool::new(false),
            handshake_reply: Mutex::new(None),
            _side: PhantomData,
        });
        let link = Link { shared };
        let handler = Arc::new(make_handler(link.clone()));
        let span = debug_span!(
            "link",
            side = S::NAME,
            protocol = <S::Protocol as Protocol>::NAME
        );
        let writer = write_loop(link.clone(), sink);
        let machine = Machine::new(&link.shared.config, resume, |message, field| {
            session
                .provided
                .get(&message)
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p.get()).ok())
                .and_then(|v| v.get(field).and_then(serde_json::Value::as_u64))
        });
        let driver = Driver::<S, H> {
            link: link.clone(),
            handler,
            session,
            machine,
            events: None,
            ordered: None,
            stop,
        };
        // Both in one task, the driver polled first (`join` polls in order): its replies reach
        // the writer without waking another thread, and the writer flushes once the driver has
        // read every frame that was ready.
        let run = futures_util::future::join(Box::new(driver).run(source), writer).map(|_| ());
        (link, run.instrument(span))
    }

    /// Keeps the reply to this side's handshake request and announces that the link is ready.
    fn handshake_done(&self, reply: Box<RawValue>) {
        *lock(&self.shared.handshake_reply) = Some(reply);
        self.shared.state.modify(|s| {
            let was = matches!(s, LinkState::Handshaking);
            if was {
                *s = LinkState::Ready;
            }
            was
        });
    }

    /// The current state.
    pub fn state(&self) -> LinkState {
        self.shared.state.get()
    }

    /// Watches the state (handshake done, closed).
    pub fn watch_state(&self) -> watch::Receiver<LinkState> {
        self.shared.state.subscribe()
    }

    /// Waits until the handshake finished; `Err` with the close if the link closed first.
    pub async fn ready(&self) -> Result<(), LinkState> {
        let state = self
            .shared
            .state
            .wait_for(|s| !matches!(s, LinkState::Handshaking))
            .await;
        match state {
            LinkState::Ready => Ok(()),
            other => Err(other),
        }
    }

    /// Waits until the link is closed and returns the close code and reason.
    pub async fn closed(&self) -> (u16, String) {
        let closed = |s: &LinkState| matches!(s, LinkState::Closed { .. });
        match self.shared.state.wait_for(closed).await {
            LinkState::Closed { code, reason } => (code, reason),
            _ => (close::NORMAL, String::new()),
        }
    }

    /// Whether the link is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.state.is_closed()
    }

    /// Waits until no request received on this link is being handled.
    pub async fn idle(&self) {
        loop {
            let notified = self.shared.idle.notified();
            self.shared.idle_wanted.store(true, Ordering::SeqCst);
            if self.shared.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Replies that matched no pending request (dropped; the link stays up).
    pub fn unmatched_replies(&self) -> u64 {
        lock(&self.shared.requests).unmatched()
    }

    /// The reply to this side's handshake request, for protocols whose handshake is a request.
    pub fn handshake_reply(&self) -> Option<Box<RawValue>> {
        lock(&self.shared.handshake_reply).clone()
    }

    /// Closes the link with a protocol close code and its declared reason.
    pub async fn close_with(&self, code: <S::Protocol as Protocol>::CloseCode) {
        use crate::message::CloseCode;
        self.close(code.code(), code.reason()).await;
    }

    /// Closes the link: sends the protocol's close message (if it declares one) with `reason`,
    /// then a WebSocket close frame with `code`. Pending requests fail with `Disconnected`.
    pub async fn close(&self, code: u16, reason: &str) {
        if self.is_closed() {
            return;
        }
        self.start_close(code, reason).await;
        // Return once the close frame is on the wire (or the connection is gone), so a program
        // may exit right after closing.
        let _ = timeout(Duration::from_secs(2), self.shared.writer_done.wait()).await;
    }

    /// Closes like [`Link::close`], then waits (up to 2 s) for the peer's close frame, reading and
    /// dropping whatever it still sends: for a program that exits right after. Closing a socket
    /// with unread data resets the connection, so a peer still sending (a server flooding
    /// publishes) would see the connection reset (1006) instead of this close.
    pub async fn close_gracefully(&self, code: u16, reason: &str) {
        self.close(code, reason).await;
        let _ = timeout(CLOSE_DRAIN, self.shared.reader_done.wait()).await;
    }

    /// Queues the close and marks the link closed, without waiting for the writer (the driver
    /// closes this way: the writer may need the driver to go on before it can finish).
    async fn start_close(&self, code: u16, reason: &str) {
        if self.is_closed() {
            return;
        }
        let farewell = self.farewell(code, reason);
        let _ = self
            .shared
            .out
            .send(Outgoing::close(farewell, code, reason.to_owned()))
            .await;
        self.mark_closed(code, reason);
    }

    fn farewell(&self, code: u16, reason: &str) -> Option<String> {
        let close = rules::<S>().close_message.filter(|c| c.sent)?;
        let info = crate::message::message_info::<S::Protocol>(close.message)?;
        let mut payload = serde_json::Map::new();
        if let Some(field) = close.code {
            payload.insert(field.to_owned(), serde_json::Value::from(code));
        }
        payload.insert(
            close.reason.to_owned(),
            serde_json::Value::String(reason.to_owned()),
        );
        let seq = self.seq();
        let mut buf = Vec::new();
        wire::<S>()
            .encode_message(&mut buf, info.kind, info.tag, Some(&payload), None, seq)
            .ok()?;
        String::from_utf8(buf).ok()
    }

    fn mark_closed(&self, code: u16, reason: &str) {
        self.shared.state.modify(|s| {
            if matches!(s, LinkState::Closed { .. }) {
                return false;
            }
            *s = LinkState::Closed {
                code,
                reason: reason.to_owned(),
            };
            true
        });
        // The writer writes what is queued (the close frame among it, if one was), then stops.
        self.shared.out.finish();
        // Every pending request resolves now: dropping the senders wakes them with Disconnected.
        lock(&self.shared.requests).close();
    }

    fn seq(&self) -> Option<i64> {
        wire::<S>()
            .sequence
            .map(|_| self.shared.next_seq.fetch_add(1, Ordering::Relaxed))
    }

    /// Queues a frame, waiting for space up to the send timeout; a peer that does not read closes.
    async fn enqueue(&self, text: String) -> Result<(), SendError> {
        match self.shared.out.try_send(Outgoing::Frame(text.into())) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed(_)) => Err(SendError::Closed),
            // Boxed: the wait is rare, and its timer would make every caller's state larger.
            Err(TrySendError::Full(frame)) => Box::pin(self.enqueue_when_room(frame)).await,
        }
    }

    /// [`Link::enqueue`] on a full queue.
    async fn enqueue_when_room(&self, frame: Outgoing) -> Result<(), SendError> {
        let wait = self.shared.config.send_timeout;
        match self.shared.out.send_timeout(frame, wait).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Closed(_)) => Err(SendError::Closed),
            Err(SendTimeoutError::Timeout(_)) => {
                warn!("peer does not read; closing");
                self.abort(close::POLICY, "peer too slow");
                Err(SendError::Closed)
            }
        }
    }

    /// Queues an already encoded frame without waiting (fan-out): a full queue means the peer
    /// does not keep up, and the link closes with 1008. `false` when the frame was not queued.
    pub fn try_send_frame(&self, text: impl Into<crate::transport::Text>) -> bool {
        // No state check here: a closed link's queue is closed too, and subscribers only
        // subscribe once their handshake is done.
        match self.shared.out.try_send(Outgoing::Frame(text.into())) {
            Ok(()) => true,
            Err(TrySendError::Closed(_)) => false,
            Err(TrySendError::Full(_)) => {
                warn!("subscriber does not keep up; closing");
                self.abort(close::POLICY, "peer too slow");
                false
            }
        }
    }

    /// Closes without waiting for queue space (the queue may be full): the writer drops what is
    /// queued and writes the close frame next.
    fn abort(&self, code: u16, reason: &str) {
        self.shared.aborted.store(true, Ordering::Release);
        let _ = self
            .shared
            .out
            .try_send(Outgoing::close(None, code, reason.to_owned()));
        self.mark_closed(code, reason);
    }

    fn encode<M: Message>(
        &self,
        message: &M,
        id: Option<&RequestId>,
        seq: Option<i64>,
    ) -> Result<String, SendError> {
        encode_typed::<S, M>(message, id, seq)
    }

    /// Sends a message of any kind without checking the side may send it (session traffic).
    async fn send_raw_tag(&self, tag: Tag, payload: Option<&RawValue>) -> Result<(), SendError> {
        let text = encode_tag::<S>(tag, payload, self.seq())?;
        self.enqueue(text).await
    }

    async fn send_text(&self, text: &str) -> Result<(), SendError> {
        self.enqueue(text.to_owned()).await
    }

    /// Sends a request frame (any side check done by the caller) and waits for the raw reply.
    async fn request_raw<P: serde::Serialize + ?Sized + Sync>(
        &self,
        kind: Kind,
        tag: Tag,
        payload: Option<&P>,
        decoder: Option<ReplyDecoder>,
    ) -> Result<ReplyResult, RequestError> {
        let profile = wire::<S>();
        let (tx, rx) = oneshot::channel();
        // Where replies come in order, requests take their slots in the order their frames are
        // queued.
        let order = match profile.request_id {
            RequestIdPlace::Ordered => Some(self.shared.order.lock().await),
            _ => None,
        };
        let seq = self.seq();
        let id = lock(&self.shared.requests)
            .start(tag, tx, decoder, seq)
            .map_err(|refused| match refused {
                Refused::Closed => RequestError::Disconnected,
                Refused::TooMany(max) => RequestError::TooManyPending(max),
            })?;
        // Numbered frames carry their id as their number.
        let written_id = match profile.request_id {
            RequestIdPlace::Key { .. } => id.as_ref(),
            _ => None,
        };
        let mut buf = Vec::with_capacity(FRAME_CAPACITY);
        if let Err(e) = profile.encode_message(&mut buf, kind, tag, payload, written_id, seq) {
            lock(&self.shared.requests).cancel(id.as_ref());
            return Err(SendError::from(e).into());
        }
        self.enqueue(String::from_utf8(buf).unwrap_or_default())
            .await?;
        drop(order);
        let wait = self.shared.config.request_timeout;
        match timeout(wait, rx).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(RequestError::Disconnected),
            Err(_) => {
                if let Some(id) = &id {
                    lock(&self.shared.requests).forget(id);
                }
                Err(RequestError::Timeout(wait))
            }
        }
    }

    /// Decodes in one pass a reply the reader could not route by its envelope: in order, as the
    /// reply of the oldest pending request; by id inside the payload, as the reply of the request
    /// `named` (read from the reply's tag). `None` when neither applies or the frame is not such
    /// a reply (the general path then reads it).
    fn decode_reply(&self, text: &str, named: Option<&str>) -> Option<FastReply<AnyReply>> {
        let decoder = lock(&self.shared.requests).decoder(named)?;
        decoder(wire::<S>(), text)
    }

    /// Hands a reply to its requester; `false` when it matches no pending request.
    fn resolve(&self, id: Option<RequestId>, result: ReplyResult) -> bool {
        let id = match wire::<S>().request_id {
            RequestIdPlace::Ordered => None,
            _ => id,
        };
        let waiter = lock(&self.shared.requests).reply(id.as_ref());
        match waiter {
            // The requester may have timed out meanwhile; its slot is used up either way.
            Some(tx) => {
                let _ = tx.send(result);
                true
            }
            None => {
                debug!(?id, "reply matches no pending request");
                false
            }
        }
    }
}

/// Something that happens once (the writer stopped, the driver stopped reading), for others to
/// wait on: a flag and a `Notify`, nothing allocated.
#[derive(Default)]
struct Done {
    done: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Done {
    fn set(&self) {
        self.done.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        loop {
            // Made before the flag is read, so a `set` in between still wakes it.
            let notified = self.notify.notified();
            if self.done.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave their data inconsistent (single inserts
    // and removals), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<S: Side> Link<S> {
    /// Sends a message at once, even while the handshake is still running; [`Sender::send`]
    /// waits for the handshake instead.
    ///
    /// For the few messages a protocol allows inside its handshake, in the order the real
    /// peers send them: a SocketCluster server handling a `#handshake` with a bad auth token
    /// transmits `#removeAuthToken` before the handshake reply. Called from the handler of the
    /// peer's handshake request, the message goes out ahead of that reply.
    pub async fn send_in_handshake<M: Message + SendableBy<S>>(
        &self,
        message: M,
    ) -> Result<(), SendError> {
        message.validate()?;
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        let text = self.encode(&message, None, self.seq())?;
        self.enqueue(text).await
    }

    /// Application traffic waits for the handshake: sent earlier, the peer would reject it.
    async fn after_handshake(&self) -> Result<(), SendError> {
        if self.shared.state.is_ready() {
            return Ok(());
        }
        self.ready().await.map_err(|_| SendError::Closed)
    }
}

impl<S: Side> Sender<S> for Link<S> {
    async fn request<R: Request + SendableBy<S>>(
        &self,
        request: R,
    ) -> Result<R::Reply, RequestError> {
        request.validate().map_err(SendError::from)?;
        self.after_handshake().await?;
        let span = debug_span!("request", message = R::NAME);
        let result = self
            .request_raw(
                R::KIND,
                R::TAG,
                R::HAS_PAYLOAD.then_some(&request),
                Some(decode_erased::<R::Reply>),
            )
            .instrument(span)
            .await?;
        let reply: R::Reply = result?.decode::<S, R::Reply>(R::NAME)?;
        reply.validate().map_err(RequestError::InvalidReply)?;
        Ok(reply)
    }

    async fn send<M: Message + SendableBy<S>>(&self, message: M) -> Result<(), SendError> {
        message.validate()?;
        self.after_handshake().await?;
        let text = self.encode(&message, None, self.seq())?;
        self.enqueue(text).await
    }
}

async fn write_loop<S: Side, Snk: FrameSink>(link: Link<S>, mut sink: Snk) {
    struct Stopped<'a>(&'a Done);
    impl Drop for Stopped<'_> {
        fn drop(&mut self) {
            self.0.set();
        }
    }
    let shared = link.shared.clone();
    let _stopped = Stopped(&shared.writer_done);
    let mut batch = VecDeque::new();
    loop {
        if shared.aborted.load(Ordering::Acquire) {
            return Box::pin(close_behind_slow_peer(&link, &mut sink)).await;
        }
        // Queued frames (a close frame above all) go out before giving up on a closed link; a link
        // closed without a close frame queued (the queue was full) stops here.
        if !shared.out.take(&mut batch).await {
            if shared.aborted.load(Ordering::Acquire) {
                Box::pin(close_behind_slow_peer(&link, &mut sink)).await;
            }
            return;
        }
        // Boxed, as the driver's frame handling is: an idle writer holds only its wait.
        let written = write_batch(
            &mut sink,
            &shared.out,
            &mut batch,
            &shared.state,
            &shared.aborted,
        );
        match Box::pin(written).await {
            Ok(Written::Open) => shared.out.give_back(&mut batch),
            Ok(Written::Closed) => return,
            Ok(Written::Abandoned) => {
                if shared.aborted.load(Ordering::Acquire) {
                    Box::pin(close_behind_slow_peer(&link, &mut sink)).await;
                }
                return;
            }
            Err(e) => {
                debug!(error = %e, "write failed");
                link.mark_closed(1006, &format!("write failed: {e}"));
                return;
            }
        }
    }
}

/// Closes a link whose peer does not keep up: what is still queued is dropped, and the close
/// frame (with the link's close code, 1008) follows what the socket already holds, so a peer that
/// reads on, however slowly, hears why it was closed. A peer that does not read within the send
/// timeout gets no close frame.
async fn close_behind_slow_peer<S: Side, Snk: FrameSink>(link: &Link<S>, sink: &mut Snk) {
    link.shared.out.close();
    let (code, reason) = match link.state() {
        LinkState::Closed { code, reason } => (code, reason),
        _ => (close::POLICY, "peer too slow".to_owned()),
    };
    let _ = timeout(link.shared.config.send_timeout, sink.close(code, reason)).await;
}

/// How a batch of frames ended.
enum Written {
    /// Written and flushed; the link goes on.
    Open,
    /// A close frame was written.
    Closed,
    /// The link closed while the flush was stuck (a peer that does not read), which was given up.
    Abandoned,
}

/// Feeds the batch and whatever is queued meanwhile, then flushes once.
async fn write_batch<Snk: FrameSink>(
    sink: &mut Snk,
    out: &Outbox<Outgoing>,
    batch: &mut VecDeque<Outgoing>,
    state: &StateCell,
    aborted: &AtomicBool,
) -> Result<Written, TransportError> {
    'batches: loop {
        while let Some(item) = batch.pop_front() {
            match item {
                Outgoing::Frame(text) => sink.feed(text).await?,
                Outgoing::Close(closing) => {
                    let Closing {
                        farewell,
                        code,
                        reason,
                    } = *closing;
                    if let Some(text) = farewell {
                        let _ = sink.feed(text.into()).await;
                    }
                    let _ = sink.flush().await;
                    sink.close(code, reason).await;
                    return Ok(Written::Closed);
                }
            }
            if aborted.load(Ordering::Acquire) {
                batch.clear();
                break 'batches;
            }
        }
        if !out.try_take(batch) {
            break;
        }
    }
    // A peer that stops reading blocks the flush; once the link is closed (for being too slow,
    // say), the flush gets a short grace and is then abandoned.
    let abandon = async {
        state
            .wait_for(|s| matches!(s, LinkState::Closed { .. }))
            .await;
        if !aborted.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        biased;
        flushed = sink.flush() => flushed.map(|()| Written::Open),
        () = abandon => Ok(Written::Abandoned),
    }
}

/// Reads a link's connection, feeds its session machine, and dispatches messages to the handler.
struct Driver<S: Side, H> {
    link: Link<S>,
    handler: Arc<H>,
    session: Session<S>,
    machine: Machine<S>,
    events: Option<mpsc::Sender<S::Inbound>>,
    ordered: Option<mpsc::Sender<oneshot::Receiver<Option<String>>>>,
    /// The server's stop signal, until it comes.
    stop: Option<Stop>,
}

/// Until the server's stop signal comes (for ever without one).
async fn stopped(stop: &mut Option<Stop>) {
    match stop {
        // A server dropped without its signal stops as well.
        Some(stop) => {
            let _ = stop.signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// How a server tells its links that it stops: each closes with 1001 once the requests it is
/// handling are answered, or after `grace`.
pub(crate) struct Stop {
    pub(crate) signal: tokio::sync::broadcast::Receiver<()>,
    pub(crate) grace: Duration,
}

impl<S: Side + Dispatch<H>, H: Send + Sync + 'static> Driver<S, H> {
    /// Boxed: the driver's state is in the link's future once, not twice (an `async fn` keeps
    /// a by-value `mut self` both as its argument and as a local).
    async fn run<Src: FrameSource>(mut self: Box<Self>, mut source: Src) {
        let actions = self.machine.start(Instant::now());
        Box::pin(self.act(actions)).await;
        // One timer at the machine's deadline, reset only when that deadline moves: a fresh
        // timer per frame read costs a wake-up of tokio's time driver each time. A frame only
        // records when it came; the watchdog looks at that when it fires, and re-arms if the
        // peer was heard from since.
        let mut timer = Box::pin(sleep_until(Instant::now()));
        let mut armed_at: Option<Instant> = None;
        // Whether the peer is done sending: it closed, or the connection ended.
        let mut peer_done = false;
        // Once the server stops: when the link closes at the latest.
        let mut shutdown_at: Option<Instant> = None;
        loop {
            // Made before the state is read, so a close in between still wakes the loop.
            let changed = self.link.shared.state.changed();
            if self.link.is_closed() {
                break;
            }
            // Made before the count is read, so a request finishing in between still wakes it.
            let idle = self.link.shared.idle.notified();
            if let Some(at) = shutdown_at {
                self.link.shared.idle_wanted.store(true, Ordering::SeqCst);
                let idle = self.link.shared.in_flight.load(Ordering::SeqCst) == 0;
                if idle || Instant::now() >= at {
                    self.close_now(close::GOING_AWAY, "server shutting down")
                        .await;
                    continue;
                }
            }
            let earliest = match (self.machine.deadline(), shutdown_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if earliest != armed_at {
                if let Some(at) = earliest {
                    timer.as_mut().reset(at);
                }
                armed_at = earliest;
            }
            tokio::select! {
                frame = source.next_frame() => match frame {
                    // A frame's handling runs in a box of its own: an idle link holds only
                    // what waiting for the next frame needs, not the deepest handling path.
                    Some(Ok(Frame::Text(text))) => match self.try_now(&text) {
                        Now::Done => {}
                        now => Box::pin(self.later(&text, now)).await,
                    },
                    Some(Ok(Frame::Binary(bytes))) => {
                        if !wire::<S>().binary_text {
                            self.close_now(close::UNSUPPORTED, "binary frames are not part of this protocol").await;
                        } else if let Ok(text) = Text::try_from(bytes) {
                            match self.try_now(&text) {
                                Now::Done => {}
                                now => Box::pin(self.later(&text, now)).await,
                            }
                        } else {
                            self.close_now(close::INVALID_DATA, "binary frame is not UTF-8 text").await;
                        }
                    }
                    Some(Ok(Frame::Close(frame))) => {
                        peer_done = true;
                        let (code, reason) = frame.unwrap_or((close::NORMAL, String::new()));
                        debug!(code, %reason, "peer closed");
                        // The echo is queued before the link counts as closed: a writer that
                        // sees the link closed with nothing queued stops without a close frame.
                        let _ = self.link.shared.out.try_send(Outgoing::close(None, code, reason.clone()));
                        self.link.mark_closed(code, &reason);
                    }
                    Some(Err(TransportError::TooLarge)) => {
                        self.close_now(close::TOO_BIG, "frame too large").await;
                    }
                    Some(Err(TransportError::Protocol(e))) => {
                        debug!(error = %e, "peer broke the WebSocket protocol");
                        self.close_now(close::PROTOCOL_ERROR, "WebSocket protocol error").await;
                    }
                    Some(Err(TransportError::NotUtf8)) => {
                        self.close_now(close::INVALID_DATA, "text frame is not UTF-8").await;
                    }
                    Some(Err(TransportError::Lost(e))) => {
                        peer_done = true;
                        debug!(error = %e, "connection lost");
                        self.link.mark_closed(1006, &e);
                    }
                    None => {
                        peer_done = true;
                        self.link.mark_closed(1006, "connection closed without a close frame");
                    }
                },
                () = &mut timer, if armed_at.is_some() => {
                    armed_at = None;
                    if let Some(action) = self.machine.on_time(Instant::now()) {
                        Box::pin(self.act([action])).await;
                    }
                }
                () = stopped(&mut self.stop), if shutdown_at.is_none() && self.stop.is_some() => {
                    let grace = self.stop.take().map_or(Duration::ZERO, |stop| stop.grace);
                    shutdown_at = Some(Instant::now() + grace);
                }
                () = idle, if shutdown_at.is_some() => {}
                () = changed => {}
            }
        }
        // Wake everything still waiting.
        self.link.mark_closed(close::NORMAL, "");
        // This side closed: read on (and drop) what the peer still sends until its close comes,
        // for a while, so that the close handshake can finish. (It does not cover a process that
        // exits at once: a peer flooding a closing SocketCluster client still sees 1006 at times.)
        if !peer_done {
            let drain = timeout(CLOSE_DRAIN, async {
                while let Some(Ok(frame)) = source.next_frame().await {
                    if matches!(frame, Frame::Close(_)) {
                        break;
                    }
                }
            });
            let _ = Box::pin(drain).await;
        }
        self.link.shared.reader_done.set();
    }

    /// [`Link::start_close`] from the driver's loop, boxed: the loop's own state stays small.
    async fn close_now(&self, code: u16, reason: &str) {
        Box::pin(self.link.start_close(code, reason)).await;
    }

    /// Carries out what the session machine decided.
    async fn act(&mut self, actions: impl IntoIterator<Item = Action>) {
        for action in actions {
            match action {
                Action::Send(tag) => {
                    let provided = self.session.provided.get(&tag).cloned();
                    if self
                        .link
                        .send_raw_tag(tag, provided.as_deref())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Action::Request(tag) => self.handshake_request(tag),
                Action::Ready => {
                    self.link.shared.state.modify(|s| {
                        let was = matches!(s, LinkState::Handshaking);
                        if was {
                            *s = LinkState::Ready;
                        }
                        was
                    });
                }
                Action::Beat(Beat::Text(text)) => {
                    let _ = self.link.send_text(text).await;
                }
                Action::Beat(Beat::Message(tag)) => {
                    let provided = self.session.provided.get(&tag).cloned();
                    let _ = self.link.send_raw_tag(tag, provided.as_deref()).await;
                }
                Action::Close { code, reason } => {
                    self.link.start_close(code, &reason).await;
                    return;
                }
            }
        }
    }

    /// Sends this side's handshake request; its reply, which arrives through the driver
    /// itself, is awaited in a task of its own.
    fn handshake_request(&self, tag: Tag) {
        let link = self.link.clone();
        let info = crate::message::message_info::<S::Protocol>(tag);
        let kind = info.map_or(Kind::Request, |i| i.kind);
        let payload = self
            .session
            .provided
            .get(&tag)
            .cloned()
            .or_else(|| RawValue::from_string("{}".to_owned()).ok());
        tokio::spawn(async move {
            let failed = match link.request_raw(kind, tag, payload.as_deref(), None).await {
                // The driver has usually done this already (see `on_packet`).
                Ok(Ok(reply)) => match reply.into_raw::<S>() {
                    Ok(raw) => {
                        link.handshake_done(raw);
                        return;
                    }
                    Err(e) => e.to_string(),
                },
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            link.close(close::POLICY, &format!("handshake failed: {failed}"))
                .await;
        });
    }

    /// A text frame, read once: the common case is handled here, without a future (a frame on
    /// a ready link that the scanner reads, valid, no session message, a request with its id on
    /// a protocol whose replies carry ids, or an event; or a reply routed by its envelope).
    /// Every other frame is handed to [`Driver::later`] with what was read of it, and that path
    /// makes the decisions.
    fn try_now<'t>(&mut self, whole: &'t Text) -> Now<'t, S::Inbound> {
        let text = whole.as_str();
        let profile = wire::<S>();
        // Any traffic shows the peer is alive. Raw text heartbeats are not JSON: look at them
        // first.
        self.machine.on_traffic(Instant::now());
        if let Some(pong) = self.machine.text_beat(text) {
            return Now::Beat(pong);
        }
        if profile.batch && text.trim_start().starts_with('[') {
            return Now::Batch;
        }
        if !self.link.shared.config.one_pass {
            return Now::General(None);
        }
        let fast = match profile.read_fast::<S::Inbound>(text) {
            Some(Fast::Message(fast)) if self.link.shared.state.is_ready() => fast,
            Some(Fast::Reply(id))
                if S::SENDS_REQUESTS && !self.machine.awaiting_handshake_reply() =>
            {
                // Handed to its requester as received, to be decoded there as its reply type.
                return match self.link.resolve(id, Ok(ReplyBody::Frame(whole.clone()))) {
                    true => Now::Done,
                    false => Now::Unmatched,
                };
            }
            read => return Now::General(read),
        };
        let tag = fast.message.tag();
        let ordered = profile.request_id == RequestIdPlace::Ordered;
        let run = run_as::<S>(fast.message.kind(), fast.id.is_some());
        if rules::<S>().close_message.is_some_and(|c| c.message == tag)
            || self.is_session_message(tag)
            || repeated_step::<S>(tag)
            || fast.message.validate().is_err()
            // Ordered replies go through a slot the general path keeps.
            || (ordered && run == RunAs::Request)
            || matches!(run, RunAs::Refused(_))
        {
            return Now::General(Some(Fast::Message(fast)));
        }
        match run {
            RunAs::Request => {
                let work = self.request_work(tag, fast.id, fast.message);
                let Some(text) = self.start_request(work) else {
                    return Now::Done;
                };
                match self.link.shared.out.try_send(Outgoing::Frame(text.into())) {
                    Err(TrySendError::Full(frame)) => Now::Reply(frame),
                    // A closed queue: the link is going away.
                    Ok(()) | Err(TrySendError::Closed(_)) => Now::Done,
                }
            }
            RunAs::Event => match self.queue_event(fast.message) {
                Ok(()) => Now::Done,
                Err(message) => Now::Event(message),
            },
            RunAs::Refused(_) => Now::General(None),
        }
    }

    /// What [`Driver::try_now`] left to a future.
    async fn later(&mut self, whole: &Text, now: Now<'_, S::Inbound>) {
        match now {
            Now::Done => {}
            Now::Beat(pong) => self.act(pong).await,
            Now::Batch => self.on_batch(whole.as_str()).await,
            Now::General(read) => self.on_packet(whole.as_str(), Some(whole), read).await,
            Now::Reply(frame) => {
                let _ = self.link.enqueue_when_room(frame).await;
            }
            Now::Event(message) => self.dispatch_event(message).await,
            Now::Unmatched => self.unmatched_reply().await,
        }
    }

    /// A batch of packets (SocketCluster's arrays), each read once and handled in order.
    async fn on_batch(&mut self, text: &str) {
        let profile = wire::<S>();
        let one_pass = self.link.shared.config.one_pass;
        match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(packets) => {
                for packet in packets {
                    let packet = packet.get();
                    let read = if one_pass {
                        profile.read_fast::<S::Inbound>(packet)
                    } else {
                        None
                    };
                    self.on_packet(packet, None, read).await;
                }
            }
            Err(e) => {
                let input = InvalidInput::Decode(DecodeError::Json(e));
                Box::pin(self.invalid(None, None, input, false)).await
            }
        }
    }

    /// One JSON packet (`whole` is the frame itself, or `None` for an element of a batch), with
    /// what the one-pass read made of it. Every frame takes one of these ways: a message read
    /// in one pass is handled as it is; a reply whose envelope routes it goes to its requester
    /// as it is; a reply the envelope cannot route (its id inside the payload, or its payload
    /// first where replies come in order) is decoded as the reply type of the request it
    /// answers; anything else is classified by the general path, which words every error.
    async fn on_packet(
        &mut self,
        text: &str,
        whole: Option<&Text>,
        read: Option<Fast<'_, S::Inbound>>,
    ) {
        let profile = wire::<S>();
        let one_pass = self.link.shared.config.one_pass;
        let awaiting = self.machine.awaiting_handshake_reply();
        let mut named = None;
        match read {
            // The close message goes the general way: its reason is read from the payload's
            // text. Before the link is ready, session messages need their payload's text too.
            Some(Fast::Message(fast))
                if self.link.shared.state.is_ready()
                    && rules::<S>().close_message.map(|c| c.message)
                        != Some(fast.message.tag()) =>
            {
                return self.on_decoded(fast.message, fast.id, None).await;
            }
            // The handshake's reply takes the general path: the driver keeps it.
            Some(Fast::Reply(id)) if !awaiting => {
                if !S::SENDS_REQUESTS {
                    return Box::pin(self.not_a_reply(text)).await;
                }
                let frame = whole.cloned().unwrap_or_else(|| Text::from(text));
                if !self.link.resolve(id, Ok(ReplyBody::Frame(frame))) {
                    Box::pin(self.unmatched_reply()).await;
                }
                return;
            }
            Some(Fast::ReplyTo(name)) => named = Some(name),
            _ => {}
        }
        if one_pass && !awaiting {
            if let Some(fast) = self.link.decode_reply(text, named) {
                if !self
                    .link
                    .resolve(fast.id, Ok(ReplyBody::Decoded(fast.reply)))
                {
                    Box::pin(self.unmatched_reply()).await;
                }
                return;
            }
        }
        let frame = match profile.classify(text) {
            Ok(frame) => frame,
            Err(e) => {
                let array = text.trim_start().starts_with('[');
                return Box::pin(self.invalid(None, None, InvalidInput::Decode(e), array)).await;
            }
        };
        match frame {
            RawFrame::Reply(_)
                if !S::SENDS_REQUESTS && !self.machine.awaiting_handshake_reply() =>
            {
                Box::pin(self.not_a_reply(text)).await;
            }
            RawFrame::Reply(reply) => {
                let result = reply.result.map(|p| ReplyBody::Raw(p.to_json()));
                // While this side waits for the reply to its handshake request, it has sent no
                // other request (application requests wait for the handshake), so a reply that
                // resolves one is that reply: the link is ready before the next frame is read,
                // since the peer may send right behind it (SocketCluster invokes the client at
                // once).
                let handshake_reply = match &result {
                    Ok(ReplyBody::Raw(raw)) if self.machine.awaiting_handshake_reply() => {
                        Some(raw.clone())
                    }
                    _ => None,
                };
                let resolved = self.link.resolve(reply.id, result);
                if resolved && self.machine.awaiting_handshake_reply() {
                    self.machine.handshake_replied();
                    if let Some(reply) = handshake_reply {
                        self.link.handshake_done(reply);
                    }
                }
                if !resolved {
                    Box::pin(self.unmatched_reply()).await;
                }
            }
            RawFrame::Message(raw) => Box::pin(self.on_message(raw)).await,
        }
    }

    /// A frame shaped like a reply, on a side that sends no requests: a message with a name this
    /// side does not know (a Skynet client's `{"type": "result"}` is `No such command result`).
    async fn not_a_reply(&mut self, text: &str) {
        let name = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
            .ok()
            .and_then(|frame| frame.get(wire::<S>().tag).map(ToString::to_string))
            .unwrap_or_default();
        let unknown = InvalidInput::Decode(DecodeError::UnknownMessage { name });
        Box::pin(self.invalid(Some(Tag::Str("")), None, unknown, false)).await;
    }

    /// A reply that matched no pending request was dropped and counted; protocols that close on
    /// invalid frames close here too.
    async fn unmatched_reply(&mut self) {
        if let Some(prefix) = rules::<S>().invalid_closes {
            let reason = format!("{prefix}: reply matches no pending request");
            self.link.start_close(close::POLICY, &reason).await;
        }
    }

    /// A frame that cannot be used. `tag` is the message it names, when it names one it could
    /// be; `answer` is `Some(id)` when it can be answered (a request with its id, or any frame of
    /// an ordered protocol on a side that takes requests). It is answered with an error, worded
    /// by the protocol's `invalid` rules (or dropped without a word where a rule says
    /// `ignored`); what cannot be answered is logged and dropped: an unknown message without more
    /// (a peer may send what this side does not know), anything else counted, and more than
    /// `max_invalid` such frames close the link. Protocols declaring `invalid closes` close at
    /// once.
    async fn invalid(
        &mut self,
        tag: Option<Tag>,
        answer: Option<Option<RequestId>>,
        input: InvalidInput,
        array: bool,
    ) {
        let rules = rules::<S>();
        let kind = invalid_kind(&input, array, wire::<S>().tag);
        let action = kind
            .and_then(|kind| InvalidRule::find(rules.invalid_rules, kind, tag))
            .map(|rule| rule.action);
        let detail = match &self.session.describe {
            Some(describe) => describe(&input),
            None => input.to_string(),
        };
        debug!(%detail, "invalid frame");
        // Anything unusable before the handshake finished is traffic before the handshake.
        if self.peer_still_handshaking() {
            self.close_before_handshake().await;
            return;
        }
        let name = name_read::<S>(&input, tag.unwrap_or(Tag::Str("")));
        let placeholders = Placeholders {
            name: &name,
            detail: &detail,
            side: S::NAME,
            peer: <S::Peer as Side>::NAME,
        };
        if let Some(InvalidAction::Close { text }) = action {
            let reason = InvalidAction::render(text, &placeholders);
            self.link.start_close(close::POLICY, &reason).await;
            return;
        }
        if let Some(prefix) = rules.invalid_closes {
            self.link
                .start_close(close::POLICY, &format!("{prefix}: {detail}"))
                .await;
            return;
        }
        if action == Some(InvalidAction::Ignore) {
            return;
        }
        // In an ordered protocol every frame could be a request, if this side takes any.
        let ordered = wire::<S>().request_id == RequestIdPlace::Ordered && S::TAKES_REQUESTS;
        if ordered || answer.is_some() {
            let tag = tag.unwrap_or(Tag::Str(""));
            let error = match (action, &self.session.answer) {
                (Some(InvalidAction::Answer { text, name }), _) => {
                    // A parser's message needs no "frame is not JSON" in front of it here.
                    let detail = match (&input, &self.session.describe) {
                        (InvalidInput::Decode(DecodeError::Json(e)), None) => e.to_string(),
                        _ => detail.clone(),
                    };
                    let error = RemoteError::new(InvalidAction::render(
                        text,
                        &Placeholders {
                            detail: &detail,
                            ..placeholders
                        },
                    ));
                    match name {
                        Some(name) => error.with_name(name),
                        None => error,
                    }
                }
                (_, Some(answer)) => answer(tag, &input, detail),
                (_, None) => RemoteError::new(detail),
            };
            self.reply_now(tag, answer.flatten(), Err(error)).await;
            return;
        }
        if kind == Some(InvalidKind::Unknown) {
            return;
        }
        if let Some(close) = self.machine.count_invalid() {
            self.act([close]).await;
        }
    }

    /// Whether a message from the peer now is traffic before the handshake. Not while this side
    /// waits for the reply to its own handshake request: the peer has had it, and may send ahead
    /// of its reply (a SocketCluster server sends `#removeAuthToken` before the reply to a
    /// `#handshake` with a bad token); such messages are dispatched as usual.
    fn peer_still_handshaking(&self) -> bool {
        matches!(self.link.state(), LinkState::Handshaking)
            && !self.machine.awaiting_handshake_reply()
    }

    /// Closes as the protocol says for traffic before the handshake finished.
    async fn close_before_handshake(&mut self) {
        Box::pin(self.act([Machine::<S>::before_handshake()])).await;
    }

    async fn on_message(&mut self, raw: RawMessage<'_>) {
        let request_id = raw.id.clone();
        let is_request = raw.class == FrameClass::Request || request_id.is_some();
        let decoded = S::Inbound::decode(&raw);
        let message = match decoded {
            Ok(m) => m,
            Err(e) => {
                let tag = tag_of::<S::Protocol>(raw.name);
                let e = match e {
                    DecodeError::UnknownMessage { name } => DecodeError::UnknownMessage {
                        name: as_written(wire::<S>(), raw.class, name),
                    },
                    e => e,
                };
                let correlatable = is_request
                    && (request_id.is_some() || wire::<S>().request_id == RequestIdPlace::Ordered);
                return Box::pin(self.invalid(
                    Some(tag),
                    correlatable.then_some(request_id),
                    InvalidInput::Decode(e),
                    false,
                ))
                .await;
            }
        };
        self.on_decoded(message, request_id, Some(&raw)).await;
    }

    /// A decoded message: validation, session rules, then dispatch. `raw` is the classified
    /// frame when there is one; the single-pass path has none and is only taken where the
    /// session rules do not need the payload's text.
    async fn on_decoded(
        &mut self,
        message: S::Inbound,
        request_id: Option<RequestId>,
        raw: Option<&RawMessage<'_>>,
    ) {
        let tag = message.tag();
        let kind = message.kind();
        if let Err(errors) = message.validate() {
            let correlatable = kind == Kind::Request
                && (request_id.is_some() || wire::<S>().request_id == RequestIdPlace::Ordered);
            return Box::pin(self.invalid(
                Some(tag),
                correlatable.then_some(request_id),
                InvalidInput::Validation(errors),
                false,
            ))
            .await;
        }
        // Session messages are few (handshake steps, heartbeats, the close message): the check is
        // cheap, their handling boxed, so a frame's handling stays small.
        if self.is_session_message(tag) && Box::pin(self.on_session_message(tag, raw)).await {
            return;
        }
        if self.peer_still_handshaking() {
            Box::pin(self.close_before_handshake()).await;
            return;
        }
        // A message the peer sends as a handshake step is not valid again once the handshake
        // finished (the Clusterio master has nothing for a second `register_control`): it names
        // no message valid now. (Handshake requests are answered by the handler as any request.)
        if repeated_step::<S>(tag) && matches!(self.link.state(), LinkState::Ready) {
            let name = match tag {
                Tag::Str(s) => serde_json::to_string(s).unwrap_or_default(),
                Tag::Int(n) => n.to_string(),
            };
            let unknown = InvalidInput::Decode(DecodeError::UnknownMessage { name });
            Box::pin(self.invalid(None, None, unknown, false)).await;
            return;
        }
        match run_as::<S>(kind, request_id.is_some()) {
            RunAs::Request => self.dispatch_request(tag, request_id, message).await,
            RunAs::Event => self.dispatch_event(message).await,
            RunAs::Refused(key) => {
                let missing = InvalidInput::Decode(DecodeError::MissingKey(key));
                Box::pin(self.invalid(Some(tag), None, missing, false)).await;
            }
        }
    }

    /// Whether [`Driver::on_session_message`] has anything to do with a message tagged `tag`.
    fn is_session_message(&self, tag: Tag) -> bool {
        let ready = self.link.shared.state.is_ready();
        rules::<S>().close_message.is_some_and(|c| c.message == tag)
            || self.machine.message_beat(tag, ready).is_some()
            || self.machine.peer_step(tag).is_some()
    }

    /// Handles handshake steps, heartbeats and the close message; `true` when consumed.
    async fn on_session_message(&mut self, tag: Tag, raw: Option<&RawMessage<'_>>) -> bool {
        let rules = rules::<S>();
        if let Some(close) = rules.close_message.filter(|c| c.message == tag) {
            let reason = raw
                .and_then(|raw| field_text(&raw.payload, close.reason))
                .unwrap_or_default();
            // The peer's code, where the message carries one and it may be sent in a close
            // frame (RFC 6455 7.4: 1000-2999 but the reserved ones, and 3000-4999).
            let code = close
                .code
                .zip(raw)
                .and_then(|(field, raw)| field_u64(&raw.payload, field))
                .and_then(|code| u16::try_from(code).ok())
                .filter(|code| sendable_close_code(*code))
                .unwrap_or(close::NORMAL);
            debug!(code, %reason, "peer sent its close message");
            // Queued before the link counts as closed (see the close frame's echo above).
            let _ = self
                .link
                .shared
                .out
                .try_send(Outgoing::close(None, code, reason.clone()));
            self.link.mark_closed(code, &reason);
            return true;
        }
        let ready = matches!(self.link.state(), LinkState::Ready);
        if let Some(pong) = self.machine.message_beat(tag, ready) {
            self.act(pong).await;
            return true;
        }
        // Not the step the handshake waits for: a heartbeat before the handshake finished, or a
        // handshake message repeated.
        let Some(step) = self.machine.peer_step(tag) else {
            return false;
        };
        // Handshake steps always come through the classified path (the link is not ready yet).
        let Some(raw) = raw else { return false };
        if let Some(code) = step.malformed_id {
            // The step's request id must be there, of the wire's id type.
            let text = matches!(
                wire::<S>().request_id,
                RequestIdPlace::Key { text: true, .. }
            );
            let well_formed = match &raw.id {
                Some(RequestId::Int(_)) => !text,
                Some(RequestId::Str(_)) => text,
                None => false,
            };
            if !well_formed {
                let reason = <S::Protocol as Protocol>::CloseCode::reason_for(code)
                    .unwrap_or("handshake rejected");
                self.link.start_close(code, reason).await;
                return true;
            }
        }
        if let Some(check) = &self.session.check {
            if let Err(code) = check(raw.id.as_ref(), &raw.payload.to_json()) {
                let reason = <S::Protocol as Protocol>::CloseCode::reason_for(code)
                    .unwrap_or("handshake rejected");
                self.link.start_close(code, reason).await;
                return true;
            }
        }
        if step.auth_field.is_some() {
            if let Some(auth) = self.session.auth.clone() {
                if let Err(reason) = auth(self.link.clone(), raw.payload.to_json()).await {
                    let code = step.failure.unwrap_or(close::POLICY);
                    let text = <S::Protocol as Protocol>::CloseCode::reason_for(code)
                        .map_or(reason, str::to_owned);
                    self.link.start_close(code, &text).await;
                    return true;
                }
            }
        }
        // Heartbeat intervals may be taken from this message.
        let interval = rules.heartbeats.iter().find_map(|h| match h.interval {
            Interval::FromField { message, field } if message == tag => {
                field_u64(&raw.payload, field)
            }
            _ => None,
        });
        let actions = self.machine.peer_stepped(interval, Instant::now());
        self.act(actions).await;
        // A request step is answered by the handler like any request.
        !step.request
    }

    async fn dispatch_request(&mut self, tag: Tag, id: Option<RequestId>, message: S::Inbound) {
        let mut work = self.request_work(tag, id, message);
        if wire::<S>().request_id != RequestIdPlace::Ordered {
            if let Some(text) = self.start_request(work) {
                let _ = self.link.enqueue(text).await;
            }
            return;
        }
        let (tx, rx) = oneshot::channel();
        if let Some(reply) = futures_util::FutureExt::now_or_never(work.as_mut()) {
            let _ = tx.send(reply);
        } else {
            tokio::spawn(async move {
                let _ = tx.send(work.await);
            });
        }
        self.ordered_slot(rx).await;
    }

    /// A request's handling, to the text of its reply (`None` when it has none).
    fn request_work(
        &self,
        tag: Tag,
        id: Option<RequestId>,
        message: S::Inbound,
    ) -> std::pin::Pin<Box<dyn Future<Output = Option<String>> + Send>> {
        let handler = self.handler.clone();
        let link = self.link.clone();
        let span = debug_span!("handle", request = %tag);
        link.shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let work = async move {
            let outcome = S::dispatch(&handler, message).await;
            let reply = match outcome {
                Outcome::Reply(result) => encode_reply::<S>(&link, tag, id.as_ref(), result),
                Outcome::Done | Outcome::Session => None,
            };
            if link.shared.in_flight.fetch_sub(1, Ordering::SeqCst) == 1
                && link.shared.idle_wanted.load(Ordering::SeqCst)
            {
                link.shared.idle.notify_waiters();
            }
            reply
        };
        // The span is only entered on every poll when something listens for it.
        if span.is_disabled() {
            Box::pin(work)
        } else {
            Box::pin(work.instrument(span))
        }
    }

    /// Starts a request of a protocol whose replies carry ids. Most handlers answer without
    /// waiting: the work is polled once, and only a handler that has to wait gets a task of its
    /// own (so a slow one never holds up the others). The reply when it came at once.
    fn start_request(
        &self,
        mut work: std::pin::Pin<Box<dyn Future<Output = Option<String>> + Send>>,
    ) -> Option<String> {
        if let Some(reply) = futures_util::FutureExt::now_or_never(work.as_mut()) {
            return reply;
        }
        let link = self.link.clone();
        tokio::spawn(async move {
            if let Some(text) = work.await {
                let _ = link.enqueue(text).await;
            }
        });
        None
    }

    /// Queues a reply slot for protocols that answer in order; one task writes them in order.
    async fn ordered_slot(&mut self, rx: oneshot::Receiver<Option<String>>) {
        let sender = self.ordered.get_or_insert_with(|| {
            let (tx, mut slots) = mpsc::channel::<oneshot::Receiver<Option<String>>>(1024);
            let link = self.link.clone();
            tokio::spawn(async move {
                while let Some(slot) = slots.recv().await {
                    if let Ok(Some(text)) = slot.await {
                        if link.enqueue(text).await.is_err() {
                            return;
                        }
                    }
                }
            });
            tx
        });
        let _ = sender.send(rx).await;
    }

    async fn reply_now(
        &mut self,
        tag: Tag,
        id: Option<RequestId>,
        result: Result<Reply, RemoteError>,
    ) {
        let Some(text) = encode_reply::<S>(&self.link, tag, id.as_ref(), result) else {
            return;
        };
        if wire::<S>().request_id == RequestIdPlace::Ordered {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Some(text));
            self.ordered_slot(rx).await;
        } else {
            let _ = self.link.enqueue(text).await;
        }
    }

    async fn dispatch_event(&mut self, message: S::Inbound) {
        if let Err(message) = self.queue_event(message) {
            if let Some(sender) = &self.events {
                let _ = sender.send(message).await;
            }
        }
    }

    /// Queues an event for the handler's event task; `Err` with the event when the queue is full
    /// (the caller waits for room).
    fn queue_event(&mut self, message: S::Inbound) -> Result<(), S::Inbound> {
        // Events run one after another, in arrival order, beside the reader.
        let sender = self.events.get_or_insert_with(|| {
            let (tx, mut rx) = mpsc::channel::<S::Inbound>(256);
            let handler = self.handler.clone();
            tokio::spawn(async move {
                while let Some(message) = rx.recv().await {
                    S::dispatch(&handler, message).await;
                }
            });
            tx
        });
        match sender.try_send(message) {
            Err(mpsc::error::TrySendError::Full(message)) => Err(message),
            // A closed queue: the link is going away.
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        }
    }
}

/// Whether `tag` is a handshake step the peer sends (not a request): once the handshake is done,
/// that message is not valid again.
fn repeated_step<S: Side>(tag: Tag) -> bool {
    rules::<S>()
        .handshake
        .iter()
        .any(|step| step.sender != my_role::<S>() && !step.request && step.messages.contains(&tag))
}

/// How a decoded message of kind `kind` runs, by whether it came with a request id.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RunAs {
    /// As a request, answered.
    Request,
    /// As an event, handled one after another on the event task.
    Event,
    /// Not at all: a request without the id it must carry, which could never be answered.
    Refused(&'static str),
}

fn run_as<S: Side>(kind: Kind, has_id: bool) -> RunAs {
    match (kind, wire::<S>().request_id) {
        (Kind::Request, RequestIdPlace::Ordered) => RunAs::Request,
        (Kind::Request, _) if has_id => RunAs::Request,
        // A request sent without an id expects no reply where the id is optional
        // (SocketCluster's `cid`): it runs as an event would.
        (Kind::Request, RequestIdPlace::Key { optional: true, .. }) | (Kind::Event, _) => {
            RunAs::Event
        }
        (Kind::Request, RequestIdPlace::Key { key, .. }) => RunAs::Refused(key),
        (Kind::Request, RequestIdPlace::Sequence) | (Kind::Message, _) => RunAs::Event,
    }
}

/// What [`Driver::try_now`] did with a frame: done, or what is left for [`Driver::later`].
enum Now<'t, I> {
    /// Handled.
    Done,
    /// A raw text heartbeat, and the machine's answer to it.
    Beat(Option<Action>),
    /// A batch of packets.
    Batch,
    /// Not the common case: the frame goes the general way ([`Driver::on_packet`]), with what
    /// the one-pass read made of it (`None`: nothing).
    General(Option<Fast<'t, I>>),
    /// Handled, but its reply waits for room in the send queue.
    Reply(Outgoing),
    /// Decoded, but its event waits for room in the event queue.
    Event(I),
    /// A reply that matched no pending request.
    Unmatched,
}

/// Encodes a message once, to send the same frame to many links of side `S` (fan-out with
/// [`Link::try_send_frame`] or a [`crate::broker::Broker`]). Protocols that number their frames
/// cannot share a frame between links.
pub fn encode_frame<S: Side, M: Message + SendableBy<S>>(message: &M) -> Result<String, SendError> {
    if wire::<S>().sequence.is_some() {
        return Err(SendError::Encode(crate::EncodeError::Sequenced));
    }
    message.validate()?;
    encode_typed::<S, M>(message, None, None)
}

/// A message of side `S`'s protocol as one frame's text.
fn encode_typed<S: Side, M: Message>(
    message: &M,
    id: Option<&RequestId>,
    seq: Option<i64>,
) -> Result<String, SendError> {
    let mut buf = Vec::with_capacity(FRAME_CAPACITY);
    wire::<S>().encode_message(
        &mut buf,
        M::KIND,
        M::TAG,
        M::HAS_PAYLOAD.then_some(message),
        id,
        seq,
    )?;
    // serde_json writes UTF-8.
    Ok(String::from_utf8(buf).unwrap_or_default())
}

fn encode_reply<S: Side>(
    link: &Link<S>,
    tag: Tag,
    id: Option<&RequestId>,
    result: Result<Reply, RemoteError>,
) -> Option<String> {
    let profile = wire::<S>();
    let seq = link.seq();
    let mut buf = Vec::with_capacity(FRAME_CAPACITY);
    let failed = |buf: &mut Vec<u8>, error: &RemoteError| {
        profile.encode_reply::<()>(buf, tag, id, seq, Err(error))
    };
    let written = match &result {
        Ok(reply) => reply.encode(profile, &mut buf, tag, id, seq).or_else(|e| {
            // The peer still gets an answer: a failure saying why there is no result.
            buf.clear();
            failed(
                &mut buf,
                &RemoteError::new(format!("cannot encode the reply: {e}")),
            )
        }),
        Err(error) => failed(&mut buf, error),
    };
    match written {
        Ok(()) => String::from_utf8(buf).ok(),
        Err(e) => {
            warn!(error = %e, "cannot encode a reply");
            None
        }
    }
}

/// A message name as read from a frame (quoted when it is a string), with the suffix its
/// framing adds (`foo` read from `foo_request` is `foo_request` again).
fn as_written(profile: &WireProfile, class: FrameClass, name: String) -> String {
    let framing = match class {
        FrameClass::Request => profile.request,
        FrameClass::Event => profile.event,
        FrameClass::Plain => return name,
    };
    match serde_json::from_str::<String>(&name) {
        Ok(bare) => serde_json::to_string(&suffixed(framing, &bare)).unwrap_or(name),
        Err(_) => name,
    }
}

/// A bare message name as a frame of this framing writes it.
fn suffixed(framing: Framing, bare: &str) -> String {
    match framing {
        Framing::Suffix(suffix) => format!("{bare}{suffix}"),
        _ => bare.to_owned(),
    }
}

/// How long a side that closed reads on, waiting for the peer's close.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);

/// What an `invalid` rule calls a frame that could not be used.
fn invalid_kind(input: &InvalidInput, array: bool, tag_key: &str) -> Option<InvalidKind> {
    Some(match input {
        InvalidInput::Decode(DecodeError::Json(_)) => InvalidKind::Json,
        InvalidInput::Decode(DecodeError::NotAnObject) if array => InvalidKind::Array,
        InvalidInput::Decode(DecodeError::NotAnObject) => InvalidKind::Object,
        InvalidInput::Decode(
            DecodeError::MissingKey(key) | DecodeError::WrongKeyType { key, .. },
        ) if *key == tag_key => InvalidKind::Untagged,
        InvalidInput::Decode(DecodeError::UnknownMessage { .. }) => InvalidKind::Unknown,
        InvalidInput::Decode(
            DecodeError::UnexpectedKey(_)
            | DecodeError::MissingKey(_)
            | DecodeError::WrongKeyType { .. },
        ) => InvalidKind::Envelope,
        InvalidInput::Decode(DecodeError::Payload { .. }) | InvalidInput::Validation(_) => {
            InvalidKind::Payload
        }
        InvalidInput::Decode(_) => return None,
    })
}

/// The message name a frame that could not be used carried, as the frame wrote it (`{name}` in
/// `invalid` rules): a known message's tag with the suffix its kind is framed with
/// (`list_instances_request`); empty when it named none.
fn name_read<S: Side>(input: &InvalidInput, tag: Tag) -> String {
    match (input, tag) {
        // The error quotes string names; the rule wants the name itself.
        (InvalidInput::Decode(DecodeError::UnknownMessage { name }), _) => {
            serde_json::from_str::<String>(name).unwrap_or_else(|_| name.clone())
        }
        (InvalidInput::Decode(DecodeError::Payload { .. }) | InvalidInput::Validation(_), tag) => {
            match tag {
                Tag::Str(s) => {
                    let profile = wire::<S>();
                    let framing = <S::Protocol as Protocol>::MESSAGES
                        .iter()
                        .find(|m| m.tag == tag)
                        .map_or(Framing::Tagged, |m| match m.kind {
                            Kind::Request => profile.request,
                            Kind::Event => profile.event,
                            Kind::Message => Framing::Tagged,
                        });
                    suffixed(framing, s)
                }
                Tag::Int(n) => n.to_string(),
            }
        }
        _ => String::new(),
    }
}

/// Encodes a message of any kind by its tag (session traffic), with `{}` for a payload the
/// message has and none was given.
fn encode_tag<S: Side>(
    tag: Tag,
    payload: Option<&RawValue>,
    seq: Option<i64>,
) -> Result<String, SendError> {
    let Some(info) = crate::message::message_info::<S::Protocol>(tag) else {
        return Err(SendError::Closed);
    };
    let empty = RawValue::from_string("{}".to_owned()).ok();
    let payload = match (payload, info.has_payload) {
        (_, false) => None,
        (Some(p), true) => Some(p),
        (None, true) => empty.as_deref(),
    };
    let mut buf = Vec::with_capacity(64);
    wire::<S>().encode_message(&mut buf, info.kind, info.tag, payload, None, seq)?;
    String::from_utf8(buf).map_err(|_| SendError::Closed)
}

/// Where a link starts: from scratch, or after a greeting already written.
#[derive(Debug, Clone, Copy)]
pub struct Resume {
    /// Handshake messages of this side already written.
    pub greeted: usize,
    /// The sequence number of this side's next frame.
    pub next_seq: i64,
    /// When the connection began.
    pub started: Instant,
}

impl Resume {
    /// A link starting now, from scratch.
    pub fn fresh() -> Resume {
        Resume {
            greeted: 0,
            next_seq: 1,
            started: Instant::now(),
        }
    }
}

/// The frames side `S` sends before its peer's first handshake message (the Clusterio master's
/// `hello`), as a link with `session` writes them, and where a link resumes after them: the
/// session machine's first `Send`s.
pub(crate) fn greeting<S: Side>(
    session: &Session<S>,
    started: Instant,
) -> Result<(Vec<String>, Resume), SendError> {
    let fresh = Resume {
        greeted: 0,
        next_seq: 1,
        started,
    };
    let mut machine = Machine::<S>::new(&LinkConfig::default(), fresh, |_, _| None);
    let mut frames = Vec::new();
    let mut next_seq = 1;
    for action in machine.start(started) {
        let Action::Send(tag) = action else { break };
        let seq = wire::<S>().sequence.map(|_| next_seq);
        if seq.is_some() {
            next_seq += 1;
        }
        frames.push(encode_tag::<S>(
            tag,
            session.provided.get(&tag).map(|p| &**p),
            seq,
        )?);
    }
    let resume = Resume {
        greeted: frames.len(),
        next_seq,
        started,
    };
    Ok((frames, resume))
}

/// Whether `text` holds a message that side `S` takes as its peer's first handshake message
/// (for choosing among the sides served on one path): the step a fresh session machine waits
/// for.
pub(crate) fn opens<S: Side>(text: &str) -> bool {
    let Ok(RawFrame::Message(raw)) = wire::<S>().classify(text) else {
        return false;
    };
    let tag = tag_of::<S::Protocol>(raw.name);
    let now = Instant::now();
    let mut machine = Machine::<S>::new(&LinkConfig::default(), Resume::fresh(), |_, _| None);
    machine.start(now);
    machine.peer_step(tag).is_some()
}

/// The declared tag of a name read from a frame.
fn tag_of<P: Protocol>(name: TagRef<'_>) -> Tag {
    match name {
        TagRef::Int(n) => Tag::Int(n),
        TagRef::Str(read) => P::MESSAGES
            .iter()
            .find(|m| matches!(m.tag, Tag::Str(declared) if declared == read))
            .map_or(
                // Unknown names are not 'static; replies to them only need a tag for suffix
                // framing.
                Tag::Str(""),
                |m| m.tag,
            ),
    }
}

fn field_text(payload: &Payload<'_>, field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(payload.to_json().get()).ok()?;
    match value.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Whether a close frame may carry `code` (RFC 6455, section 7.4).
fn sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

fn field_u64(payload: &Payload<'_>, field: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(payload.to_json().get()).ok()?;
    value.get(field)?.as_u64()
}
