//! The runtime's own behaviour, protocol by protocol where it differs: concurrency, ordering,
//! bad input, disconnects, reconnects and shutdown. Real sockets on 127.0.0.1:0, plus the
//! virtual pair for the shared cases.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protolink::transport::virtual_pair;
use protolink::ws::{Backoff, ConnectionState, ReconnectingClient, WsLimits, WsServer, connect};
use protolink::{Link, LinkConfig, LinkState, RemoteError, RequestError, Sender, Session};
use protolink_protocols::litecord_example::{self as lc, ClientSender, Guild};
use protolink_protocols::skynet::{self as sk, Channel, ClientSender as _};
use tokio_tungstenite::tungstenite::Message as Ws;

const WAIT: Duration = Duration::from_secs(10);

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

// ---- Litecord: id-correlated requests ---------------------------------------------------------

struct Guilds;

impl lc::ServerHandler for Guilds {
    async fn get_guild(&self, request: lc::GetGuild) -> Result<Guild, RemoteError> {
        // Later ids answer sooner, so replies come back out of order.
        let n: u64 = request.guild_id.parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(50 - n % 50)).await;
        if request.guild_id == "999999" {
            std::future::pending::<()>().await;
        }
        Ok(Guild {
            id: request.guild_id.clone(),
            name: format!("g{}", request.guild_id),
            owner_id: "1".into(),
            member_count: 1,
        })
    }
}

struct Silent;
impl lc::ClientHandler for Silent {
    async fn token_validate(
        &self,
        _request: lc::TokenValidate,
    ) -> Result<lc::TokenValidity, RemoteError> {
        Err(RemoteError::new("not supported"))
    }
}

fn lc_server_session() -> Session<lc::Server> {
    Session::new().with(lc::Hello { hb_interval: 1000 })
}

fn lc_client_session() -> Session<lc::Client> {
    Session::new().with(lc::HelloAck {
        password: "x".into(),
    })
}

async fn lc_server(
    config: LinkConfig,
    limits: WsLimits,
) -> (
    String,
    protolink::ws::ShutdownHandle,
    tokio::task::JoinHandle<()>,
) {
    let server = WsServer::<lc::Server>::bind("127.0.0.1:0")
        .await
        .unwrap()
        .link_config(config)
        .limits(limits);
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (shutdown, task) = server.serve(lc_server_session(), |_| Guilds);
    (url, shutdown, task)
}

async fn many_requests_out_of_order(client: Link<lc::Client>) {
    client.ready().await.unwrap();
    let calls = (0..1000u32).map(|i| {
        let client = client.clone();
        async move { (i, client.get_guild(i.to_string()).await) }
    });
    let results = tokio::time::timeout(WAIT, futures_util::future::join_all(calls))
        .await
        .unwrap();
    for (i, result) in results {
        assert_eq!(result.unwrap().name, format!("g{i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_requests_in_flight_over_a_socket() {
    let (url, _shutdown, _task) = lc_server(LinkConfig::default(), WsLimits::default()).await;
    let client = connect(&url)
        .session(lc_client_session())
        .handler(|_| Silent)
        .await
        .unwrap();
    many_requests_out_of_order(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_requests_in_flight_over_the_virtual_pair() {
    let ((server_src, server_sink), (client_src, client_sink)) = virtual_pair(64);
    let _server = Link::<lc::Server>::spawn(
        server_src,
        server_sink,
        LinkConfig::default(),
        lc_server_session(),
        |_| Guilds,
    );
    let client = Link::<lc::Client>::spawn(
        client_src,
        client_sink,
        LinkConfig::default(),
        lc_client_session(),
        |_| Silent,
    );
    many_requests_out_of_order(client).await;
}

#[tokio::test]
async fn virtual_pair_runs_the_session() {
    let ((a_src, a_sink), (b_src, b_sink)) = virtual_pair(8);
    let server = Link::<lc::Server>::spawn(
        a_src,
        a_sink,
        LinkConfig::default(),
        lc_server_session().authenticate(|ack: lc::HelloAck| async move {
            if ack.password == "right" {
                Ok(())
            } else {
                Err("no".into())
            }
        }),
        |_| Guilds,
    );
    let client = Link::<lc::Client>::spawn(
        b_src,
        b_sink,
        LinkConfig::default(),
        lc_client_session(),
        |_| Silent,
    );
    // The wrong password closes the server side with 4001, and the client sees it.
    assert_eq!(
        tokio::time::timeout(WAIT, client.closed()).await.unwrap().0,
        4001
    );
    assert_eq!(server.closed().await.0, 4001);
}

async fn raw_lc(url: &str) -> RawWs {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    next(&mut ws).await.unwrap();
    ws.send(Ws::text(r#"{"op":1,"password":"x"}"#))
        .await
        .unwrap();
    ws
}

/// The next text frame as JSON, or the close code.
async fn next(ws: &mut RawWs) -> Result<serde_json::Value, Option<u16>> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Ws::Text(t))) => return Ok(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Ws::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

#[tokio::test]
async fn binary_frame_closes_1003() {
    let (url, _s, _t) = lc_server(LinkConfig::default(), WsLimits::default()).await;
    let mut ws = raw_lc(&url).await;
    ws.send(Ws::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(next(&mut ws).await, Err(Some(1003)));
}

#[tokio::test]
async fn oversize_frame_closes_1009() {
    let limits = WsLimits {
        max_message_size: 1024,
        max_write_buffer: 1 << 20,
        ..WsLimits::default()
    };
    let (url, _s, _t) = lc_server(LinkConfig::default(), limits).await;
    let mut ws = raw_lc(&url).await;
    let big = format!(
        r#"{{"op":6,"w":"USER_PRESENCE","a":["{}","online",null]}}"#,
        "1".repeat(4096)
    );
    ws.send(Ws::text(big)).await.unwrap();
    assert_eq!(next(&mut ws).await, Err(Some(1009)));
}

#[tokio::test]
async fn bad_frames_are_answered_or_dropped_and_the_link_stays_up() {
    let (url, _s, _t) = lc_server(LinkConfig::default(), WsLimits::default()).await;
    let mut ws = raw_lc(&url).await;
    // Not JSON, no op, unknown op, a nonce of the wrong type: nothing to correlate, dropped.
    for bad in [
        "not json",
        r#"{"w":"GET_GUILD"}"#,
        r#"{"op":99}"#,
        r#"{"op":4,"w":"GET_GUILD","a":["1"],"n":[1]}"#,
    ] {
        ws.send(Ws::text(bad)).await.unwrap();
    }
    // A reply to nothing is dropped.
    ws.send(Ws::text(r#"{"op":5,"n":424242,"r":null}"#))
        .await
        .unwrap();
    // Validation failure: the error names the field and the rule.
    ws.send(Ws::text(r#"{"op":4,"w":"GET_GUILD","a":["abc"],"n":1}"#))
        .await
        .unwrap();
    let reply = next(&mut ws).await.unwrap();
    assert_eq!(reply["n"], 1);
    let error = reply["e"].as_str().unwrap();
    assert!(
        error.contains("guild_id") && error.contains("pattern"),
        "{error}"
    );
    // Wrong argument types are a payload error, answered.
    ws.send(Ws::text(r#"{"op":4,"w":"GET_GUILD","a":[5],"n":2}"#))
        .await
        .unwrap();
    let reply = next(&mut ws).await.unwrap();
    assert_eq!(reply["n"], 2);
    assert!(
        reply["e"].as_str().unwrap().contains("GET_GUILD"),
        "{reply}"
    );
    // Still up.
    ws.send(Ws::text(r#"{"op":4,"w":"GET_GUILD","a":["7"],"n":3}"#))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["r"]["name"], "g7");
}

#[tokio::test]
async fn too_many_invalid_frames_close_1008() {
    let config = LinkConfig {
        max_invalid: 3,
        ..LinkConfig::default()
    };
    let (url, _s, _t) = lc_server(config, WsLimits::default()).await;
    let mut ws = raw_lc(&url).await;
    for _ in 0..5 {
        let _ = ws.send(Ws::text("garbage")).await;
    }
    assert_eq!(next(&mut ws).await, Err(Some(1008)));
}

/// Only what cannot be answered counts: bad requests are answered and unknown events (rest-py
/// dispatches `NEW_GUILD` to gateways that do not know it) are dropped, for the link's whole life.
#[tokio::test]
async fn answered_requests_and_unknown_events_never_count() {
    let config = LinkConfig {
        max_invalid: 3,
        ..LinkConfig::default()
    };
    let (url, _s, _t) = lc_server(config, WsLimits::default()).await;
    let mut ws = raw_lc(&url).await;
    for n in 0..10 {
        ws.send(Ws::text(format!(
            r#"{{"op":6,"w":"NEW_GUILD","a":[425036311435083776,"{n}"]}}"#
        )))
        .await
        .unwrap();
        ws.send(Ws::text(format!(
            r#"{{"op":4,"w":"GET_GUILD","a":[5],"n":{n}}}"#
        )))
        .await
        .unwrap();
        let reply = next(&mut ws).await.unwrap();
        assert_eq!(reply["n"], n, "{reply}");
        assert!(reply["e"].is_string(), "{reply}");
    }
    ws.send(Ws::text(r#"{"op":4,"w":"GET_GUILD","a":["7"],"n":99}"#))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["r"]["name"], "g7");
}

/// Half-open connections (TCP, then nothing) cannot hold the connection limit: a client beyond
/// the limit is refused with HTTP 503 at once, and the half-open ones are dropped when the
/// upgrade timeout runs out, after which clients are served again.
#[tokio::test]
async fn half_open_connections_time_out_and_the_limit_answers_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = WsServer::<lc::Server>::bind("127.0.0.1:0")
        .await
        .unwrap()
        .max_connections(2)
        .upgrade_timeout(Duration::from_millis(300));
    let addr = server.local_addr().unwrap();
    let url = format!("ws://{addr}/");
    let (_shutdown, _task) = server.serve(lc_server_session(), |_| Guilds);
    let mut half_open = Vec::new();
    for _ in 0..2 {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Half a request line, then silence.
        tcp.write_all(b"GET / HT").await.unwrap();
        half_open.push(tcp);
    }
    let refused = tokio::time::timeout(WAIT, async {
        // The accept loop may not have taken both half-open connections yet.
        loop {
            match tokio_tungstenite::connect_async(&url).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    return response.status().as_u16();
                }
                Ok((mut ws, _)) => {
                    let _ = ws.close(None).await;
                    tokio::task::yield_now().await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("a 503 in time");
    assert_eq!(refused, 503);
    for mut tcp in half_open {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let mut ws = raw_lc(&url).await;
    ws.send(Ws::text(r#"{"op":4,"w":"GET_GUILD","a":["7"],"n":1}"#))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["r"]["name"], "g7");
}

/// A WebSocket opened by hand on a raw socket, for frames no client library would send.
async fn raw_upgrade(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

/// The code of the close frame the server sends next (skipping other frames), or `None` when
/// the connection ends without one.
async fn raw_close_code(tcp: &mut tokio::net::TcpStream) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    loop {
        let mut head = [0u8; 2];
        tokio::time::timeout(WAIT, tcp.read_exact(&mut head))
            .await
            .unwrap()
            .ok()?;
        let len = match head[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                tcp.read_exact(&mut ext).await.ok()?;
                usize::from(u16::from_be_bytes(ext))
            }
            127 => return None,
            n => usize::from(n),
        };
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload).await.ok()?;
        if head[0] & 0x0f == 0x8 {
            return Some(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]));
        }
    }
}

/// A client frame (masked with a zero key unless `masked` is false).
fn raw_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut frame = vec![first];
    let len = u8::try_from(payload.len()).expect("a short payload");
    if masked {
        frame.push(0x80 | len);
        frame.extend_from_slice(&[0, 0, 0, 0]);
    } else {
        frame.push(len);
    }
    frame.extend_from_slice(payload);
    frame
}

/// Frames that break RFC 6455 are answered with a close frame saying why (1002, or 1007 for
/// text that is not UTF-8), as the real socketcluster-server does, not a dropped connection.
#[tokio::test]
async fn protocol_errors_close_with_1002_and_bad_text_with_1007() {
    use tokio::io::AsyncWriteExt;
    let server = WsServer::<lc::Server>::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (_shutdown, _task) = server.serve(lc_server_session(), |_| Guilds);
    let cases: [(&str, Vec<u8>, u16); 5] = [
        (
            "text that is not UTF-8",
            raw_frame(0x81, b"\xff\xfe", true),
            1007,
        ),
        ("a reserved opcode", raw_frame(0x83, b"{}", true), 1002),
        (
            "RSV1 without an extension",
            raw_frame(0xc1, b"{}", true),
            1002,
        ),
        (
            "an unmasked client frame",
            raw_frame(0x81, b"{}", false),
            1002,
        ),
        (
            "a control frame over 125 bytes",
            {
                let mut frame = vec![0x89, 0x80 | 126, 0, 200, 0, 0, 0, 0];
                frame.extend_from_slice(&[b'x'; 200]);
                frame
            },
            1002,
        ),
    ];
    for (what, frame, code) in cases {
        let mut tcp = raw_upgrade(addr).await;
        tcp.write_all(&frame).await.unwrap();
        assert_eq!(raw_close_code(&mut tcp).await, Some(code), "{what}");
    }
}

/// A message over the limit is answered with a close frame the sender sees (1009).
#[tokio::test]
async fn an_oversized_message_is_answered_with_1009() {
    let (url, _s, _t) = lc_server(LinkConfig::default(), WsLimits::default()).await;
    let mut ws = raw_lc(&url).await;
    let big = format!(
        r#"{{"op":4,"w":"GET_GUILD","a":["{}"],"n":1}}"#,
        "7".repeat(17 << 20)
    );
    // The send itself may fail once the server has closed; the close frame must still arrive.
    let _ = ws.send(Ws::text(big)).await;
    assert_eq!(next(&mut ws).await, Err(Some(1009)));
}

#[tokio::test]
async fn a_vanishing_peer_fails_pending_requests() {
    // A server that takes the request and drops the TCP connection without a close frame.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        ws.send(Ws::text(r#"{"op":0,"hb_interval":60000}"#))
            .await
            .unwrap();
        while let Some(Ok(frame)) = ws.next().await {
            if frame.to_text().unwrap_or("").contains("GET_GUILD") {
                break;
            }
        }
        drop(ws);
    });
    let client = connect(&url)
        .session(lc_client_session())
        .handler(|_| Silent)
        .await
        .unwrap();
    let result = tokio::time::timeout(WAIT, client.get_guild("1".into()))
        .await
        .unwrap();
    assert!(
        matches!(result, Err(RequestError::Disconnected)),
        "{result:?}"
    );
    assert!(matches!(client.state(), LinkState::Closed { .. }));
}

#[tokio::test]
async fn requests_time_out() {
    let (url, _s, _t) = lc_server(LinkConfig::default(), WsLimits::default()).await;
    let config = LinkConfig {
        request_timeout: Duration::from_millis(200),
        ..LinkConfig::default()
    };
    let client = connect(&url)
        .config(config)
        .session(lc_client_session())
        .handler(|_| Silent)
        .await
        .unwrap();
    let result = client.get_guild("999999".into()).await;
    assert!(
        matches!(result, Err(RequestError::Timeout(_))),
        "{result:?}"
    );
    // A late reply would be dropped; the link goes on.
    assert_eq!(client.get_guild("3".into()).await.unwrap().name, "g3");
}

/// Answers after being told to, and says when a request arrived.
struct Gated {
    arrived: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl lc::ServerHandler for Gated {
    async fn get_guild(&self, request: lc::GetGuild) -> Result<Guild, RemoteError> {
        self.arrived.notify_one();
        self.release.notified().await;
        Ok(Guild {
            id: request.guild_id.clone(),
            name: format!("g{}", request.guild_id),
            owner_id: "1".into(),
            member_count: 1,
        })
    }
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish() {
    let server = WsServer::<lc::Server>::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let arrived = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (a, r) = (arrived.clone(), release.clone());
    let (shutdown, task) = server.serve(lc_server_session(), move |_| Gated {
        arrived: a.clone(),
        release: r.clone(),
    });
    let client = connect(&url)
        .session(lc_client_session())
        .handler(|_| Silent)
        .await
        .unwrap();
    let request = tokio::spawn({
        let client = client.clone();
        async move { client.get_guild("10".into()).await }
    });
    tokio::time::timeout(WAIT, arrived.notified())
        .await
        .unwrap();
    shutdown.shutdown();
    // The server waits for the request in flight before closing.
    release.notify_one();
    assert_eq!(
        tokio::time::timeout(WAIT, request)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .name,
        "g10"
    );
    assert_eq!(
        tokio::time::timeout(WAIT, client.closed()).await.unwrap().0,
        1001
    );
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn client_reconnects_after_the_server_restarts() {
    let server = WsServer::<lc::Server>::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (shutdown, task) = server.serve(lc_server_session(), |_| Guilds);
    let connects = Arc::new(AtomicUsize::new(0));
    let counter = connects.clone();
    let backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(200),
    };
    // Made before `.handler(..)`: the client calls it once per connection.
    let silent = |_| Silent;
    let client: ReconnectingClient<lc::Client> = connect(format!("ws://{addr}/"))
        .session(lc_client_session())
        .handler(silent)
        .reconnecting(backoff, move |_link| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {}
        });
    let link = tokio::time::timeout(WAIT, client.connected())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.get_guild("1".into()).await.unwrap().name, "g1");

    shutdown.shutdown();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    let mut state = client.state();
    tokio::time::timeout(
        WAIT,
        state.wait_for(|s| matches!(s, ConnectionState::Waiting(_))),
    )
    .await
    .unwrap()
    .unwrap();

    // Litecord asks for at least 1 s before reconnecting: every wait honours it.
    let waited = match state.borrow().clone() {
        ConnectionState::Waiting(wait) => wait,
        other => panic!("expected to be waiting, found {other:?}"),
    };
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    let server = WsServer::<lc::Server>::bind(addr).await.unwrap();
    let (_shutdown, _task) = server.serve(lc_server_session(), |_| Guilds);
    tokio::time::timeout(WAIT, async {
        loop {
            if connects.load(Ordering::SeqCst) == 2 {
                break;
            }
            state.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
    let link = client.link().unwrap();
    assert_eq!(link.get_guild("2".into()).await.unwrap().name, "g2");
    client.stop();
}

#[test]
fn backoff_honours_the_protocol_minimum() {
    let backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_secs(30),
    };
    for attempt in 0..20 {
        let wait = backoff.delay(attempt, Duration::from_secs(1));
        assert!(wait >= Duration::from_secs(1), "{wait:?}");
        assert!(wait <= Duration::from_secs(30), "{wait:?}");
    }
}

// ---- Skynet: replies in order, no ids ----------------------------------------------------------

struct Echo;

impl sk::ServerHandler for Echo {
    async fn open(&self, request: sk::Open) -> Result<sk::OpenReply, RemoteError> {
        // Earlier commands take longer: replies must still come back in order.
        if let Channel::Int(n) = request.channel {
            tokio::time::sleep(Duration::from_micros(2000u64.saturating_sub(n as u64 * 2))).await;
        }
        Ok(sk::OpenReply {
            channels: vec![request.channel],
        })
    }
    async fn close_channel(
        &self,
        request: sk::CloseChannel,
    ) -> Result<sk::CloseChannelReply, RemoteError> {
        Err(RemoteError::new(format!(
            "Error: Channel {:?} not open.",
            request.channel
        )))
    }
    async fn message(&self, _request: sk::Message) -> Result<sk::SentMessage, RemoteError> {
        Err(RemoteError::new("not here"))
    }
    async fn log(&self, _request: sk::Log) -> Result<sk::LogReply, RemoteError> {
        Ok(sk::LogReply { log: Vec::new() })
    }
}

struct Listener;
impl sk::ClientHandler for Listener {}

/// A Skynet client that ignores events.
async fn sk_client(url: &str) -> Link<sk::Client> {
    connect(url).handler(|_| Listener).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_match_their_replies_in_order() {
    let server = WsServer::<sk::Server>::bind("127.0.0.1:0")
        .await
        .unwrap()
        .path("/connect");
    let url = format!("ws://{}/connect", server.local_addr().unwrap());
    let (_shutdown, _task) = server.serve(Session::new(), |_| Echo);
    let client = sk_client(&url).await;
    let calls = (0..1000i64).map(|i| {
        let client = client.clone();
        async move {
            (
                i,
                client
                    .request(sk::Open {
                        channel: Channel::Int(i),
                    })
                    .await,
            )
        }
    });
    for (i, reply) in tokio::time::timeout(WAIT, futures_util::future::join_all(calls))
        .await
        .unwrap()
    {
        assert_eq!(reply.unwrap().channels, vec![Channel::Int(i)]);
    }
    // Errors take their place in the order too.
    let (a, b) = tokio::join!(
        client.close_channel(sk::CloseChannel {
            channel: Channel::Int(1)
        }),
        client.request(sk::Log {
            start: None,
            end: None
        })
    );
    assert!(matches!(a, Err(RequestError::Remote(_))));
    assert!(b.is_ok());
}

/// Our client against a server written by hand from the wire notes, which writes a result's
/// payload before its `type` (as the real Skynet server does): the link's reader decodes those
/// in one pass as the oldest request's reply type, and errors keep their place in the order.
#[tokio::test]
async fn payload_first_results_reach_their_requests_in_order() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while let Some(Ok(frame)) = ws.next().await {
            let Ok(text) = frame.to_text() else { continue };
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let reply = match value["type"].as_str() {
                Some("open") => format!(
                    r#"{{"channels":[{}],"type":"result","for":"open"}}"#,
                    value["channel"]
                ),
                Some("close") => r#"{"type":"error","error":"Error: Channel 9 not open."}"#.into(),
                Some("log") => r#"{"log":[],"type":"result","for":"log"}"#.into(),
                other => panic!("unexpected command {other:?}: {text}"),
            };
            ws.send(Ws::text(reply)).await.unwrap();
        }
    });
    let client = sk_client(&url).await;
    let open = |channel| {
        client.request(sk::Open {
            channel: Channel::Int(channel),
        })
    };
    let close = client.close_channel(sk::CloseChannel {
        channel: Channel::Int(9),
    });
    let log = client.request(sk::Log {
        start: None,
        end: None,
    });
    let (a, b, c, d) =
        tokio::time::timeout(WAIT, async { tokio::join!(open(1), close, open(2), log) })
            .await
            .unwrap();
    assert_eq!(a.unwrap().channels, vec![Channel::Int(1)]);
    match b {
        Err(RequestError::Remote(e)) => assert_eq!(e.message, "Error: Channel 9 not open."),
        other => panic!("close: {other:?}"),
    }
    assert_eq!(c.unwrap().channels, vec![Channel::Int(2)]);
    assert!(d.unwrap().log.is_empty());
    assert_eq!(client.unmatched_replies(), 0);
    drop(client);
    server.abort();
}

#[tokio::test]
async fn wrong_path_is_refused() {
    let server = WsServer::<sk::Server>::bind("127.0.0.1:0")
        .await
        .unwrap()
        .path("/connect");
    let url = format!("ws://{}/elsewhere", server.local_addr().unwrap());
    let (_shutdown, _task) = server.serve(Session::new(), |_| Echo);
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
}

#[tokio::test]
async fn not_json_gets_an_error_reply_in_order() {
    let server = WsServer::<sk::Server>::bind("127.0.0.1:0")
        .await
        .unwrap()
        .path("/connect");
    let url = format!("ws://{}/connect", server.local_addr().unwrap());
    let (_shutdown, _task) = server.serve(Session::new(), |_| Echo);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Ws::text("not json")).await.unwrap();
    ws.send(Ws::text(r#"{"type":"open","channel":42}"#))
        .await
        .unwrap();
    let first = next(&mut ws).await.unwrap();
    assert_eq!(first["type"], "error");
    let second = next(&mut ws).await.unwrap();
    assert_eq!(
        second,
        serde_json::json!({"type": "result", "for": "open", "channels": [42]})
    );
}

// ---- A peer that does not read -------------------------------------------------------------------

/// Floods its client with `message` events from the moment the link starts.
struct Flood {
    outcome: tokio::sync::mpsc::UnboundedSender<Result<usize, protolink::SendError>>,
}

impl sk::ServerHandler for Flood {
    async fn open(&self, _request: sk::Open) -> Result<sk::OpenReply, RemoteError> {
        Ok(sk::OpenReply {
            channels: Vec::new(),
        })
    }
    async fn close_channel(
        &self,
        _request: sk::CloseChannel,
    ) -> Result<sk::CloseChannelReply, RemoteError> {
        Ok(sk::CloseChannelReply {
            channels: Vec::new(),
        })
    }
    async fn message(&self, _request: sk::Message) -> Result<sk::SentMessage, RemoteError> {
        Err(RemoteError::new("no"))
    }
    async fn log(&self, _request: sk::Log) -> Result<sk::LogReply, RemoteError> {
        let _ = &self.outcome;
        Ok(sk::LogReply { log: Vec::new() })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_read_is_closed_and_memory_stays_bounded() {
    use protolink_protocols::skynet::ServerSender;
    let config = LinkConfig {
        send_queue: 16,
        send_timeout: Duration::from_millis(300),
        ..LinkConfig::default()
    };
    let limits = WsLimits {
        max_message_size: 1 << 16,
        max_write_buffer: 1 << 16,
        ..WsLimits::default()
    };
    let server = WsServer::<sk::Server>::bind("127.0.0.1:0")
        .await
        .unwrap()
        .path("/connect")
        .link_config(config)
        .limits(limits);
    let url = format!("ws://{}/connect", server.local_addr().unwrap());
    let (tx, mut outcome) = tokio::sync::mpsc::unbounded_channel();
    let (_shutdown, _task) = server.serve(Session::new(), move |link: Link<sk::Server>| {
        let tx = tx.clone();
        let report = tx.clone();
        tokio::spawn(async move {
            let body = "x".repeat(1024);
            let mut sent = 0usize;
            let result = loop {
                let event = sk::SentMessage {
                    channel: Channel::Int(1),
                    message: serde_json::Value::String(body.clone()),
                    id: sent.to_string(),
                    time: 0,
                    extra: Default::default(),
                };
                match link.message_event(event).await {
                    Ok(()) => sent += 1,
                    Err(e) => break Err(e),
                }
                if sent > 1_000_000 {
                    break Ok(sent);
                }
            };
            let _ = report.send(result.map(|_| sent));
            assert!(
                matches!(link.state(), LinkState::Closed { code: 1008, .. }),
                "{:?}",
                link.state()
            );
        });
        Flood { outcome: tx }
    });
    // Connect and never read.
    let (_ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let result = tokio::time::timeout(WAIT, outcome.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(result, Err(protolink::SendError::Closed)),
        "{result:?}"
    );
}

/// A subscriber that falls behind a fan-out is closed, and once it reads on it hears why: the
/// frames the socket already held, then a close frame with 1008 (not a bare EOF).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_falls_behind_hears_1008_when_it_reads_on() {
    let config = LinkConfig {
        send_queue: 16,
        ..LinkConfig::default()
    };
    let limits = WsLimits {
        max_write_buffer: 1 << 16,
        ..WsLimits::default()
    };
    let server = WsServer::<sk::Server>::bind("127.0.0.1:0")
        .await
        .unwrap()
        .path("/connect")
        .link_config(config)
        .limits(limits);
    let url = format!("ws://{}/connect", server.local_addr().unwrap());
    let (tx, mut dropped) = tokio::sync::mpsc::unbounded_channel();
    let (_shutdown, _task) = server.serve(Session::new(), move |link: Link<sk::Server>| {
        let tx = tx.clone();
        tokio::spawn(async move {
            let frame = format!(
                r#"{{"type":"message","channel":1,"message":"{}"}}"#,
                "x".repeat(16 << 10)
            );
            let frame = protolink::transport::Text::from(frame);
            let mut delivered = 0usize;
            // Fan-out never waits: it goes on until the queue is full.
            while link.try_send_frame(frame.clone()) {
                delivered += 1;
                tokio::task::yield_now().await;
            }
            let _ = tx.send((delivered, link.state()));
        });
    });
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // Not a byte read until the server has given up on this subscriber.
    let (delivered, state) = tokio::time::timeout(WAIT, dropped.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(state, LinkState::Closed { code: 1008, .. }),
        "{state:?}"
    );
    let mut read = 0usize;
    let close = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Ws::Text(_))) => read += 1,
            Some(Ok(Ws::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("after {read} frames, no close frame but {other:?}"),
        }
    };
    let close = close.expect("a close code");
    assert_eq!(u16::from(close.code), 1008);
    // Usually the socket filled first and the peer reads what it held; on a busy machine the
    // queue may fill before the writer wrote a frame, and then only the close frame goes out.
    assert!(read <= delivered, "{read} of {delivered}");
}

/// On a protocol without a handshake, a connection that says nothing is closed with 1008 after
/// `first_frame_timeout`; one that spoke in time stays.
#[tokio::test]
async fn a_silent_connection_is_closed_after_the_first_frame_timeout() {
    let config = LinkConfig {
        first_frame_timeout: Some(Duration::from_millis(200)),
        ..LinkConfig::default()
    };
    let server = WsServer::<sk::Server>::bind("127.0.0.1:0")
        .await
        .unwrap()
        .path("/connect")
        .link_config(config);
    let url = format!("ws://{}/connect", server.local_addr().unwrap());
    let (_shutdown, _task) = server.serve(Session::new(), |_| ());

    let (mut silent, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(next(&mut silent).await, Err(Some(1008)));

    let (mut talker, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    talker
        .send(Ws::text(r#"{"type":"open","channel":1}"#))
        .await
        .unwrap();
    assert_eq!(next(&mut talker).await.unwrap()["type"], "error");
    // Past the deadline (a time to let pass, not an event to wait for), the link still answers.
    tokio::time::sleep(Duration::from_millis(400)).await;
    talker
        .send(Ws::text(r#"{"type":"open","channel":2}"#))
        .await
        .unwrap();
    assert_eq!(next(&mut talker).await.unwrap()["type"], "error");
}

// ---- Forwarding ---------------------------------------------------------------------------------

/// A server that answers by asking its own upstream server.
struct Relay {
    upstream: Link<lc::Client>,
}

impl lc::ServerHandler for Relay {
    async fn get_guild(&self, request: lc::GetGuild) -> Result<Guild, RemoteError> {
        Ok(self.upstream.get_guild(request.guild_id).await?)
    }
}

struct Picky;
impl lc::ServerHandler for Picky {
    async fn get_guild(&self, request: lc::GetGuild) -> Result<Guild, RemoteError> {
        if request.guild_id == "0" {
            return Err(RemoteError::new("Instance with ID 0 does not exist"));
        }
        Ok(Guild {
            id: request.guild_id,
            name: "from upstream".into(),
            owner_id: "1".into(),
            member_count: 1,
        })
    }
}

#[tokio::test]
async fn forwarded_requests_route_replies_and_errors_back() {
    // client ⇄ relay (virtual pair) ⇄ upstream (real socket)
    let upstream = WsServer::<lc::Server>::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", upstream.local_addr().unwrap());
    let (stop_upstream, upstream_task) = upstream.serve(lc_server_session(), |_| Picky);
    let to_upstream = connect(&url)
        .session(lc_client_session())
        .handler(|_| Silent)
        .await
        .unwrap();

    let ((r_src, r_sink), (c_src, c_sink)) = virtual_pair(8);
    let _relay = Link::<lc::Server>::spawn(
        r_src,
        r_sink,
        LinkConfig::default(),
        lc_server_session(),
        move |_| Relay {
            upstream: to_upstream,
        },
    );
    let client = Link::<lc::Client>::spawn(
        c_src,
        c_sink,
        LinkConfig::default(),
        lc_client_session(),
        |_| Silent,
    );

    assert_eq!(
        client.get_guild("5".into()).await.unwrap().name,
        "from upstream"
    );
    match client.get_guild("0".into()).await {
        Err(RequestError::Remote(e)) => assert_eq!(e.message, "Instance with ID 0 does not exist"),
        other => panic!("{other:?}"),
    }
    // The next hop goes away: the original requester hears why.
    stop_upstream.shutdown();
    tokio::time::timeout(WAIT, upstream_task)
        .await
        .unwrap()
        .unwrap();
    match client.get_guild("5".into()).await {
        Err(RequestError::Remote(e)) => assert!(e.message.contains("closed"), "{}", e.message),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_handshake_that_never_finishes_times_out() {
    let config = LinkConfig {
        handshake_timeout: Duration::from_millis(200),
        ..LinkConfig::default()
    };
    let (url, _s, _t) = lc_server(config, WsLimits::default()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // HELLO comes; HELLO_ACK never goes. Litecord declares no code of its own for a slow
    // handshake, so the before-handshake code applies.
    assert_eq!(next(&mut ws).await.unwrap()["op"], 0);
    assert_eq!(next(&mut ws).await, Err(Some(4002)));
}
