//! Litecord (through the `litecord_example` application protocol): handshake, auth, heartbeat,
//! requests both ways, close codes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protolink::ws::{WsServer, connect};
use protolink::{Link, RemoteError, RequestError, Session};
use protolink_protocols::litecord_example::{
    self as lc, Client, ClientHandler, ClientSender, Guild, Server, ServerHandler, ServerSender,
};
use tokio_tungstenite::tungstenite::Message as Ws;

const PASSWORD: &str = "hunter2";
const WAIT: Duration = Duration::from_secs(5);

struct ServerApp {
    presences: Arc<AtomicUsize>,
}

impl ServerHandler for ServerApp {
    async fn get_guild(&self, request: lc::GetGuild) -> Result<Guild, RemoteError> {
        if request.guild_id == "404" {
            return Err(RemoteError::new("unknown guild"));
        }
        // Answering late must not hold back other requests.
        if request.guild_id == "1" {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Guild {
            id: request.guild_id.clone(),
            name: format!("guild {}", request.guild_id),
            owner_id: "7".into(),
            member_count: 3,
        })
    }

    async fn user_presence(&self, _message: lc::UserPresence) {
        self.presences.fetch_add(1, Ordering::SeqCst);
    }
}

struct ClientApp;

impl ClientHandler for ClientApp {
    async fn token_validate(
        &self,
        request: lc::TokenValidate,
    ) -> Result<lc::TokenValidity, RemoteError> {
        // As rest-py answers: a bare `true`, or `[false, reason]`.
        Ok(if request.token == "good" {
            lc::TokenValidity::Bool(true)
        } else {
            lc::TokenValidity::TokenVerdict(lc::TokenVerdict {
                valid: false,
                reason: Some("user not found".to_owned()),
            })
        })
    }
}

struct Running {
    url: String,
    links: tokio::sync::mpsc::UnboundedReceiver<Link<Server>>,
    presences: Arc<AtomicUsize>,
    _shutdown: protolink::ws::ShutdownHandle,
}

async fn start_server(hb_interval: u32) -> Running {
    let server = WsServer::<Server>::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let session = Session::new().with(lc::Hello { hb_interval }).authenticate(
        |ack: lc::HelloAck| async move {
            if ack.password == PASSWORD {
                Ok(())
            } else {
                Err("wrong password".into())
            }
        },
    );
    let presences = Arc::new(AtomicUsize::new(0));
    let (tx, links) = tokio::sync::mpsc::unbounded_channel();
    let counter = presences.clone();
    let (shutdown, _task) = server.serve(session, move |link| {
        let _ = tx.send(link.clone());
        ServerApp {
            presences: counter.clone(),
        }
    });
    Running {
        url,
        links,
        presences,
        _shutdown: shutdown,
    }
}

async fn start_client(
    url: &str,
    password: &str,
) -> Result<Link<Client>, protolink::ws::ConnectError> {
    let session = Session::new().with(lc::HelloAck {
        password: password.into(),
    });
    tokio::time::timeout(WAIT, connect(url).session(session).handler(|_| ClientApp))
        .await
        .expect("connect finishes")
}

#[tokio::test]
async fn handshake_and_requests_both_ways() {
    let mut server = start_server(100).await;
    let client = start_client(&server.url, PASSWORD).await.unwrap();
    let server_link = tokio::time::timeout(WAIT, server.links.recv())
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, server_link.ready())
        .await
        .unwrap()
        .unwrap();

    // Client → server, several in flight, the slow one answered last.
    let slow = client.get_guild("1".into());
    let fast = client.get_guild("2".into());
    let (slow, fast) = tokio::join!(slow, fast);
    assert_eq!(slow.unwrap().name, "guild 1");
    assert_eq!(fast.unwrap().name, "guild 2");

    // Errors come back typed.
    match client.get_guild("404".into()).await {
        Err(RequestError::Remote(e)) => assert_eq!(e.message, "unknown guild"),
        other => panic!("expected a remote error, got {other:?}"),
    }
    // Validation happens before sending.
    assert!(matches!(
        client.get_guild("abc".into()).await,
        Err(RequestError::Send(_))
    ));

    // Server → client.
    let reply = server_link.token_validate("bad".into()).await.unwrap();
    assert_eq!(
        reply,
        lc::TokenValidity::TokenVerdict(lc::TokenVerdict {
            valid: false,
            reason: Some("user not found".to_owned())
        })
    );
    assert_eq!(
        server_link.token_validate("good".into()).await.unwrap(),
        lc::TokenValidity::Bool(true)
    );

    // Events (DISPATCH) get no reply.
    client
        .user_presence("5".into(), lc::PresenceStatus::Online, None)
        .await
        .unwrap();
    let presences = server.presences.clone();
    tokio::time::timeout(WAIT, async {
        while presences.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();

    // Heartbeats keep the link alive across several intervals (100 ms + 1 s grace).
    let mut state = client.watch_state();
    let stayed = tokio::time::timeout(
        Duration::from_millis(1500),
        state.wait_for(|s| matches!(s, protolink::LinkState::Closed { .. })),
    )
    .await;
    assert!(stayed.is_err(), "the link stayed up");
    assert!(client.get_guild("3".into()).await.is_ok());
}

#[tokio::test]
async fn wrong_password_closes_4001() {
    let server = start_server(1000).await;
    // Litecord's server sends nothing on success, so the client only learns of a failure when
    // the server closes (it may already have, by the time the handshake returns).
    let code = match start_client(&server.url, "nope").await {
        Err(protolink::ws::ConnectError::Handshake { code, .. }) => code,
        Ok(link) => tokio::time::timeout(WAIT, link.closed()).await.unwrap().0,
        Err(other) => panic!("expected 4001, got {other}"),
    };
    assert_eq!(code, 4001);
}

/// A raw client that speaks the protocol by hand, as a real Litecord component would.
async fn raw(
    url: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Result<serde_json::Value, Option<u16>> {
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
async fn heartbeat_before_hello_ack_closes_4002() {
    let server = start_server(1000).await;
    let mut ws = raw(&server.url).await;
    assert_eq!(
        next_json(&mut ws).await.unwrap(),
        serde_json::json!({"op": 0, "hb_interval": 1000})
    );
    ws.send(Ws::text(r#"{"op": 2, "s": 0}"#)).await.unwrap();
    assert_eq!(next_json(&mut ws).await, Err(Some(4002)));
}

#[tokio::test]
async fn silence_closes_4003() {
    let server = start_server(100).await;
    let mut ws = raw(&server.url).await;
    next_json(&mut ws).await.unwrap();
    ws.send(Ws::text(format!(
        r#"{{"op": 1, "password": "{PASSWORD}"}}"#
    )))
    .await
    .unwrap();
    ws.send(Ws::text(r#"{"op": 2, "s": 0}"#)).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await.unwrap(),
        serde_json::json!({"op": 3})
    );
    // No more heartbeats: the server gives up after hb_interval + 1 s.
    assert_eq!(next_json(&mut ws).await, Err(Some(4003)));
}

#[tokio::test]
async fn raw_client_requests_and_answers() {
    let server = start_server(1000).await;
    let mut ws = raw(&server.url).await;
    next_json(&mut ws).await.unwrap();
    ws.send(Ws::text(format!(
        r#"{{"op": 1, "password": "{PASSWORD}"}}"#
    )))
    .await
    .unwrap();
    // The nonce may be a string, and extra keys are tolerated.
    ws.send(Ws::text(
        r#"{"w": "GET_GUILD", "a": ["42"], "op": 4, "n": "ab12cd34", "x": 1}"#,
    ))
    .await
    .unwrap();
    let reply = next_json(&mut ws).await.unwrap();
    assert_eq!(reply["op"], 5);
    assert_eq!(reply["n"], "ab12cd34");
    assert_eq!(reply["r"]["name"], "guild 42");
    // An unknown method gets an error reply instead of silence.
    ws.send(Ws::text(r#"{"op": 4, "w": "NOPE", "a": [], "n": 7}"#))
        .await
        .unwrap();
    let reply = next_json(&mut ws).await.unwrap();
    assert_eq!(reply["op"], 5);
    assert_eq!(reply["n"], 7);
    assert!(reply["e"].as_str().unwrap().contains("NOPE"), "{reply}");
}

/// Our client against a server written by hand from the seed and the wire notes.
#[tokio::test]
async fn our_client_against_a_hand_written_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        ws.send(Ws::text(r#"{"op": 0, "hb_interval": 100}"#))
            .await
            .unwrap();
        let mut got_ack = false;
        let mut heartbeats = 0;
        let mut asked = false;
        while let Some(Ok(frame)) = ws.next().await {
            let Ok(text) = frame.to_text() else { continue };
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            match value["op"].as_i64() {
                Some(1) => {
                    assert_eq!(value["password"], PASSWORD);
                    got_ack = true;
                }
                Some(2) => {
                    assert!(got_ack, "heartbeat before HELLO_ACK");
                    heartbeats += 1;
                    ws.send(Ws::text(r#"{"op": 3}"#)).await.unwrap();
                    if heartbeats == 3 && !asked {
                        // The real gateway asks its clients, with string nonces.
                        ws.send(Ws::text(r#"{"op": 4, "w": "TOKEN_VALIDATE", "a": ["dXNlcg.x.y"], "n": "ab12cd34"}"#)).await.unwrap();
                        asked = true;
                    }
                }
                Some(5) => {
                    assert_eq!(
                        value,
                        serde_json::json!({"op": 5, "n": "ab12cd34", "r": [false, "user not found"]})
                    );
                    return heartbeats;
                }
                other => panic!("unexpected op {other:?}: {text}"),
            }
        }
        panic!("the client went away");
    });
    let _client = start_client(&url, PASSWORD).await.unwrap();
    let heartbeats = tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
    assert!(heartbeats >= 3);
}
