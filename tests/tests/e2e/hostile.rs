//! A hostile peer, generated: random sequences of frames sent to a link once its handshake is done,
//! by a client to our server links and by a server to our client links. The frames are real ones,
//! real ones with a byte changed, cut short or spliced into another, random JSON, binary frames,
//! and frames of every other kind the peer could send (replies to nothing, repeated handshake
//! steps, heartbeats). Whatever comes, the link neither panics nor hangs: it still answers a
//! well-formed request sent after the sequence, or it closes with a close frame carrying a code the
//! runtime or the protocol uses. A link whose task panicked would drop the connection without a
//! close frame, which fails the property.
//!
//! Server links: Litecord (ids, a handshake, positional payloads), Skynet (ordered replies, inline
//! payloads, binary text), SocketCluster (batches, untagged replies, optional ids) and Clusterio
//! (two links on one path, strict, numbered frames, ids inside the payload); client links: Litecord
//! and SocketCluster, whose reply routing the random replies exercise. Real sockets on 127.0.0.1:0;
//! one server per protocol for all the cases; `PROPTEST_CASES` overrides the number of cases, and
//! `HOSTILE_DEBUG` prints what came of each.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use protolink::ws::{Routes, WsServer, connect};
use protolink::{Empty, RemoteError};
use protolink::{LinkConfig, Session};
use protolink_protocols::clusterio as cl;
use protolink_protocols::litecord_example as lc;
use protolink_protocols::skynet as sk;
use protolink_protocols::socketcluster as sc;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Ws;

/// How long the link has to answer the probe or close, after the last frame.
const WAIT: Duration = Duration::from_secs(10);

/// One frame of the hostile peer.
#[derive(Debug, Clone)]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

/// Any JSON value, small: objects and arrays up to four deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z_#]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_#]{0,6}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A frame of a hostile peer of a protocol whose frames look like `real`.
fn frame(real: &'static [&'static str]) -> impl Strategy<Value = Frame> {
    let whole = select(real).prop_map(|f| Frame::Text(f.to_owned()));
    let changed = (select(real), any::<Index>(), any::<u8>()).prop_map(|(f, at, byte)| {
        let mut bytes = f.as_bytes().to_vec();
        if let Some(b) = bytes.get_mut(at.index(f.len().max(1))) {
            *b = byte;
        }
        Frame::Text(String::from_utf8_lossy(&bytes).into_owned())
    });
    // The real frames are ASCII: any cut is at a character boundary.
    let cut = (select(real), any::<Index>()).prop_map(|(f, at)| {
        let end = at.index(f.len() + 1);
        Frame::Text(f[..end].to_owned())
    });
    let spliced =
        (select(real), select(real), any::<Index>(), any::<Index>()).prop_map(|(a, b, i, j)| {
            Frame::Text(format!(
                "{}{}",
                &a[..i.index(a.len() + 1)],
                &b[j.index(b.len() + 1)..]
            ))
        });
    let random = json().prop_map(|v| Frame::Text(v.to_string()));
    // A real frame's object with one more key of any value.
    let grown =
        (select(real), "[a-z_]{1,6}", json()).prop_map(
            |(f, key, value)| match serde_json::from_str::<Value>(f) {
                Ok(Value::Object(mut object)) => {
                    object.insert(key, value);
                    Frame::Text(Value::Object(object).to_string())
                }
                _ => Frame::Text(f.to_owned()),
            },
        );
    // A real frame as a binary frame (text where the profile says `binary text`), or bytes.
    let binary = select(real).prop_map(|f| Frame::Binary(f.as_bytes().to_vec()));
    let bytes = prop::collection::vec(any::<u8>(), 0..32).prop_map(Frame::Binary);
    // Binary frames close most protocols' links: rare enough that most cases reach the probe.
    prop_oneof![
        20 => whole,
        15 => changed,
        10 => cut,
        10 => spliced,
        10 => random,
        15 => grown,
        1 => binary,
        1 => bytes,
    ]
}

/// A step of the handshake the hostile peer runs first, as a real peer does.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Wait for the server's next text frame.
    Read,
    /// Send this frame.
    Send(&'static str),
}

/// What came of a case: the probe answered, or a close with this code.
#[derive(Debug, PartialEq)]
enum Outcome {
    Answered,
    Closed(u16),
}

/// Connects to the server link at `url` and plays the hostile peer ([`exchange`]).
async fn run(
    url: &str,
    handshake: &[Step],
    frames: &[Frame],
    probe: &str,
    answers: fn(&Value) -> bool,
) -> Result<Outcome, String> {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    exchange(ws, handshake, frames, probe, answers).await
}

/// Runs the handshake, sends `frames`, then `probe`; reads until the probe's answer (a text frame
/// `answers` accepts) or a close frame.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    handshake: &[Step],
    frames: &[Frame],
    probe: &str,
    answers: fn(&Value) -> bool,
) -> Result<Outcome, String> {
    for step in handshake {
        match step {
            Step::Send(frame) => send(&mut ws, Ws::text(*frame)).await,
            Step::Read => loop {
                let next = tokio::time::timeout(WAIT, ws.next()).await;
                match next.map_err(|_| "no handshake frame in time".to_owned())? {
                    Some(Ok(Ws::Text(_))) => break,
                    Some(Ok(_)) => {}
                    other => return Err(format!("the handshake failed: {other:?}")),
                }
            },
        }
    }
    for frame in frames {
        let message = match frame {
            Frame::Text(text) => Ws::text(text.as_str()),
            Frame::Binary(bytes) => Ws::binary(bytes.clone()),
        };
        send(&mut ws, message).await;
    }
    send(&mut ws, Ws::text(probe)).await;
    loop {
        let next = tokio::time::timeout(WAIT, ws.next())
            .await
            .map_err(|_| "neither answered nor closed in time".to_owned())?;
        match next {
            Some(Ok(Ws::Text(text))) => {
                if serde_json::from_str(text.as_str()).is_ok_and(|v| answers(&v)) {
                    return Ok(Outcome::Answered);
                }
            }
            Some(Ok(Ws::Close(Some(frame)))) => return Ok(Outcome::Closed(frame.code.into())),
            Some(Ok(Ws::Close(None))) => return Err("a close frame without a code".into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("the connection failed without a close: {e}")),
            None => return Err("the connection ended without a close frame".into()),
        }
    }
}

/// Sends one frame; once the link has closed, what is left is not sent (the close comes next).
async fn send<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, message: Ws) {
    let _ = ws.send(message).await;
}

/// Codes a server link closes with: the runtime's (1000, and 1002, 1003, 1007, 1008, 1009 for
/// bad input) and the protocol's own (4000-4999). Never 1011, an internal error.
fn expected_close(code: u16) -> bool {
    matches!(code, 1000 | 1002 | 1003 | 1007 | 1008 | 1009 | 4000..=4999)
}

/// Runs the property: `cases` random sequences of up to 24 frames against the server at `url`.
fn hostile_peer(
    url: &str,
    real: &'static [&'static str],
    handshake: &[Step],
    probe: &str,
    answers: fn(&Value) -> bool,
) {
    check_cases(real, |frames| async move {
        run(url, handshake, &frames, probe, answers).await
    });
}

/// Checks what `case` makes of random sequences of up to 24 frames like `real`.
fn check_cases<F: Future<Output = Result<Outcome, String>>>(
    real: &'static [&'static str],
    case: impl Fn(Vec<Frame>) -> F,
) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(48);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let runtime = tokio::runtime::Handle::current();
    let strategy = prop::collection::vec(frame(real), 0..24);
    let result = runner.run(&strategy, |frames| {
        let outcome = tokio::task::block_in_place(|| runtime.block_on(case(frames)));
        if std::env::var_os("HOSTILE_DEBUG").is_some() {
            eprintln!("{outcome:?}");
        }
        match outcome {
            Ok(Outcome::Answered) => Ok(()),
            Ok(Outcome::Closed(code)) if expected_close(code) => Ok(()),
            Ok(Outcome::Closed(code)) => Err(TestCaseError::fail(format!("closed with {code}"))),
            Err(e) => Err(TestCaseError::fail(e)),
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---- Litecord: ids, a handshake, a heartbeat -------------------------------------------------

struct Guilds;

impl lc::ServerHandler for Guilds {
    async fn get_guild(&self, request: lc::GetGuild) -> Result<lc::Guild, RemoteError> {
        Ok(lc::Guild {
            id: request.guild_id,
            name: "guild".into(),
            owner_id: "1".into(),
            member_count: 1,
        })
    }
}

/// What a Litecord example server receives, and what it sends (a peer may send anything).
const LITECORD: &[&str] = &[
    r#"{"op": 1, "password": "x"}"#,
    r#"{"op": 2, "s": 0}"#,
    r#"{"op": 2}"#,
    r#"{"op": 4, "w": "GET_GUILD", "a": ["123"], "n": 1}"#,
    r#"{"op": 4, "w": "GET_GUILD", "a": ["abc"], "n": "0000000a"}"#,
    r#"{"op": 4, "w": "TOKEN_VALIDATE", "a": ["dXNlcg.x.y"], "n": 2}"#,
    r#"{"op": 5, "r": [false, "user not found"], "n": "ab12cd34"}"#,
    r#"{"op": 5, "e": "no such guild", "n": 3}"#,
    r#"{"op": 6, "w": "USER_PRESENCE", "a": ["1", "idle", null]}"#,
    r#"{"op": 0, "hb_interval": 500}"#,
    r#"{"op": 3}"#,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_litecord_peer_is_answered_or_closed_never_dropped() {
    let server = WsServer::<lc::Server>::bind("127.0.0.1:0")
        .await
        .unwrap()
        .link_config(LinkConfig::default());
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let session = Session::new().with(lc::Hello {
        hb_interval: 60_000,
    });
    let (_shutdown, _serving) = server.serve(session, |_| Guilds);
    hostile_peer(
        &url,
        LITECORD,
        &[Step::Read, Step::Send(r#"{"op": 1, "password": "x"}"#)],
        r#"{"op": 4, "w": "GET_GUILD", "a": ["424242"], "n": 987654}"#,
        |v| v["n"] == 987654 && v["r"]["id"] == "424242",
    );
}

// ---- Skynet: no ids, replies in order, inline payloads, binary text ---------------------------

struct Channels;

impl sk::ServerHandler for Channels {
    async fn open(&self, request: sk::Open) -> Result<sk::OpenReply, RemoteError> {
        Ok(sk::OpenReply {
            channels: vec![request.channel],
        })
    }
    async fn close_channel(
        &self,
        request: sk::CloseChannel,
    ) -> Result<sk::CloseChannelReply, RemoteError> {
        Ok(sk::CloseChannelReply {
            channels: vec![request.channel],
        })
    }
    async fn message(&self, _request: sk::Message) -> Result<sk::SentMessage, RemoteError> {
        Err(RemoteError::new("not here"))
    }
    async fn log(&self, _request: sk::Log) -> Result<sk::LogReply, RemoteError> {
        Ok(sk::LogReply { log: Vec::new() })
    }
}

/// What a Skynet server receives, and what it sends.
const SKYNET: &[&str] = &[
    r#"{"type":"open","channel":42}"#,
    r#"{"type":"open","channel":"general"}"#,
    r#"{"type":"close","channel":42}"#,
    r#"{"type":"message","channel":42,"message":"hi","extra":{"x":1}}"#,
    r#"{"type":"log","start":1,"end":2}"#,
    r#"{"channels":[42],"type":"result","for":"open"}"#,
    r#"{"type":"error","error":"nope"}"#,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_skynet_peer_is_answered_or_closed_never_dropped() {
    let server = WsServer::<sk::Server>::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/connect", server.local_addr().unwrap());
    let (_shutdown, _serving) = server.serve(Session::new(), |_| Channels);
    hostile_peer(
        &url,
        SKYNET,
        &[],
        r#"{"type":"open","channel":424242}"#,
        |v| v["for"] == "open" && v["channels"][0] == 424242,
    );
}

// ---- SocketCluster: batches, untagged replies, optional ids -----------------------------------

struct Broker;

impl sc::ServerHandler for Broker {
    async fn handshake(&self, _request: sc::Handshake) -> Result<sc::HandshakeReply, RemoteError> {
        Ok(sc::HandshakeReply {
            id: "hostile".into(),
            ping_timeout: 60_000,
            is_authenticated: false,
            auth_error: None,
        })
    }
    async fn subscribe(&self, _request: sc::Subscribe) -> Result<Empty, RemoteError> {
        Ok(Empty {})
    }
    async fn unsubscribe(&self, _request: sc::Unsubscribe) -> Result<Empty, RemoteError> {
        Ok(Empty {})
    }
    async fn publish(&self, _request: sc::Publish) -> Result<Empty, RemoteError> {
        Ok(Empty {})
    }
    async fn authenticate(
        &self,
        _request: sc::Authenticate,
    ) -> Result<sc::AuthenticateReply, RemoteError> {
        Err(RemoteError::new("no auth here"))
    }
}

/// What a SocketCluster server receives, and what it sends.
const SOCKETCLUSTER: &[&str] = &[
    r##"{"event":"#handshake","data":{"authToken":null},"cid":1}"##,
    r##"{"event":"#subscribe","data":{"channel":"news"},"cid":2}"##,
    r##"{"event":"#subscribe","data":{"channel":"news"}}"##,
    r##"{"event":"#unsubscribe","data":"news","cid":3}"##,
    r##"{"event":"#publish","data":{"channel":"news","data":{"t":"hi"}},"cid":4}"##,
    r##"{"event":"#authenticate","data":"token","cid":5}"##,
    r##"{"event":"#removeAuthToken"}"##,
    r##"[{"event":"#subscribe","data":{"channel":"a"},"cid":6},{"event":"#publish","data":{"channel":"a","data":1}}]"##,
    r#"{"rid":1,"data":{"id":"x","pingTimeout":5000,"isAuthenticated":false}}"#,
    r#"{"rid":3,"error":{"message":"nope","name":"MyError","code":42}}"#,
    r#"{"rid":5}"#,
    r##"{"rid":3,"event":"#subscribe","data":{"channel":"b"},"cid":7}"##,
    r##"{"event":"#disconnect","data":{"code":4000,"data":"bye"}}"##,
    "#2",
    "",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_socketcluster_peer_is_answered_or_closed_never_dropped() {
    let server = WsServer::<sc::Server>::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/socketcluster/", server.local_addr().unwrap());
    let (_shutdown, _serving) = server.serve(Session::new(), |_| Broker);
    hostile_peer(
        &url,
        SOCKETCLUSTER,
        &[
            Step::Send(r##"{"event":"#handshake","data":{"authToken":null},"cid":1}"##),
            Step::Read,
        ],
        r##"{"event":"#subscribe","data":{"channel":"probe"},"cid":987654}"##,
        |v| v["rid"] == 987654 && v.get("error").is_none(),
    );
}

// ---- Clusterio: two links on one path, strict, numbered, ids inside the payload ---------------

/// What a Clusterio master receives, and what it sends.
const CLUSTERIO: &[&str] = &[
    r#"{"seq":1,"type":"hello","data":{"version":"2.0.0-alpha"}}"#,
    r#"{"seq":2,"type":"register_control","data":{"token":"t","agent":"a","version":"v"}}"#,
    r#"{"seq":2,"type":"register_slave","data":{"token":"t","agent":"a","version":"v","name":"s","id":1}}"#,
    r#"{"seq":3,"type":"list_slaves_request","data":{}}"#,
    r#"{"seq":4,"type":"list_instances_request","data":{}}"#,
    r#"{"seq":5,"type":"list_slaves_response","data":{"list":[],"seq":2}}"#,
    r#"{"seq":6,"type":"get_instance_config_response","data":{"seq":3,"error":"no such instance"}}"#,
    r#"{"seq":7,"type":"ready","data":{}}"#,
    r#"{"seq":8,"type":"close","data":{"reason":"bye"}}"#,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_clusterio_peer_is_answered_or_closed_never_dropped() {
    let server = WsServer::<cl::MasterWithControl>::bind("127.0.0.1:0")
        .await
        .unwrap()
        .path("/api/socket");
    let url = format!("ws://{}/api/socket", server.local_addr().unwrap());
    let hello = cl::Hello {
        version: "test".into(),
    };
    // `()` handles nothing: every request is answered with an error, which is an answer.
    let routes = Routes::new()
        .route(
            Session::<cl::MasterWithControl>::new().with(hello.clone()),
            |_| (),
        )
        .route(Session::<cl::MasterWithSlave>::new().with(hello), |_| ());
    let (_shutdown, _serving) = server.serve_routes(routes);
    hostile_peer(
        &url,
        CLUSTERIO,
        &[
            Step::Read,
            Step::Send(
                r#"{"seq":1,"type":"register_control","data":{"token":"t","agent":"a","version":"v"}}"#,
            ),
            Step::Read,
        ],
        r#"{"seq":987654,"type":"list_slaves_request","data":{}}"#,
        |v| v["type"] == "list_slaves_response" && v["data"]["seq"] == 987654,
    );
}

// ---- The other way round: a hostile server, our clients ---------------------------------------

/// Plays a hostile server to one client link per case: accepts it on 127.0.0.1:0, runs the
/// handshake's steps from the server's side, sends the frames and then `probe`, a request the
/// client answers. `start` connects the client to the URL it is given; the client is dropped
/// when the case ends.
fn hostile_server<C, Fut>(
    real: &'static [&'static str],
    handshake: &'static [Step],
    probe: &'static str,
    answers: fn(&Value) -> bool,
    start: fn(String) -> Fut,
) where
    Fut: Future<Output = C> + Send + 'static,
    C: Send + 'static,
{
    check_cases(real, |frames| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let url = format!(
            "ws://{}/",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let client = tokio::spawn(start(url));
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let ws = tokio_tungstenite::accept_async(tcp)
            .await
            .map_err(|e| format!("upgrade: {e}"))?;
        let outcome = exchange(ws, handshake, &frames, probe, answers).await;
        client.abort();
        outcome
    });
}

struct Validator;

impl lc::ClientHandler for Validator {
    async fn token_validate(
        &self,
        _request: lc::TokenValidate,
    ) -> Result<lc::TokenValidity, RemoteError> {
        Ok(lc::TokenValidity::Bool(true))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_litecord_server_is_answered_or_closed_never_dropped() {
    hostile_server(
        LITECORD,
        &[Step::Send(r#"{"op": 0, "hb_interval": 60000}"#), Step::Read],
        r#"{"op": 4, "w": "TOKEN_VALIDATE", "a": ["t"], "n": 987654}"#,
        |v| v["n"] == 987654 && v["r"] == true,
        |url| async move {
            let session = Session::new().with(lc::HelloAck {
                password: "x".into(),
            });
            connect::<lc::Client>(&url)
                .session(session)
                .handler(|_| Validator)
                .await
        },
    );
}

struct Tokens;

impl sc::ClientHandler for Tokens {
    async fn set_auth_token(&self, _request: sc::SetAuthToken) -> Result<Empty, RemoteError> {
        Ok(Empty {})
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_socketcluster_server_is_answered_or_closed_never_dropped() {
    hostile_server(
        SOCKETCLUSTER,
        &[
            Step::Read,
            Step::Send(
                r#"{"rid":1,"data":{"id":"x","pingTimeout":60000,"isAuthenticated":false}}"#,
            ),
        ],
        r##"{"event":"#setAuthToken","data":{"token":"t"},"cid":987654}"##,
        |v| v["rid"] == 987654 && v.get("error").is_none(),
        |url| async move {
            connect::<sc::Client>(&format!("{url}socketcluster/"))
                .handler(|_| Tokens)
                .await
        },
    );
}
