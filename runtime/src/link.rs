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

mod driver;
mod writer;

use driver::Driver;
pub(crate) use driver::Stop;
use writer::write_loop;

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
        let driver = Driver::<S, H>::new(link.clone(), handler, session, machine, stop);
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
    /// (Where replies come in order, the oldest request's, whatever id the frame carries.)
    fn resolve(&self, id: Option<RequestId>, result: ReplyResult) -> bool {
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

/// A bare message name as a frame of this framing writes it.
fn suffixed(framing: Framing, bare: &str) -> String {
    match framing {
        Framing::Suffix(suffix) => format!("{bare}{suffix}"),
        _ => bare.to_owned(),
    }
}

/// How long a side that closed reads on, waiting for the peer's close.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);

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
