//! The SocketCluster reference server and client commands, built only on the generated `chat`
//! bindings (which extend `socketcluster`), with pub/sub fan-out through a [`Broker`].
//!
//! The server speaks what socketcluster-server 20.x speaks: the `#handshake` reply, pub/sub
//! (`#subscribe`, `#unsubscribe`, `#publish` with and without `cid`, delivered as `#publish`),
//! authentication with HS256 JWTs signed with the auth secret (`#authenticate`,
//! `#setAuthToken`, `#removeAuthToken`), the ping / pong of protocol version 1 or 2, and the
//! chat and interop procedures of `socketcluster_chat.protocol`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use protolink::broker::{Broker, Deliver, LocalBroker, PublishError, SubscriberId};
use protolink::link::encode_frame;
use protolink::ws::{WsServer, connect};
use protolink::{Empty, Link, LinkConfig, RemoteError, RequestError, Sender, Session};
use protolink_protocols::chat::{
    self as sc, ClientHandler, ClientSender, ServerHandler, ServerSender,
};
use protolink_redis::{RedisBroker, RedisConfig};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tracing::info;

use crate::output::{Printer, serve_until_signal, shutdown_signal};

/// How long tokens signed by the server stay valid (the 20.x `authDefaultExpiry`), in seconds.
const TOKEN_EXPIRY_S: u64 = 86_400;

/// `protolink serve socketcluster` options.
pub(crate) struct ServeOptions {
    /// 1 (`#1` / `#2`) or 2 (empty frames): the ping / pong in use.
    pub(crate) protocol_version: u8,
    /// The key auth tokens are signed and checked with; `None` for a random one made at start.
    pub(crate) auth_secret: Option<String>,
    /// Milliseconds between the server's pings.
    pub(crate) ping_interval: u64,
    /// Milliseconds without anything from a client after which it is closed (4001).
    pub(crate) ping_timeout: u64,
    /// Invoke `askClient` with this data on every client right after its handshake, and
    /// transmit the reply back as `askClientResult` (what the interop tests' real server does).
    pub(crate) ask_client: Option<Value>,
    /// Connections served at once (HTTP 503 beyond).
    pub(crate) max_connections: usize,
    /// A Redis URL: publish to (and subscribe with) every server on that Redis.
    pub(crate) broker: Option<String>,
}

/// What every connection shares.
pub(crate) struct Hub<B> {
    broker: B,
    /// What to invoke `askClient` with right after each handshake, if anything.
    ask_client: Option<Value>,
    secret: String,
    ping_timeout: u64,
    next_subscriber: AtomicU64,
    rooms: Mutex<HashMap<String, Room>>,
    epoch: u128,
}

/// A chat room: its members and its message counter.
#[derive(Default)]
struct Room {
    members: Vec<(SubscriberId, String)>,
    next_id: u64,
}

impl<B: Broker> Hub<B> {
    pub(crate) fn new(broker: B, secret: String, ping_timeout: u64) -> Self {
        Hub {
            broker,
            ask_client: None,
            secret,
            ping_timeout,
            next_subscriber: AtomicU64::new(1),
            rooms: Mutex::new(HashMap::new()),
            epoch: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, Room>> {
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A pub/sub channel's broker topic (rooms live in another namespace).
fn channel_topic(channel: &str) -> String {
    format!("channel:{channel}")
}

fn room_topic(room: &str) -> String {
    format!("room:{room}")
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Signs `claims` (plus `iat` and `exp`, as the real server adds them) with HS256.
pub(crate) fn sign_token(secret: &str, mut claims: Map<String, Value>) -> Result<String, String> {
    let iat = now_s();
    claims.entry("iat").or_insert(json!(iat));
    claims.entry("exp").or_insert(json!(iat + TOKEN_EXPIRY_S));
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}

/// Checks a signed auth token; the error object socketcluster-server sends when it is bad.
pub(crate) fn verify_token(secret: &str, token: &str) -> Result<Map<String, Value>, sc::AuthError> {
    use jsonwebtoken::Algorithm::{HS256, HS384, HS512};
    use jsonwebtoken::errors::ErrorKind;
    // Whichever HMAC the token names, as socketcluster-server's `jsonwebtoken` verifies it.
    let mut validation = jsonwebtoken::Validation::new(HS256);
    validation.algorithms = vec![HS256, HS384, HS512];
    validation.required_spec_claims.clear();
    validation.leeway = 0;
    validation.validate_nbf = true;
    let result = jsonwebtoken::decode::<Map<String, Value>>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    );
    let error = match result {
        Ok(data) => return Ok(data.claims),
        Err(e) => e,
    };
    // The names and texts of sc-errors, with jsonwebtoken's (Node) messages.
    let (name, message, bad) = match error.kind() {
        ErrorKind::ExpiredSignature => ("AuthTokenExpiredError", "jwt expired", true),
        ErrorKind::ImmatureSignature => ("AuthTokenNotBeforeError", "jwt not active", false),
        ErrorKind::InvalidSignature => ("AuthTokenInvalidError", "invalid signature", true),
        _ if token.split('.').count() != 3 => ("AuthTokenInvalidError", "jwt malformed", true),
        _ => ("AuthTokenInvalidError", "invalid token", true),
    };
    Err(sc::AuthError {
        name: name.to_owned(),
        message: message.to_owned(),
        is_bad_token: Some(bad),
        details: Default::default(),
    })
}

fn remote(error: sc::AuthError) -> RemoteError {
    let mut remote = RemoteError::new(error.message).with_name(error.name);
    if let Some(bad) = error.is_bad_token {
        remote
            .extra
            .insert("isBadToken".to_owned(), Value::Bool(bad));
    }
    remote.extra.extend(error.details);
    remote
}

/// One connection.
pub(crate) struct Connection<B: Broker> {
    hub: Arc<Hub<B>>,
    link: Link<sc::Server>,
    id: SubscriberId,
    socket_id: String,
    /// The claims of the auth token the socket is authenticated with.
    auth: Mutex<Option<Map<String, Value>>>,
    rooms: Mutex<Vec<String>>,
}

impl<B: Broker> Connection<B> {
    fn auth(&self) -> std::sync::MutexGuard<'_, Option<Map<String, Value>>> {
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn joined(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The user name: the auth token's `user`, else the socket id.
    fn user(&self) -> String {
        self.auth()
            .as_ref()
            .and_then(|claims| claims.get("user"))
            .and_then(Value::as_str)
            .map_or_else(|| self.socket_id.clone(), str::to_owned)
    }

    fn deliverer(&self) -> Arc<dyn Deliver> {
        Arc::new(self.link.clone())
    }
}

impl<B: Broker> Drop for Connection<B> {
    fn drop(&mut self) {
        self.hub.broker.unsubscribe_all(self.id);
        let joined = std::mem::take(&mut *self.joined());
        let mut rooms = self.hub.rooms();
        for room in joined {
            if let Some(r) = rooms.get_mut(&room) {
                r.members.retain(|(id, _)| *id != self.id);
            }
        }
    }
}

fn error(name: &str, message: impl Into<String>) -> RemoteError {
    RemoteError::new(message).with_name(name)
}

/// A failed publish, named as socketcluster-server names its broker's errors.
fn broker_error(e: PublishError) -> RemoteError {
    error("BrokerError", e.to_string())
}

fn request_failed(e: RequestError) -> RemoteError {
    match e {
        RequestError::Remote(remote) => remote,
        other => error("Error", other.to_string()),
    }
}

impl<B: Broker> ServerHandler for Connection<B> {
    async fn handshake(&self, request: sc::Handshake) -> Result<sc::HandshakeReply, RemoteError> {
        // A bad token does not fail the handshake: it is reported under `authError`.
        let auth_error = match request.auth_token {
            None | Some(Value::Null) => None,
            Some(Value::String(token)) => match verify_token(&self.hub.secret, &token) {
                Ok(claims) => {
                    *self.auth() = Some(claims);
                    None
                }
                Err(e) => {
                    // The real server deauthenticates the socket on a bad token, which sends
                    // `#removeAuthToken` ahead of the handshake reply.
                    if e.is_bad_token == Some(true) {
                        let _ = self.link.send_in_handshake(sc::RemoveAuthToken {}).await;
                    }
                    Some(e)
                }
            },
            // socketcluster-server's answer to a token that is not a string.
            Some(_) => {
                let _ = self.link.send_in_handshake(sc::RemoveAuthToken {}).await;
                Some(sc::AuthError {
                    name: "AuthTokenError".to_owned(),
                    message: "Invalid token format - Token must be a string".to_owned(),
                    is_bad_token: Some(true),
                    details: Default::default(),
                })
            }
        };
        Ok(sc::HandshakeReply {
            id: self.socket_id.clone(),
            ping_timeout: self.hub.ping_timeout,
            is_authenticated: self.auth().is_some(),
            auth_error,
        })
    }

    async fn subscribe(&self, request: sc::Subscribe) -> Result<Empty, RemoteError> {
        if request.wait_for_auth == Some(true) && self.auth().is_none() {
            return Err(error(
                "InvalidActionError",
                "Cannot subscribe socket to a channel which requires auth",
            ));
        }
        let topic = channel_topic(&request.channel);
        self.hub.broker.subscribe(&topic, self.id, self.deliverer());
        // Across processes, acknowledged once every server's publishes reach it.
        self.hub.broker.subscribed(&topic).await;
        Ok(Empty)
    }

    async fn unsubscribe(&self, request: sc::Unsubscribe) -> Result<Empty, RemoteError> {
        self.hub
            .broker
            .unsubscribe(&channel_topic(&request.0), self.id);
        Ok(Empty)
    }

    async fn publish(&self, request: sc::Publish) -> Result<Empty, RemoteError> {
        let topic = channel_topic(&request.channel);
        let frame = encode_frame::<sc::Server, _>(&sc::PublishEvent {
            channel: request.channel,
            data: request.data,
        })
        .map_err(|e| error("InvalidActionError", e.to_string()))?;
        // Publishers subscribed to the channel get their own publish too, as in SocketCluster.
        // The acknowledgement says the broker took it (Redis, across processes).
        self.hub
            .broker
            .publish(&[&topic], &frame, None)
            .await
            .map_err(broker_error)?;
        Ok(Empty)
    }

    async fn authenticate(
        &self,
        request: sc::Authenticate,
    ) -> Result<sc::AuthenticateReply, RemoteError> {
        match verify_token(&self.hub.secret, &request.0) {
            Ok(claims) => {
                *self.auth() = Some(claims);
                Ok(sc::AuthenticateReply {
                    is_authenticated: true,
                    auth_error: None,
                })
            }
            Err(e) if e.is_bad_token == Some(true) => {
                // The real server deauthenticates the socket first, which it is told.
                *self.auth() = None;
                let _ = self.link.remove_auth_token().await;
                Err(remote(e))
            }
            Err(e) => {
                *self.auth() = None;
                Ok(sc::AuthenticateReply {
                    is_authenticated: false,
                    auth_error: Some(e),
                })
            }
        }
    }

    async fn remove_auth_token(&self, _: sc::RemoveAuthToken) {
        *self.auth() = None;
    }

    async fn join(&self, request: sc::Join) -> Result<sc::JoinReply, RemoteError> {
        let user = self.user();
        let members = {
            let mut rooms = self.hub.rooms();
            let room = rooms.entry(request.room.clone()).or_default();
            if !room.members.iter().any(|(id, _)| *id == self.id) {
                room.members.push((self.id, user));
            }
            room.members.iter().map(|(_, name)| name.clone()).collect()
        };
        let mut joined = self.joined();
        if !joined.contains(&request.room) {
            joined.push(request.room.clone());
            self.hub
                .broker
                .subscribe(&room_topic(&request.room), self.id, self.deliverer());
        }
        Ok(sc::JoinReply { members })
    }

    async fn send_message(
        &self,
        request: sc::SendMessage,
    ) -> Result<sc::SendMessageReply, RemoteError> {
        if !self.joined().contains(&request.room) {
            return Err(error(
                "NotJoinedError",
                format!("not a member of room {}", request.room),
            ));
        }
        let id = {
            let mut rooms = self.hub.rooms();
            let room = rooms.entry(request.room.clone()).or_default();
            room.next_id += 1;
            room.next_id
        };
        let topic = room_topic(&request.room);
        let frame = encode_frame::<sc::Server, _>(&sc::Message(sc::ChatMessage {
            id,
            room: request.room,
            author: self.user(),
            text: request.text,
            sent_at: now_ms(),
        }))
        .map_err(|e| error("InvalidActionError", e.to_string()))?;
        self.hub
            .broker
            .publish(&[&topic], &frame, None)
            .await
            .map_err(broker_error)?;
        Ok(sc::SendMessageReply { id })
    }

    async fn typing(&self, message: sc::Typing) {
        if !self.joined().contains(&message.room) {
            return;
        }
        let topic = room_topic(&message.room);
        if let Ok(frame) = encode_frame::<sc::Server, _>(&sc::UserTyping {
            room: message.room,
            user: self.user(),
        }) {
            // Typing notices are best effort: there is no one to tell that one was lost.
            let _ = self
                .hub
                .broker
                .publish(&[&topic], &frame, Some(self.id))
                .await;
        }
    }

    async fn sum(&self, request: sc::Sum) -> Result<i64, RemoteError> {
        request
            .a
            .checked_add(request.b)
            .ok_or_else(|| error("RangeError", "the sum does not fit in 64 bits"))
    }

    async fn fail(&self, _: sc::Fail) -> Result<Empty, RemoteError> {
        let mut e = error("MyError", "nope");
        e.extra.insert("code".to_owned(), json!(42));
        Err(e)
    }

    async fn nothing(&self, _: sc::Nothing) -> Result<Empty, RemoteError> {
        Ok(Empty)
    }

    async fn shout(&self, message: sc::Shout) {
        let _ = self.link.shouted(message.0).await;
    }

    async fn call_me(&self, request: sc::CallMe) -> Result<Value, RemoteError> {
        self.link
            .ask_client(request.0)
            .await
            .map_err(request_failed)
    }

    async fn login(&self, request: sc::Login) -> Result<Empty, RemoteError> {
        let mut claims = Map::new();
        claims.insert("user".to_owned(), Value::String(request.user));
        let token = sign_token(&self.hub.secret, claims).map_err(|e| error("AuthTokenError", e))?;
        let verified = verify_token(&self.hub.secret, &token).map_err(remote)?;
        *self.auth() = Some(verified);
        // Transmitted without a `cid`, as socketcluster-server does: the reply does not wait
        // for the client to acknowledge it.
        self.link
            .send(sc::SetAuthToken { token })
            .await
            .map_err(|e| error("AuthTokenError", e.to_string()))?;
        Ok(Empty)
    }

    async fn kick(&self, _: sc::Kick) -> Result<Empty, RemoteError> {
        self.link.close(4321, "bye").await;
        Ok(Empty)
    }

    async fn logout(&self, _: sc::Logout) -> Result<Empty, RemoteError> {
        *self.auth() = None;
        self.link
            .remove_auth_token()
            .await
            .map_err(|e| error("Error", e.to_string()))?;
        Ok(Empty)
    }
}

/// The session every server link runs: everything it checks is the definition's (a
/// `#handshake` whose `cid` is missing or not a number closes with 4008).
pub(crate) fn server_session() -> Session<sc::Server> {
    Session::new()
}

/// The link settings for a protocol version and ping timing.
pub(crate) fn link_config(
    protocol_version: u8,
    ping_interval: u64,
    ping_timeout: u64,
) -> LinkConfig {
    LinkConfig {
        heartbeat_variant: Some(protocol_version.to_string()),
        heartbeat_interval: Some(Duration::from_millis(ping_interval)),
        heartbeat_timeout: Some(Duration::from_millis(ping_timeout)),
        ..LinkConfig::default()
    }
}

/// Starts serving on `server` with a hub; returns the shutdown handle and the accept task.
pub(crate) fn start<B: Broker>(
    server: WsServer<sc::Server>,
    hub: Arc<Hub<B>>,
) -> (protolink::ws::ShutdownHandle, tokio::task::JoinHandle<()>) {
    server.serve(server_session(), move |link| {
        let id = hub.next_subscriber.fetch_add(1, Ordering::Relaxed);
        if let Some(data) = hub.ask_client.clone() {
            tokio::spawn(ask_client(link.clone(), data));
        }
        Connection {
            socket_id: format!("{:x}{id:06x}", hub.epoch & 0xffff_ffff_ffff),
            id,
            hub: hub.clone(),
            link,
            auth: Mutex::new(None),
            rooms: Mutex::new(Vec::new()),
        }
    })
}

/// Invokes `askClient` on a client as soon as its handshake is done, unprompted, and transmits
/// the reply back as `askClientResult`.
async fn ask_client(link: Link<sc::Server>, data: Value) {
    if link.ready().await.is_err() {
        return;
    }
    match link.ask_client(data).await {
        Ok(reply) => {
            let _ = link.ask_client_result(reply).await;
        }
        Err(e) => info!(error = %e, "askClient failed"),
    }
}

/// `protolink serve socketcluster`.
pub(crate) async fn serve(listen: &str, options: ServeOptions) -> std::io::Result<()> {
    if !matches!(options.protocol_version, 1 | 2) {
        return Err(std::io::Error::other("--protocol-version must be 1 or 2"));
    }
    let server = WsServer::<sc::Server>::bind(listen)
        .await?
        .max_connections(options.max_connections)
        .link_config(link_config(
            options.protocol_version,
            options.ping_interval,
            options.ping_timeout,
        ));
    let redis = match &options.broker {
        Some(url) => Some(
            RedisBroker::connect(RedisConfig::new(url.as_str(), "socketcluster"))
                .await
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let stop = shutdown_signal();
    Printer::stdout().line_text(&format!(
        "listening on {}",
        crate::output::ws_url::<sc::Chat>(server.local_addr()?)
    ));
    let secret = match options.auth_secret {
        Some(secret) => secret,
        None => {
            // Never a key anyone else knows: tokens this process signs are valid only here.
            tracing::warn!(
                "no --auth-secret: auth tokens are signed with a random key kept in memory \
                 only, valid until the server stops"
            );
            random_secret()?
        }
    };
    let (shutdown, task) = match redis {
        Some(broker) => {
            let mut hub = Hub::new(broker, secret, options.ping_timeout);
            hub.ask_client = options.ask_client;
            start(server, Arc::new(hub))
        }
        None => {
            let mut hub = Hub::new(LocalBroker::new(), secret, options.ping_timeout);
            hub.ask_client = options.ask_client;
            start(server, Arc::new(hub))
        }
    };
    serve_until_signal(stop, shutdown, task).await
}

/// 32 random bytes from the operating system, as hex.
fn random_secret() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `protolink socketcluster client` options.
pub(crate) struct ClientOptions {
    /// 1 or 2: the ping / pong the server uses.
    pub(crate) protocol_version: u8,
    /// A signed auth token to send in the handshake.
    pub(crate) auth_token: Option<String>,
    /// Milliseconds a request or a `wait:` step waits.
    pub(crate) timeout: u64,
    /// The steps, in order (see `run_step`).
    pub(crate) steps: Vec<String>,
}

/// What arrived unasked, by key, for `wait:` steps; and the last token the server gave (kept
/// after `#removeAuthToken`, for `authenticate:saved`).
struct Inbox {
    out: Printer,
    keys: Mutex<Vec<String>>,
    arrived: Notify,
    token: Mutex<Option<String>>,
}

impl Inbox {
    fn push(&self, key: &str, value: Value) {
        self.out.line(json!({ "received": { key: value } }));
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(key.to_owned());
        self.arrived.notify_waiters();
    }

    fn take(&self, key: &str) -> bool {
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match keys.iter().position(|k| k == key) {
            Some(at) => {
                keys.remove(at);
                true
            }
            None => false,
        }
    }

    async fn wait(&self, key: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let arrived = self.arrived.notified();
            if self.take(key) {
                return true;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.take(key);
            }
        }
    }

    fn token(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The claims of a JWT, read without checking the signature (for printing only).
fn claims_of(token: &str) -> Value {
    let Some(payload) = token.split('.').nth(1) else {
        return Value::Null;
    };
    base64url(payload)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// The client's handler: prints what arrives, answers `askClient`, keeps the auth token.
struct ClientSide {
    inbox: Arc<Inbox>,
}

impl ClientHandler for ClientSide {
    async fn publish_event(&self, message: sc::PublishEvent) {
        self.inbox.push(
            "publish",
            json!({"channel": message.channel, "data": message.data}),
        );
    }

    async fn kick_out(&self, message: sc::KickOut) {
        self.inbox.push(
            "kickOut",
            json!({"channel": message.channel, "message": message.message}),
        );
    }

    async fn set_auth_token(&self, request: sc::SetAuthToken) -> Result<Empty, RemoteError> {
        let claims = claims_of(&request.token);
        *self.inbox.token() = Some(request.token);
        self.inbox.push("setAuthToken", claims);
        Ok(Empty)
    }

    async fn remove_auth_token(&self, _: sc::RemoveAuthToken) {
        self.inbox.push("removeAuthToken", Value::Bool(true));
    }

    async fn message(&self, message: sc::Message) {
        self.inbox.push(
            "message",
            serde_json::to_value(&message.0).unwrap_or_default(),
        );
    }

    async fn user_typing(&self, message: sc::UserTyping) {
        self.inbox.push(
            "userTyping",
            json!({"room": message.room, "user": message.user}),
        );
    }

    async fn ping_client(&self, _: sc::PingClient) -> Result<sc::PingClientReply, RemoteError> {
        self.inbox.push("pingClient", json!({}));
        Ok(sc::PingClientReply {})
    }

    async fn shouted(&self, message: sc::Shouted) {
        self.inbox.push("shouted", message.0);
    }

    async fn ask_client(&self, request: sc::AskClient) -> Result<Value, RemoteError> {
        let q = request.0.get("q").cloned().unwrap_or(Value::Null);
        self.inbox.push("askClient", request.0);
        Ok(json!({"a": "ok", "q": q}))
    }

    async fn ask_client_result(&self, message: sc::AskClientResult) {
        self.inbox.push("askClientResult", message.0);
    }
}

fn typed<T: serde::de::DeserializeOwned>(data: Value) -> Result<T, RequestError> {
    serde_json::from_value(data).map_err(|e| {
        RequestError::Send(protolink::SendError::Encode(protolink::EncodeError::Json(
            e,
        )))
    })
}

fn value<T: serde::Serialize>(reply: Result<T, RequestError>) -> Result<Value, RequestError> {
    reply.map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
}

/// Invokes a procedure of `socketcluster_chat.protocol` by its event name.
async fn invoke(link: &Link<sc::Client>, event: &str, data: Value) -> Result<Value, RequestError> {
    match event {
        "sum" => value(link.sum(typed(data)?).await),
        "fail" => value(link.fail(data).await),
        "nothing" => value(link.nothing(data).await),
        "callMe" => link.call_me(data).await,
        "login" => value(link.login(typed(data)?).await),
        "logout" => value(link.logout(data).await),
        "kick" => value(link.kick(data).await),
        "join" => value(link.join(typed(data)?).await),
        "sendMessage" => value(link.send_message(typed(data)?).await),
        "#subscribe" => value(link.subscribe(typed(data)?).await),
        "#publish" => value(link.publish(typed(data)?).await),
        other => Err(RequestError::Remote(error(
            "UnknownProcedure",
            format!("no procedure {other} in socketcluster_chat.protocol"),
        ))),
    }
}

/// Transmits an event of `socketcluster_chat.protocol` by its name.
async fn emit(link: &Link<sc::Client>, event: &str, data: Value) -> Result<(), String> {
    let sent = match event {
        "shout" => link.shout(data).await,
        "typing" => link.typing(typed(data).map_err(|e| e.to_string())?).await,
        other => return Err(format!("no event {other} in socketcluster_chat.protocol")),
    };
    sent.map_err(|e| e.to_string())
}

fn error_value(e: &RequestError) -> Value {
    match e {
        RequestError::Remote(remote) => serde_json::to_value(remote).unwrap_or_default(),
        other => json!({"name": "ClientError", "message": other.to_string()}),
    }
}

/// Parses the JSON of a step's data; anything that is not JSON is a string.
fn data_of(text: Option<&str>) -> Value {
    match text {
        None => Value::Null,
        Some(t) => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_owned())),
    }
}

/// Runs one step; `false` stops the client (a `wait:` that timed out).
///
/// Steps: `emit:EVENT:JSON`, `invoke:EVENT:JSON`, `subscribe:CH`, `unsubscribe:CH`,
/// `publish:CH:JSON` (no `cid`), `invoke-publish:CH:JSON` (acknowledged),
/// `authenticate:TOKEN` (`saved` for the last token the server gave), `deauthenticate`,
/// `wait:KEY` (until something with that key arrived), `stay:MS`.
async fn run_step(link: &Link<sc::Client>, inbox: &Inbox, step: &str, limit: Duration) -> bool {
    let out = &inbox.out;
    let mut parts = step.splitn(3, ':');
    let action = parts.next().unwrap_or_default();
    let first = parts.next();
    let rest = parts.next();
    let name = first.unwrap_or_default().to_owned();
    match action {
        "emit" => match emit(link, &name, data_of(rest)).await {
            Ok(()) => out.line(json!({"step": "emit", "event": name})),
            Err(e) => out.line(json!({"step": "emit", "event": name, "error": e})),
        },
        "invoke" => match invoke(link, &name, data_of(rest)).await {
            Ok(data) => out.line(json!({"step": "invoke", "event": name, "data": data})),
            Err(e) => {
                out.line(json!({"step": "invoke", "event": name, "error": error_value(&e)}));
            }
        },
        "subscribe" => {
            let result = link
                .subscribe(sc::Subscribe {
                    channel: name.clone(),
                    wait_for_auth: None,
                    data: None,
                })
                .await;
            match result {
                Ok(Empty) => out.line(json!({"step": "subscribe", "channel": name})),
                Err(e) => out
                    .line(json!({"step": "subscribe", "channel": name, "error": error_value(&e)})),
            }
        }
        "unsubscribe" => {
            // Transmitted without `cid`, as socketcluster-client does.
            let sent = link.send(sc::Unsubscribe(name.clone())).await;
            out.line(json!({"step": "unsubscribe", "channel": name, "sent": sent.is_ok()}));
        }
        "publish" => {
            let sent = link
                .send(sc::Publish {
                    channel: name.clone(),
                    data: Some(data_of(rest)),
                })
                .await;
            out.line(json!({"step": "publish", "channel": name, "sent": sent.is_ok()}));
        }
        "invoke-publish" => {
            let acked = link
                .publish(sc::Publish {
                    channel: name.clone(),
                    data: Some(data_of(rest)),
                })
                .await;
            match acked {
                Ok(Empty) => {
                    out.line(json!({"step": "invokePublish", "channel": name, "acked": true}));
                }
                Err(e) => out.line(
                    json!({"step": "invokePublish", "channel": name, "error": error_value(&e)}),
                ),
            }
        }
        "authenticate" => {
            let token = match first {
                Some("saved") => inbox.token().clone().unwrap_or_default(),
                _ => step
                    .split_once(':')
                    .map(|(_, t)| t)
                    .unwrap_or_default()
                    .to_owned(),
            };
            match link.authenticate(token).await {
                Ok(reply) => out.line(json!({
                    "step": "authenticate",
                    "isAuthenticated": reply.is_authenticated,
                    "authError": reply.auth_error,
                })),
                Err(e) => out.line(json!({"step": "authenticate", "error": error_value(&e)})),
            }
        }
        "deauthenticate" => {
            let sent = link.remove_auth_token().await;
            out.line(json!({"step": "deauthenticate", "sent": sent.is_ok()}));
        }
        "wait" => {
            if !inbox.wait(&name, limit).await {
                out.line(json!({"step": "wait", "key": name, "timeout": true}));
                return false;
            }
            out.line(json!({"step": "wait", "key": name}));
        }
        "stay" => {
            // Staying connected is what this step checks: the heartbeat must keep the link up.
            let ms = name.parse::<u64>().unwrap_or(0);
            let closed = tokio::time::timeout(Duration::from_millis(ms), link.closed()).await;
            out.line(json!({"step": "stay", "open": closed.is_err()}));
        }
        other => {
            out.line(json!({"step": other, "error": "unknown step"}));
            return false;
        }
    }
    true
}

/// `protolink socketcluster client`: connects, runs the steps in order and prints JSON lines.
pub(crate) async fn client(url: &str, options: ClientOptions) -> std::io::Result<()> {
    let out = Printer::stdout();
    let limit = Duration::from_millis(options.timeout);
    let inbox = Arc::new(Inbox {
        out: out.clone(),
        keys: Mutex::new(Vec::new()),
        arrived: Notify::new(),
        token: Mutex::new(None),
    });
    let config = LinkConfig {
        heartbeat_variant: Some(options.protocol_version.to_string()),
        request_timeout: limit,
        ..LinkConfig::default()
    };
    let session = Session::new().with(sc::Handshake {
        // `null` without a token, as socketcluster-client writes it (not an empty object).
        auth_token: Some(options.auth_token.map_or(Value::Null, Value::String)),
    });
    let handler_inbox = inbox.clone();
    let link = connect(url)
        .config(config)
        .session(session)
        .handler(move |_| ClientSide {
            inbox: handler_inbox,
        })
        .await
        .map_err(std::io::Error::other)?;
    let reply = link
        .handshake_reply()
        .and_then(|raw| serde_json::from_str::<sc::HandshakeReply>(raw.get()).ok());
    match reply {
        Some(reply) => out.line(json!({
            "step": "handshake",
            "id": reply.id,
            "pingTimeout": reply.ping_timeout,
            "isAuthenticated": reply.is_authenticated,
            "authError": reply.auth_error,
        })),
        None => out.line(json!({"step": "handshake", "error": "no handshake reply"})),
    }
    let mut ok = true;
    for step in &options.steps {
        if link.is_closed() || !run_step(&link, &inbox, step, limit).await {
            ok = false;
            break;
        }
    }
    if let protolink::LinkState::Closed { code, reason } = link.state() {
        out.line(json!({"closed": {"code": code, "reason": reason}}));
        ok = false;
    } else {
        link.close_gracefully(protolink::link::close::NORMAL, "done")
            .await;
    }
    out.line(json!({"step": "done", "ok": ok}));
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::other("the scenario did not complete"))
    }
}
