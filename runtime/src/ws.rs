//! WebSocket connectors: a server with an accept loop, and a client that reconnects.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as HttpRequest, Response as HttpResponse,
};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{Instrument, debug, debug_span, warn};

pub use crate::error::{ConnectError, WsFailure};
use futures_util::FutureExt as _;
use futures_util::future::Either;

use crate::link::{Link, LinkConfig, Session, Stop, close};
use crate::message::{Dispatch, Protocol, Side};
use crate::transport::{WsSink, WsSource, split_ws};

/// Sizes the WebSocket layer enforces (tungstenite leaves the write buffer unbounded).
#[derive(Debug, Clone, Copy)]
pub struct WsLimits {
    /// Largest incoming message; larger ones close the link with 1009.
    pub max_message_size: usize,
    /// Largest write buffer before writes fail (backpressure beyond is the link's queue).
    pub max_write_buffer: usize,
    /// Size of each connection's read buffer. tungstenite keeps (and zero-fills) the whole
    /// buffer per connection, so this sets most of an idle connection's memory; small frames
    /// need little.
    pub read_buffer: usize,
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits {
            max_message_size: 16 << 20,
            max_write_buffer: 8 << 20,
            read_buffer: 4096,
        }
    }
}

impl WsLimits {
    fn config(self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer.max(256))
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
            .write_buffer_size(64 << 10)
            .max_write_buffer_size(
                self.max_write_buffer
                    .max((64 << 10) + self.max_message_size),
            )
    }
}

/// A failure of the WebSocket layer while connecting.
fn failed(e: tokio_tungstenite::tungstenite::Error) -> ConnectError {
    ConnectError::WebSocket(WsFailure(e))
}

/// Connects to `url` as side `S`: `connect::<chat::Client>(url).await` opens a link with the
/// default settings and no handler (`()`: requests from the peer are refused, events ignored),
/// once the protocol's handshake is done. Settings, the session and the handler are optional:
///
/// ```ignore
/// let link = connect::<chat::Client>("ws://127.0.0.1:8000/")
///     .session(Session::new().with(chat::Hello { name: "ann".into() }))
///     .handler(|link| App { link })
///     .await?;
/// ```
///
/// [`Connect::reconnecting`] keeps such a link up instead.
pub fn connect<S: Side>(url: impl Into<String>) -> Connect<S, fn(Link<S>)> {
    Connect {
        url: url.into(),
        config: LinkConfig::default(),
        limits: WsLimits::default(),
        session: Session::new(),
        #[cfg(feature = "tls")]
        tls: None,
        make_handler: |_| (),
    }
}

/// A connection about to be made: see [`connect`]. `F` builds the link's handler.
#[must_use = "a connection is made when it is awaited"]
pub struct Connect<S: Side, F> {
    url: String,
    config: LinkConfig,
    limits: WsLimits,
    session: Session<S>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    make_handler: F,
}

impl<S: Side, F> Connect<S, F> {
    /// Limits and timeouts of the link.
    pub fn config(mut self, config: LinkConfig) -> Self {
        self.config = config;
        self
    }

    /// WebSocket size limits.
    pub fn limits(mut self, limits: WsLimits) -> Self {
        self.limits = limits;
        self
    }

    /// What this side sends in the handshake, and checks of the peer's.
    pub fn session(mut self, session: Session<S>) -> Self {
        self.session = session;
        self
    }

    /// Connects to a `wss://` URL with this TLS configuration (its root store decides which
    /// servers are trusted).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<tokio_rustls::rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Builds the link's handler from the link (to send from inside handlers).
    pub fn handler<G, H>(self, make_handler: G) -> Connect<S, G>
    where
        G: FnOnce(Link<S>) -> H,
    {
        Connect {
            url: self.url,
            config: self.config,
            limits: self.limits,
            session: self.session,
            #[cfg(feature = "tls")]
            tls: self.tls,
            make_handler,
        }
    }

    /// The same settings, with a handler maker borrowed from a reconnecting client.
    fn again<H>(&self) -> Connect<S, &F>
    where
        F: Fn(Link<S>) -> H,
    {
        Connect {
            url: self.url.clone(),
            config: self.config.clone(),
            limits: self.limits,
            session: self.session.clone(),
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
            make_handler: &self.make_handler,
        }
    }

    /// Connects and runs the protocol's handshake; returns once the link is ready (what
    /// awaiting the `Connect` does).
    pub async fn open<H>(self) -> Result<Link<S>, ConnectError>
    where
        F: FnOnce(Link<S>) -> H,
        S: Dispatch<H>,
        H: Send + Sync + 'static,
    {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls {
            let ws = open_tls(&self.url, tls, self.limits).await?;
            let link = start::<S, H, _>(ws, self.config, self.session, self.make_handler);
            return wait_ready(link).await;
        }
        let (ws, _) = tokio_tungstenite::connect_async_with_config(
            self.url.as_str(),
            Some(self.limits.config()),
            true,
        )
        .await
        .map_err(failed)?;
        let link = start::<S, H, MaybeTlsStream<TcpStream>>(
            ws,
            self.config,
            self.session,
            self.make_handler,
        );
        wait_ready(link).await
    }

    /// Keeps a link to the server up instead: connects in the background, and after every drop
    /// waits (`backoff`, never below the protocol's `reconnect min`) and connects again, running
    /// the session and then `on_connect` (to re-run subscriptions) each time. The handler is
    /// built for every connection, so it must be callable again: make the closure before
    /// (`let make = move |_| App { .. };`), since one written inside `.handler(..)` is taken as
    /// callable once.
    pub fn reconnecting<H, C, Fut>(self, backoff: Backoff, on_connect: C) -> ReconnectingClient<S>
    where
        F: Fn(Link<S>) -> H + Send + Sync + 'static,
        S: Dispatch<H>,
        H: Send + Sync + 'static,
        C: Fn(Link<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        ReconnectingClient::start(self, backoff, on_connect)
    }
}

impl<S, F, H> std::future::IntoFuture for Connect<S, F>
where
    S: Side + Dispatch<H>,
    F: FnOnce(Link<S>) -> H + Send + 'static,
    H: Send + Sync + 'static,
{
    type Output = Result<Link<S>, ConnectError>;
    type IntoFuture = std::pin::Pin<Box<dyn Future<Output = Result<Link<S>, ConnectError>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.open())
    }
}

fn start<S, H, T>(
    ws: WebSocketStream<T>,
    config: LinkConfig,
    session: Session<S>,
    make_handler: impl FnOnce(Link<S>) -> H,
) -> Link<S>
where
    S: Side + Dispatch<H>,
    H: Send + Sync + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (source, sink) = split_ws(ws);
    Link::spawn(source, sink, config, session, make_handler)
}

/// [`serve_link`] over a plain or a TLS connection.
fn serve_accepted<S, H>(
    accepted: Accepted,
    admitted: Admitted,
    session: Session<S>,
    make_handler: impl FnOnce(Link<S>) -> H,
) -> impl Future<Output = ()> + Send + 'static
where
    S: Side + Dispatch<H>,
    H: Send + Sync + 'static,
{
    let fresh = crate::link::Resume::fresh();
    match accepted {
        #[cfg(not(feature = "tls"))]
        Accepted::Plain((source, sink)) => {
            serve_link(source, sink, admitted, fresh, session, make_handler)
        }
        #[cfg(feature = "tls")]
        Accepted::Plain((source, sink)) => Either::Left(serve_link(
            source,
            sink,
            admitted,
            fresh,
            session,
            make_handler,
        )),
        #[cfg(feature = "tls")]
        Accepted::Tls((source, sink)) => Either::Right(serve_link(
            source,
            sink,
            admitted,
            fresh,
            session,
            make_handler,
        )),
    }
}

/// The future that runs a server's link in the connection's task until it closes, or the
/// server stops, holding the connection's place under the limit. A plain function returning the
/// link's own future: an `async fn` would keep its arguments beside that future for the link's
/// whole life.
fn serve_link<S, H, Src, Snk>(
    source: Src,
    sink: Snk,
    admitted: Admitted,
    resume: crate::link::Resume,
    session: Session<S>,
    make_handler: impl FnOnce(Link<S>) -> H,
) -> impl Future<Output = ()> + Send + 'static
where
    S: Side + Dispatch<H>,
    H: Send + Sync + 'static,
    Src: crate::transport::FrameSource,
    Snk: crate::transport::FrameSink,
{
    let Admitted {
        config,
        stop,
        _permit,
    } = admitted;
    let (_, run) = Link::prepare(
        source,
        sink,
        config,
        session,
        make_handler,
        resume,
        Some(stop),
    );
    run.map(move |()| drop(_permit))
}

/// A WebSocket server for side `S` of a protocol (named apart from the generated `Server` side
/// markers).
pub struct WsServer<S: Side> {
    listener: TcpListener,
    path: String,
    config: LinkConfig,
    limits: WsLimits,
    max_connections: usize,
    upgrade_timeout: Duration,
    shutdown_grace: Duration,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
    _side: std::marker::PhantomData<fn() -> S>,
}

/// Connections refused at the connection limit that may be waiting for their HTTP 503 at once;
/// beyond them a refused connection is dropped without an answer.
const MAX_REFUSING: usize = 1024;

/// Stops a running server: no new connections, then every link closes with 1001 once its
/// in-flight requests finished or the grace period ran out.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    /// Starts the shutdown.
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

impl<S: Side> WsServer<S> {
    /// Binds `addr` (port 0 picks a free port; see [`WsServer::local_addr`]).
    pub async fn bind(addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<Self> {
        Ok(WsServer {
            listener: TcpListener::bind(addr).await?,
            path: <S::Protocol as Protocol>::PATH.unwrap_or("/").to_owned(),
            config: LinkConfig::default(),
            limits: WsLimits::default(),
            max_connections: 10_000,
            upgrade_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            #[cfg(feature = "tls")]
            tls: None,
            _side: std::marker::PhantomData,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves only this HTTP path, with or without a trailing slash (`/connect` and
    /// `/connect/` are one endpoint, as in Express's default routing, which real peers' URLs
    /// assume); other paths get 404. By default the definition's `path`, or `/`.
    pub fn path(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }

    /// Limits and timeouts of every link.
    pub fn link_config(mut self, config: LinkConfig) -> Self {
        self.config = config;
        self
    }

    /// WebSocket size limits.
    pub fn limits(mut self, limits: WsLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Connections at once, at most (10,000 by default); a WebSocket upgrade beyond them is
    /// answered with HTTP 503 at once.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How long a connection may take from TCP accept to a finished WebSocket upgrade (TLS
    /// included), 10 s by default; a slower one (a half-open connection that sends nothing) is
    /// dropped, so such connections cannot hold the connection limit.
    pub fn upgrade_timeout(mut self, timeout: Duration) -> Self {
        self.upgrade_timeout = timeout;
        self
    }

    /// Serves `wss://`: every connection is a TLS session with this configuration.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
        self.tls = Some(tokio_rustls::TlsAcceptor::from(config));
        self
    }

    /// How long shutdown waits for in-flight requests.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Accepts connections until shut down, one task per link. `session` is the session setup
    /// for each link; `make_handler` builds each connection's handler from its link.
    pub fn serve<H, F>(
        self,
        session: Session<S>,
        make_handler: F,
    ) -> (ShutdownHandle, tokio::task::JoinHandle<()>)
    where
        S: Dispatch<H>,
        H: Send + Sync + 'static,
        F: Fn(Link<S>) -> H + Send + Sync + 'static,
    {
        let make_handler = Arc::new(make_handler);
        self.serve_with(Arc::new(move |incoming| {
            let (session, make_handler) = (session.clone(), make_handler.clone());
            // `then`: the session and the handler maker live in the upgrade's state only, and
            // the link's future takes that state's place (an `async` block would hold both).
            Box::pin(incoming.accept().then(move |accepted| {
                let make = move |link| make_handler(link);
                match accepted {
                    None => Either::Left(std::future::ready(())),
                    Some((accepted, admitted)) => {
                        Either::Right(serve_accepted::<S, H>(accepted, admitted, session, make))
                    }
                }
            }))
        }))
    }

    /// Accepts connections until shut down, each becoming the link of the route its peer's first
    /// handshake message chose: one path for several sides of the protocol (the Clusterio
    /// master takes controls and slaves at `/api/socket`, told apart by `register_control` or
    /// `register_slave`). The handshake messages this side sends first (the master's `hello`) go
    /// out before the choice, as the first route's session has them.
    pub fn serve_routes(
        self,
        routes: Routes<S::Protocol>,
    ) -> (ShutdownHandle, tokio::task::JoinHandle<()>) {
        let routes = Arc::new(routes);
        self.serve_with(Arc::new(move |incoming| {
            let routes = routes.clone();
            Box::pin(async move {
                let Some((accepted, admitted)) = incoming.accept().await else {
                    return;
                };
                match accepted {
                    Accepted::Plain(halves) => routes.run(halves, admitted).await,
                    #[cfg(feature = "tls")]
                    Accepted::Tls(halves) => routes.run(halves, admitted).await,
                }
            })
        }))
    }

    fn serve_with(
        self,
        on_connection: OnConnection,
    ) -> (ShutdownHandle, tokio::task::JoinHandle<()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(self.accept_loop(stop_rx, on_connection));
        (ShutdownHandle(stop_tx), task)
    }

    async fn accept_loop(self, mut stop: watch::Receiver<bool>, on_connection: OnConnection) {
        let permits = Arc::new(Semaphore::new(self.max_connections));
        let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
        let mut accept_errors = AcceptErrors::default();
        let mut connections = JoinSet::new();
        let (links_tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let path: Arc<str> = Arc::from(self.path.as_str());
        // Shared by every link of the server.
        let config = Arc::new(self.config.clone());
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = until_set(&mut stop) => break,
            };
            let (tcp, peer) = match accepted {
                Ok(pair) => {
                    accept_errors.recovered();
                    pair
                }
                Err(e) => {
                    // Out of file descriptors (or another passing failure): waiting is the only
                    // cure, and the error is logged once per wait, not once per attempt.
                    let wait = accept_errors.failed(&e);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => continue,
                        _ = until_set(&mut stop) => break,
                    }
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                // At the limit: answer the upgrade with 503 at once, within bounds.
                if let Ok(slot) = refusing.clone().try_acquire_owned() {
                    let (path, limits, upgrade) =
                        (self.path.clone(), self.limits, self.upgrade_timeout);
                    connections.spawn(async move {
                        let _slot = slot;
                        let refuse = Upgrade {
                            path: &path,
                            full: true,
                        };
                        let _ = tokio::time::timeout(upgrade, refuse.plain(tcp, limits)).await;
                    });
                }
                while connections.try_join_next().is_some() {}
                continue;
            };
            #[cfg(feature = "tls")]
            let tls = self.tls.clone();
            #[cfg(not(feature = "tls"))]
            let tls = ();
            let incoming = Incoming {
                tcp,
                path: path.clone(),
                limits: self.limits,
                upgrade_timeout: self.upgrade_timeout,
                tls,
                admitted: Admitted {
                    config: config.clone(),
                    stop: Stop {
                        signal: links_tx.subscribe(),
                        grace: self.shutdown_grace,
                    },
                    _permit: permit,
                },
            };
            // The connection's one task: the upgrade, then its link (the future the server's
            // `serve` or `serve_routes` made, holding only what the link needs once upgraded).
            let span = debug_span!("connection", %peer);
            connections.spawn(on_connection(incoming).instrument(span));
            // Reap finished connection tasks so the set does not grow.
            while connections.try_join_next().is_some() {}
        }
        let _ = links_tx.send(());
        while connections.join_next().await.is_some() {}
        debug!(protocol = <S::Protocol as Protocol>::NAME, "server stopped");
    }
}

/// What a server does with each accepted connection: upgrades it, then runs its link until it
/// closes or the server stops (the broadcast), giving requests in flight the grace period.
type OnConnection =
    Arc<dyn Fn(Incoming) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// An accepted TCP connection, before its upgrade.
struct Incoming {
    tcp: TcpStream,
    path: Arc<str>,
    limits: WsLimits,
    upgrade_timeout: Duration,
    tls: TlsSetting,
    admitted: Admitted,
}

/// What a connection's link starts with once upgraded.
struct Admitted {
    config: Arc<LinkConfig>,
    stop: Stop,
    /// The connection's place under the server's limit, held until the link ends.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Incoming {
    /// TLS (when configured) and the WebSocket upgrade, within the upgrade timeout.
    async fn accept(self) -> Option<(Accepted, Admitted)> {
        let Incoming {
            tcp,
            path,
            limits,
            upgrade_timeout,
            tls,
            admitted,
        } = self;
        let _ = tcp.set_nodelay(true);
        let upgrade = tokio::time::timeout(upgrade_timeout, accept(tcp, &path, limits, tls));
        let accepted = Box::pin(upgrade).await.ok().flatten()?;
        Some((accepted, admitted))
    }
}

/// The sides a server takes on one path, each with its session and handler maker, chosen per
/// connection by the first handshake message the peer sends (see [`WsServer::serve_routes`]).
pub struct Routes<P: Protocol> {
    routes: Vec<Box<dyn ErasedRoute>>,
    _protocol: std::marker::PhantomData<fn() -> P>,
}

impl<P: Protocol> Default for Routes<P> {
    fn default() -> Self {
        Routes {
            routes: Vec::new(),
            _protocol: std::marker::PhantomData,
        }
    }
}

impl<P: Protocol> Routes<P> {
    /// No routes yet.
    pub fn new() -> Self {
        Routes::default()
    }

    /// Adds side `S`: a connection whose first handshake message is one `S` takes becomes a
    /// `Link<S>` with `session`, handled by what `make_handler` builds. Earlier routes are
    /// tried first; a connection no route takes goes to the first, whose link refuses it as
    /// its protocol says.
    pub fn route<S, H, F>(mut self, session: Session<S>, make_handler: F) -> Self
    where
        S: Side<Protocol = P> + Dispatch<H>,
        H: Send + Sync + 'static,
        F: Fn(Link<S>) -> H + Send + Sync + 'static,
    {
        self.routes.push(Box::new(Route {
            session,
            make_handler,
            _handler: std::marker::PhantomData,
        }));
        self
    }

    /// Greets, reads the first frame, and runs the chosen route's link on the connection.
    async fn run<T>(&self, (mut source, mut sink): (WsSource<T>, WsSink<T>), admitted: Admitted)
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        Box<dyn ErasedRoute>: StartOn<T>,
    {
        use crate::transport::{FrameSink, FrameSource};
        let Some(first_route) = self.routes.first() else {
            return;
        };
        let started = tokio::time::Instant::now();
        let resume = match first_route.greeting(started) {
            Ok((frames, resume)) => {
                for frame in frames {
                    if sink.feed(frame.into()).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
                resume
            }
            Err(e) => {
                warn!(error = %e, "cannot write the greeting");
                return;
            }
        };
        // The first frame chooses; none within the handshake timeout goes to the first route,
        // whose link then closes as its protocol says for a handshake that timed out.
        let mut admitted = admitted;
        let wait = admitted.config.handshake_timeout;
        let first = tokio::select! {
            first = tokio::time::timeout(wait, source.next_frame()) => first.ok(),
            _ = admitted.stop.signal.recv() => return,
        };
        let index = match &first {
            Some(Some(Ok(crate::transport::Frame::Text(text)))) => self
                .routes
                .iter()
                .position(|route| route.opens(text.as_str()))
                .unwrap_or(0),
            _ => 0,
        };
        let source = Replay {
            first,
            inner: source,
        };
        self.routes[index]
            .start_on(source, sink, Started { admitted, resume })
            .await;
    }
}

/// A route with its types erased, for each kind of stream a server accepts.
trait ErasedRoute: Send + Sync + 'static {
    /// The frames this side writes before its peer's first handshake message.
    fn greeting(
        &self,
        started: tokio::time::Instant,
    ) -> Result<(Vec<String>, crate::link::Resume), crate::SendError>;
    /// Whether the frame opens this route's link.
    fn opens(&self, text: &str) -> bool;
    /// Runs the link over a plain TCP connection until it closes or the server stops.
    fn start_plain(
        &self,
        source: Replay<TcpStream>,
        sink: crate::transport::WsSink<TcpStream>,
        started: Started,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
    /// The same over TLS.
    #[cfg(feature = "tls")]
    fn start_tls(
        &self,
        source: Replay<tokio_rustls::server::TlsStream<TcpStream>>,
        sink: crate::transport::WsSink<tokio_rustls::server::TlsStream<TcpStream>>,
        started: Started,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// What a chosen route's link starts with.
struct Started {
    admitted: Admitted,
    resume: crate::link::Resume,
}

/// Starting a chosen route on a stream of type `T`.
trait StartOn<T> {
    fn start_on(
        &self,
        source: Replay<T>,
        sink: crate::transport::WsSink<T>,
        started: Started,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl StartOn<TcpStream> for Box<dyn ErasedRoute> {
    fn start_on(
        &self,
        source: Replay<TcpStream>,
        sink: crate::transport::WsSink<TcpStream>,
        started: Started,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        self.start_plain(source, sink, started)
    }
}

#[cfg(feature = "tls")]
impl StartOn<tokio_rustls::server::TlsStream<TcpStream>> for Box<dyn ErasedRoute> {
    fn start_on(
        &self,
        source: Replay<tokio_rustls::server::TlsStream<TcpStream>>,
        sink: crate::transport::WsSink<tokio_rustls::server::TlsStream<TcpStream>>,
        started: Started,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        self.start_tls(source, sink, started)
    }
}

/// One side of a [`Routes`].
struct Route<S: Side, H, F> {
    session: Session<S>,
    make_handler: F,
    _handler: std::marker::PhantomData<fn() -> H>,
}

impl<S, H, F> Route<S, H, F>
where
    S: Side + Dispatch<H>,
    H: Send + Sync + 'static,
    F: Fn(Link<S>) -> H + Send + Sync + 'static,
{
    fn start<T>(
        &self,
        source: Replay<T>,
        sink: crate::transport::WsSink<T>,
        started: Started,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Started { admitted, resume } = started;
        let make = |link| (self.make_handler)(link);
        Box::pin(serve_link(
            source,
            sink,
            admitted,
            resume,
            self.session.clone(),
            make,
        ))
    }
}

impl<S, H, F> ErasedRoute for Route<S, H, F>
where
    S: Side + Dispatch<H>,
    H: Send + Sync + 'static,
    F: Fn(Link<S>) -> H + Send + Sync + 'static,
{
    fn greeting(
        &self,
        started: tokio::time::Instant,
    ) -> Result<(Vec<String>, crate::link::Resume), crate::SendError> {
        crate::link::greeting::<S>(&self.session, started)
    }

    fn opens(&self, text: &str) -> bool {
        crate::link::opens::<S>(text)
    }

    fn start_plain(
        &self,
        source: Replay<TcpStream>,
        sink: crate::transport::WsSink<TcpStream>,
        started: Started,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        self.start(source, sink, started)
    }

    #[cfg(feature = "tls")]
    fn start_tls(
        &self,
        source: Replay<tokio_rustls::server::TlsStream<TcpStream>>,
        sink: crate::transport::WsSink<tokio_rustls::server::TlsStream<TcpStream>>,
        started: Started,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        self.start(source, sink, started)
    }
}

/// A connection's reading half that first yields what was read to choose its route.
struct Replay<T> {
    /// `None` when nothing came in time; then the link reads on from the connection.
    first: Option<Option<Result<crate::transport::Frame, crate::transport::TransportError>>>,
    inner: crate::transport::WsSource<T>,
}

impl<T> crate::transport::FrameSource for Replay<T>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    async fn next_frame(
        &mut self,
    ) -> Option<Result<crate::transport::Frame, crate::transport::TransportError>> {
        match self.first.take() {
            Some(first) => first,
            None => self.inner.next_frame().await,
        }
    }
}

/// A WebSocket accepted by a server, over plain TCP or TLS.
enum Accepted {
    Plain((WsSource<TcpStream>, WsSink<TcpStream>)),
    #[cfg(feature = "tls")]
    Tls(
        (
            WsSource<tokio_rustls::server::TlsStream<TcpStream>>,
            WsSink<tokio_rustls::server::TlsStream<TcpStream>>,
        ),
    ),
}

#[cfg(feature = "tls")]
type TlsSetting = Option<tokio_rustls::TlsAcceptor>;
#[cfg(not(feature = "tls"))]
type TlsSetting = ();

/// How a server answers one WebSocket upgrade: at `path`, or with HTTP 503 when `full`.
struct Upgrade<'a> {
    path: &'a str,
    full: bool,
}

impl Upgrade<'_> {
    /// The answer to the upgrade request: the WebSocket, or 404 on another path, or 503 at the
    /// connection limit.
    // tungstenite's handshake callback returns its own (large) error response type.
    #[allow(clippy::result_large_err)]
    fn answer(&self, req: &HttpRequest, resp: HttpResponse) -> Result<HttpResponse, ErrorResponse> {
        use tokio_tungstenite::tungstenite::http::StatusCode;
        let refuse = |status: StatusCode, text: String| {
            let mut response = ErrorResponse::new(Some(text));
            *response.status_mut() = status;
            Err(response)
        };
        if req.uri().path().trim_end_matches('/') != self.path.trim_end_matches('/') {
            refuse(
                StatusCode::NOT_FOUND,
                format!("no WebSocket endpoint at {}", req.uri().path()),
            )
        } else if self.full {
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is at its connection limit".to_owned(),
            )
        } else {
            Ok(resp)
        }
    }

    // tungstenite's handshake callback returns its own (large) error response type.
    #[allow(clippy::result_large_err)]
    async fn plain(&self, tcp: TcpStream, limits: WsLimits) -> Option<Accepted> {
        let answer = |req: &HttpRequest, resp| self.answer(req, resp);
        match tokio_tungstenite::accept_hdr_async_with_config(tcp, answer, Some(limits.config()))
            .await
        {
            Ok(ws) => Some(Accepted::Plain(split_ws(ws))),
            Err(e) => {
                debug!(error = %e, "WebSocket handshake failed");
                None
            }
        }
    }
}

/// Runs TLS (when configured) and the WebSocket handshake, refusing paths other than `path`.
#[allow(clippy::result_large_err)]
async fn accept(tcp: TcpStream, path: &str, limits: WsLimits, tls: TlsSetting) -> Option<Accepted> {
    let upgrade = Upgrade { path, full: false };
    #[cfg(feature = "tls")]
    if let Some(acceptor) = tls {
        let stream = match acceptor.accept(tcp).await {
            Ok(stream) => stream,
            Err(e) => {
                debug!(error = %e, "TLS handshake failed");
                return None;
            }
        };
        let answer = |req: &HttpRequest, resp| upgrade.answer(req, resp);
        return match tokio_tungstenite::accept_hdr_async_with_config(
            stream,
            answer,
            Some(limits.config()),
        )
        .await
        {
            Ok(ws) => Some(Accepted::Tls(split_ws(ws))),
            Err(e) => {
                debug!(error = %e, "WebSocket handshake failed");
                None
            }
        };
    }
    #[cfg(not(feature = "tls"))]
    let () = tls;
    upgrade.plain(tcp, limits).await
}

/// Failed accepts: a growing wait before the next attempt (5 ms doubling up to 1 s), and one
/// warning per second at most, counting the failures it stands for.
#[derive(Default)]
struct AcceptErrors {
    failures: u32,
    unreported: u64,
    reported_at: Option<tokio::time::Instant>,
}

impl AcceptErrors {
    fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.unreported += 1;
        let now = tokio::time::Instant::now();
        if self
            .reported_at
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            warn!(%error, failures = self.unreported, "accept failed; waiting before the next");
            self.unreported = 0;
            self.reported_at = Some(now);
        }
        Duration::from_millis(5 << self.failures.min(8).saturating_sub(1))
            .min(Duration::from_secs(1))
    }

    fn recovered(&mut self) {
        if self.failures > 0 {
            debug!(failures = self.failures, "accepting again");
        }
        self.failures = 0;
    }
}

/// Opens a `wss://` WebSocket with this TLS configuration.
#[cfg(feature = "tls")]
async fn open_tls(
    url: &str,
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
    limits: WsLimits,
) -> Result<WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>, ConnectError> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::error::UrlError;

    let request = url.into_client_request().map_err(failed)?;
    let no_host = || failed(WsError::Url(UrlError::NoHostName));
    let host = request
        .uri()
        .host()
        .ok_or_else(no_host)?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = request.uri().port_u16().unwrap_or(443);
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| failed(WsError::Io(e)))?;
    let _ = tcp.set_nodelay(true);
    let name =
        tokio_rustls::rustls::pki_types::ServerName::try_from(host).map_err(|_| no_host())?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| failed(WsError::Io(e)))?;
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(limits.config()))
            .await
            .map_err(failed)?;
    Ok(ws)
}

async fn wait_ready<S: Side>(link: Link<S>) -> Result<Link<S>, ConnectError> {
    match link.ready().await {
        Ok(()) => Ok(link),
        Err(crate::link::LinkState::Closed { code, reason }) => {
            Err(ConnectError::Handshake { code, reason })
        }
        Err(_) => Err(ConnectError::Handshake {
            code: close::NORMAL,
            reason: String::new(),
        }),
    }
}

/// Where a reconnecting client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Trying to connect.
    Connecting,
    /// Connected, handshake done.
    Connected,
    /// Waiting before the next attempt.
    Waiting(Duration),
    /// Stopped by [`ReconnectingClient::stop`].
    Stopped,
}

/// How a client waits between attempts: jittered exponential backoff, never below the
/// protocol's declared minimum (`reconnect min MS`).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first wait (before jitter); raised to the protocol's minimum.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` (0-based): at least `floor`, plus up to the same again
    /// of jitter, doubling per attempt up to `max`.
    pub fn delay(&self, attempt: u32, floor: Duration) -> Duration {
        let base = self.initial.max(floor);
        let grown = base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max.max(base));
        let jitter = grown.mul_f64(fastrand::f64());
        floor.max(grown / 2) + jitter / 2
    }
}

/// A client that keeps a link to a server up: it reconnects after every drop and re-runs the
/// session, then calls the `on_connect` hook (to re-run subscriptions).
pub struct ReconnectingClient<S: Side> {
    link: watch::Receiver<Option<Link<S>>>,
    state: watch::Receiver<ConnectionState>,
    stop: watch::Sender<bool>,
}

impl<S: Side> ReconnectingClient<S> {
    /// Starts connecting to `url` in the background (`connect(url)...reconnecting(..)` is the
    /// public way in).
    pub(crate) fn start<H, F, C, Fut>(
        template: Connect<S, F>,
        backoff: Backoff,
        on_connect: C,
    ) -> Self
    where
        S: Dispatch<H>,
        H: Send + Sync + 'static,
        F: Fn(Link<S>) -> H + Send + Sync + 'static,
        C: Fn(Link<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (link_tx, link_rx) = watch::channel(None);
        let (state_tx, state_rx) = watch::channel(ConnectionState::Connecting);
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let floor = Duration::from_millis(<S::Protocol as Protocol>::SESSION.reconnect_min_ms);
        tokio::spawn(async move {
            let mut attempt = 0u32;
            loop {
                let _ = state_tx.send(ConnectionState::Connecting);
                let connected = tokio::select! {
                    r = template.again().open() => r,
                    _ = until_set(&mut stop_rx) => break,
                };
                match connected {
                    Ok(link) => {
                        attempt = 0;
                        let _ = link_tx.send(Some(link.clone()));
                        let _ = state_tx.send(ConnectionState::Connected);
                        on_connect(link.clone()).await;
                        tokio::select! {
                            _ = link.closed() => {}
                            _ = until_set(&mut stop_rx) => {
                                link.close_gracefully(close::NORMAL, "client stopped").await;
                                break;
                            }
                        }
                        let _ = link_tx.send(None);
                    }
                    Err(e) => debug!(error = %e, "connect failed"),
                }
                let wait = backoff.delay(attempt, floor);
                attempt = attempt.saturating_add(1);
                let _ = state_tx.send(ConnectionState::Waiting(wait));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = until_set(&mut stop_rx) => break,
                }
            }
            let _ = link_tx.send(None);
            let _ = state_tx.send(ConnectionState::Stopped);
        });
        ReconnectingClient {
            link: link_rx,
            state: state_rx,
            stop: stop_tx,
        }
    }

    /// The current link, if connected.
    pub fn link(&self) -> Option<Link<S>> {
        self.link.borrow().clone()
    }

    /// Waits for a connected link.
    pub async fn connected(&self) -> Option<Link<S>> {
        let mut rx = self.link.clone();
        rx.wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|link| link.clone())
    }

    /// Watches the connection state.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Stops reconnecting and closes the current link.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops, and waits (up to `within`) until the current link's close has been sent, so that a
    /// process about to end says goodbye with a close frame.
    pub async fn stop_and_wait(&self, within: Duration) {
        self.stop();
        let mut state = self.state();
        let _ =
            tokio::time::timeout(within, state.wait_for(|s| *s == ConnectionState::Stopped)).await;
    }
}

impl<S: Side> Drop for ReconnectingClient<S> {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Waits until a stop flag is set (or its sender is gone).
async fn until_set(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}
