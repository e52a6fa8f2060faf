//! Conversation tests, the other way round: the recorded real servers replayed against our
//! clients.
//!
//! For every transcript whose server side is a real server (and the two whose client side is
//! rest-py, the real Litecord client), a replaying server on `127.0.0.1:0` plays the recorded
//! server: it walks the transcript's steps in their recorded order across connections, checks
//! every frame our client sends against the recorded client frame (`$masked:TYPE` matches any
//! value of that type, JSON compared as values) and answers with the recorded server frames,
//! masked values filled with plausible ones (the same value wherever the same entity
//! appears). Meanwhile a scenario drives our generated client bindings through what the
//! recorded client did, and checks what they decoded: replies, events, errors and close codes.
//!
//! Our client may send a frame before the recorded client did (it answers a server's request at
//! once where a real client finished its own work first): a frame that matches a later
//! recorded frame on its connection is taken in its place. Request ids a client chooses are
//! matched by position, and the recorded replies are rewritten to the ids ours chose.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use protolink::link::LinkConfig;
use protolink::{Empty, Link, RemoteError, Session};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::WAIT;
use super::conversations::{Step, Transcript, same_frame, transcripts};

/// Transcripts not replayed against our clients, with why.
const NOT_REPLAYED: &[(&str, &str)] = &[
    // Malformed or hostile input from a scripted raw client: our typed clients cannot write it.
    (
        "skynet/binary-json",
        "a command in a binary frame: our client writes text frames",
    ),
    (
        "skynet/channel-types",
        "channels of every JSON type, typed clients write three",
    ),
    (
        "skynet/close-not-open",
        "closes a channel it never opened, to see the error",
    ),
    (
        "skynet/connect-trailing-slash",
        "upgrades on paths the server refuses",
    ),
    (
        "skynet/invalid-channel",
        "channels that are not strings or numbers",
    ),
    (
        "skynet/log-ranges",
        "log bounds of every JSON type, to see JavaScript's slicing",
    ),
    ("skynet/no-type", "frames without a type"),
    ("skynet/non-json", "frames that are not JSON"),
    ("skynet/non-object", "JSON that is not an object"),
    (
        "skynet/server-keys-in-message",
        "client-set ID and time, which the server overwrites",
    ),
    (
        "skynet/unknown-type",
        "a command the protocol does not have",
    ),
    (
        "socketcluster/bad-token-handshake",
        "a token that is not a JWT of the server's key",
    ),
    (
        "socketcluster/bad-token-handshake-v14",
        "a token that is not a JWT of the server's key",
    ),
    (
        "socketcluster/before-handshake",
        "an invoke before the handshake",
    ),
    (
        "socketcluster/before-handshake-v14",
        "an invoke before the handshake",
    ),
    (
        "socketcluster/string-cid-handshake",
        "a #handshake whose cid is a string",
    ),
    (
        "socketcluster/string-cid-handshake-v14",
        "a #handshake whose cid is a string",
    ),
    (
        "clusterio/extra-envelope-key",
        "an envelope with an undeclared key",
    ),
    (
        "clusterio/handshake-invalid",
        "something other than a registration first",
    ),
    (
        "clusterio/invalid-payload",
        "a payload with an undeclared key",
    ),
    ("clusterio/second-register", "a registration after ready"),
    ("clusterio/seq-fraction", "a seq that is not an integer"),
    ("clusterio/seq-not-integer", "a seq that is not an integer"),
    (
        "clusterio/unknown-event",
        "an event the protocol does not have",
    ),
    (
        "clusterio/unknown-type",
        "a type the protocol does not have",
    ),
    (
        "clusterio/wrong-direction",
        "a master-to-slave message sent by a control",
    ),
    // Tokens made by the recorder (expired, not yet valid, another secret): the master refuses
    // them, which the reference tests check for our master; a client only passes its token on.
    (
        "clusterio/token-expired",
        "a token the recorder made to be refused",
    ),
    (
        "clusterio/token-nbf-future",
        "a token the recorder made to be refused",
    ),
    (
        "clusterio/token-other-secret",
        "a token the recorder made to be refused",
    ),
    (
        "clusterio/token-exp-future",
        "a token the recorder made with an expiry, as no client does",
    ),
    (
        "clusterio/instance-config",
        "config fields of every kind through the raw envelope, refused ones included",
    ),
];

/// Why an invoke without data carries `"data": null` from ours.
const NULL_DATA: &str = "a procedure declared with an `any` payload always writes `data` (`null` \
    here), where socketcluster-client leaves out `undefined` data; the real servers read both \
    alike";

/// Recorded client frames our typed clients do not send as recorded: the transcript, the
/// recorded frame, what ours sends in its place (frames one per line; empty for nothing), and
/// why.
const CLIENT_DEPARTURES: &[(&str, &str, &str, &str)] = &[
    (
        "socketcluster/invoke",
        r#"{"event":"nothing","cid":4}"#,
        r#"{"event":"nothing","data":null,"cid":4}"#,
        NULL_DATA,
    ),
    (
        "socketcluster/invoke-v14",
        r#"{"event":"nothing","cid":4}"#,
        r#"{"event":"nothing","data":null,"cid":4}"#,
        NULL_DATA,
    ),
    (
        "socketcluster/auth",
        r#"{"event":"logout","cid":3}"#,
        r#"{"event":"logout","data":null,"cid":3}"#,
        NULL_DATA,
    ),
    (
        "socketcluster/auth-v14",
        r#"{"event":"logout","cid":3}"#,
        r#"{"event":"logout","data":null,"cid":3}"#,
        NULL_DATA,
    ),
    (
        "socketcluster/server-disconnect",
        r#"{"event":"kick","cid":2}"#,
        r#"{"event":"kick","data":null,"cid":2}"#,
        NULL_DATA,
    ),
    (
        "socketcluster/server-disconnect-v14",
        r#"{"event":"kick","cid":2}"#,
        r#"{"event":"kick","data":null,"cid":2}"#,
        NULL_DATA,
    ),
    (
        "socketcluster/invoke",
        r#"{"event":"nope","data":1,"cid":5}"#,
        "",
        "an invoke of a procedure the definition does not declare",
    ),
    (
        "socketcluster/invoke",
        r#"[{"event":"sum","data":{"a":1,"b":2},"cid":6},{"event":"sum","data":{"a":3,"b":4},"cid":7}]"#,
        "{\"event\":\"sum\",\"data\":{\"a\":1,\"b\":2},\"cid\":6}\n{\"event\":\"sum\",\"data\":{\"a\":3,\"b\":4},\"cid\":7}",
        "our client sends every request in a frame of its own (it reads batches, never writes them)",
    ),
    (
        "socketcluster/invoke-v14",
        r#"{"event":"nope","data":1,"cid":5}"#,
        "",
        "an invoke of a procedure the definition does not declare",
    ),
    (
        "socketcluster/invoke-v14",
        r#"[{"event":"sum","data":{"a":1,"b":2},"cid":6},{"event":"sum","data":{"a":3,"b":4},"cid":7}]"#,
        "{\"event\":\"sum\",\"data\":{\"a\":1,\"b\":2},\"cid\":6}\n{\"event\":\"sum\",\"data\":{\"a\":3,\"b\":4},\"cid\":7}",
        "our client sends every request in a frame of its own (it reads batches, never writes them)",
    ),
    (
        "socketcluster/emit",
        r#"{"event":"ignored","data":"y"}"#,
        "",
        "an emit of an event the definition does not declare",
    ),
    (
        "socketcluster/emit-v14",
        r#"{"event":"ignored","data":"y"}"#,
        "",
        "an emit of an event the definition does not declare",
    ),
    (
        "socketcluster/pypi-socketclusterclient",
        r#"{"data": {"a": "ok"}, "error": null, "rid": 1}"#,
        r#"{"data":{"a":"ok"},"rid":1}"#,
        "the PyPI client writes `\"error\": null` in a successful reply; ours leaves it out",
    ),
    (
        "litecord/restpy-token-valid",
        r#"{"op": 6, "w": "NEW_GUILD", "a": [425036311435083776, "123"]}"#,
        "",
        "rest-py's own application event, which the definitions do not declare",
    ),
    (
        "litecord/restpy-token-invalid",
        r#"{"op": 6, "w": "NEW_GUILD", "a": [425036311435083776, "123"]}"#,
        "",
        "rest-py's own application event, which the definitions do not declare",
    ),
];

/// The key of a request id the client chooses, and the key the server echoes it under.
fn client_ids(protocol: &str) -> Option<(&'static str, &'static str)> {
    match protocol {
        "socketcluster" => Some(("cid", "rid")),
        _ => None,
    }
}

/// A heartbeat the client sends on a timer (so not at the recorded moments): its shape, and
/// the server's answer. The replaying server answers each at once; the recorded ones are not
/// walked.
fn client_beat(protocol: &str) -> Option<(&'static str, &'static str)> {
    match protocol {
        "litecord" => Some((r#"{"op":2}"#, r#"{"op":3}"#)),
        _ => None,
    }
}

/// The close message our client sends before its close frame, where the recorded scripted
/// client closed without one.
fn farewell(protocol: &str) -> Option<&'static str> {
    match protocol {
        "clusterio" => {
            Some(r#"{"seq":"$masked:number","type":"close","data":{"reason":"$masked:string"}}"#)
        }
        _ => None,
    }
}

/// Whether a client frame is a timer heartbeat (a recorded one may carry more keys, such as
/// rest-py's counter `s`).
fn is_beat(protocol: &str, text: &str) -> bool {
    let Some((shape, _)) = client_beat(protocol) else {
        return false;
    };
    let (Ok(Value::Object(shape)), Ok(Value::Object(frame))) = (
        serde_json::from_str::<Value>(shape),
        serde_json::from_str::<Value>(text),
    ) else {
        return false;
    };
    shape.iter().all(|(k, v)| frame.get(k) == Some(v))
}

// ---------------------------------------------------------------------------------------------
// The replaying server

type ServerWs = WebSocketStream<TcpStream>;

/// What came from one of our client's connections.
#[derive(Debug)]
enum Seen {
    Frame(String),
    Closed(Option<u16>),
}

struct Conn {
    sink: Arc<tokio::sync::Mutex<SplitSink<ServerWs, Ws>>>,
    seen: mpsc::UnboundedReceiver<Seen>,
    reader: tokio::task::JoinHandle<()>,
}

/// A replaying server: its base URL, the heartbeats it answered, and the walk's outcome.
struct Replay {
    base: String,
    beats: watch::Receiver<Vec<String>>,
    walk: tokio::task::JoinHandle<Vec<String>>,
}

/// The steps the replaying server walks: the departures applied, the timer heartbeats left out.
fn walked_steps(transcript: &Transcript) -> Vec<(String, Step)> {
    let mut steps = Vec::new();
    let mut skip_answer_on: Option<String> = None;
    for (conn, step) in &transcript.steps {
        if let Step::Recv { text } = step {
            if skip_answer_on.as_deref() == Some(conn.as_str()) {
                skip_answer_on = None;
                if client_beat(&transcript.protocol).is_some_and(|(_, ack)| same_frame(ack, text)) {
                    continue;
                }
            }
        }
        match step {
            Step::Send { text, .. } if is_beat(&transcript.protocol, text) => {
                skip_answer_on = Some(conn.clone());
            }
            Step::Send { text, binary } => {
                let departure = CLIENT_DEPARTURES
                    .iter()
                    .find(|(name, frame, _, _)| *name == transcript.name && frame == text);
                match departure {
                    Some((_, _, instead, _)) => {
                        steps.extend(instead.lines().map(|line| {
                            (
                                conn.clone(),
                                Step::Send {
                                    text: line.to_owned(),
                                    binary: *binary,
                                },
                            )
                        }));
                    }
                    None => steps.push((conn.clone(), step.clone())),
                }
            }
            _ => steps.push((conn.clone(), step.clone())),
        }
    }
    steps
}

/// Plays the recorded server of `transcript` on a fresh port.
async fn replay_server(transcript: &Transcript) -> Replay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("ws://{}", listener.local_addr().unwrap());
    let (beats_tx, beats) = watch::channel(Vec::new());
    let walker = Walker {
        name: transcript.name.clone(),
        protocol: transcript.protocol.clone(),
        steps: walked_steps(transcript),
        accepted: acceptor(listener, transcript.protocol.clone(), Arc::new(beats_tx)),
        ids: HashMap::new(),
    };
    Replay {
        base,
        beats,
        walk: tokio::spawn(walker.walk()),
    }
}

struct Walker {
    name: String,
    protocol: String,
    steps: Vec<(String, Step)>,
    /// Connections as they were accepted.
    accepted: mpsc::UnboundedReceiver<Result<(String, Conn), String>>,
    /// Recorded request ids of our client, and the ones it chose.
    ids: HashMap<String, Value>,
}

impl Walker {
    async fn walk(mut self) -> Vec<String> {
        let mut conns: HashMap<String, Conn> = HashMap::new();
        let mut taken: HashSet<usize> = HashSet::new();
        let mut unnamed: std::collections::VecDeque<(String, String)> = Default::default();
        let steps = std::mem::take(&mut self.steps);
        for (at, (conn, step)) in steps.iter().enumerate() {
            let here = format!("{} step {at} ({conn})", self.name);
            match step {
                // Connections are accepted (and upgraded) as they come, and named in the order
                // the recording opened them when the walk first needs them: our client connects
                // and handshakes in one call, where the recorder opened several sockets first.
                Step::Connect { path, .. } => unnamed.push_back((conn.clone(), path.clone())),
                _ => {
                    while !conns.contains_key(conn) {
                        let Some((name, path)) = unnamed.pop_front() else {
                            return vec![format!("{here}: no connection")];
                        };
                        match tokio::time::timeout(WAIT, self.accepted.recv()).await {
                            Ok(Some(Ok((got_path, c)))) if got_path == path => {
                                conns.insert(name, c);
                            }
                            Ok(Some(Ok((got_path, _)))) => {
                                return vec![format!(
                                    "{here}: {name} connected to {got_path}, not {path}"
                                )];
                            }
                            Ok(Some(Err(e))) => return vec![format!("{here}: {e}")],
                            _ => return vec![format!("{here}: {name} did not connect")],
                        }
                    }
                }
            }
            match step {
                Step::Connect { .. } => {}
                Step::Send { .. } if taken.contains(&at) => {}
                Step::Send { text, .. } => {
                    let Some(c) = conns.get_mut(conn) else {
                        return vec![format!("{here}: no connection")];
                    };
                    while !taken.contains(&at) {
                        let actual = match tokio::time::timeout(WAIT, c.seen.recv()).await {
                            Ok(Some(Seen::Frame(actual))) => actual,
                            other => {
                                return vec![format!("{here}: expected {text}, got {other:?}")];
                            }
                        };
                        // This frame, or one recorded later on this connection (before its end).
                        let later = steps[at..]
                            .iter()
                            .enumerate()
                            .map(|(i, s)| (at + i, s))
                            .filter(|(_, (c, _))| c == conn)
                            .take_while(|(_, (_, s))| {
                                !matches!(s, Step::Close { .. } | Step::Closed { .. })
                            })
                            .filter(|(i, _)| !taken.contains(i))
                            .find_map(|(i, (_, s))| match s {
                                Step::Send { text, .. } => self.matches(text, &actual).then_some(i),
                                _ => None,
                            });
                        match later {
                            Some(i) => {
                                taken.insert(i);
                            }
                            None => {
                                return vec![format!("{here}: expected {text}, got {actual}")];
                            }
                        }
                    }
                }
                Step::Recv { text } => {
                    let Some(c) = conns.get_mut(conn) else {
                        return vec![format!("{here}: no connection")];
                    };
                    let frame = self.answer(text);
                    if let Err(e) = c.sink.lock().await.send(Ws::text(frame)).await {
                        return vec![format!("{here}: cannot send {text}: {e}")];
                    }
                }
                Step::Close { code } => {
                    let Some(mut c) = conns.remove(conn) else {
                        return vec![format!("{here}: no connection")];
                    };
                    let farewell = farewell(&self.protocol);
                    loop {
                        match tokio::time::timeout(WAIT, c.seen.recv()).await {
                            Ok(Some(Seen::Closed(got))) => {
                                // 1005: the recorded client closed without a code; ours names one.
                                let fits =
                                    got == Some(*code) || (*code == 1005 && got == Some(1000));
                                if !fits {
                                    return vec![format!(
                                        "{here}: expected a close with {code}, got {got:?}"
                                    )];
                                }
                                break;
                            }
                            Ok(Some(Seen::Frame(f)))
                                if farewell.is_some_and(|shape| same_frame(shape, &f)) => {}
                            other => {
                                return vec![format!(
                                    "{here}: expected a close with {code}, got {other:?}"
                                )];
                            }
                        }
                    }
                    // The reader answers the close and ends.
                    let _ = tokio::time::timeout(WAIT, c.reader).await;
                }
                Step::Closed { code, reason } => {
                    let Some(mut c) = conns.remove(conn) else {
                        return vec![format!("{here}: no connection")];
                    };
                    match code {
                        // The connection ended without a close frame.
                        None => c.reader.abort(),
                        Some(code) => {
                            let frame = (*code != 1005).then(|| CloseFrame {
                                code: (*code).into(),
                                reason: reason.clone().into(),
                            });
                            let _ = c.sink.lock().await.send(Ws::Close(frame)).await;
                            // Our client answers the close.
                            match tokio::time::timeout(WAIT, c.seen.recv()).await {
                                Ok(Some(Seen::Closed(_))) => {}
                                other => {
                                    return vec![format!(
                                        "{here}: expected our client to answer the close, got {other:?}"
                                    )];
                                }
                            }
                        }
                    }
                }
            }
        }
        Vec::new()
    }
}

/// Accepts connections as they come until the walk ends.
fn acceptor(
    listener: TcpListener,
    protocol: String,
    beats: Arc<watch::Sender<Vec<String>>>,
) -> mpsc::UnboundedReceiver<Result<(String, Conn), String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let conn = match accepted {
                Ok((tcp, _)) => accept(tcp, protocol.clone(), beats.clone()).await,
                Err(e) => Err(e.to_string()),
            };
            if tx.send(conn).is_err() {
                return;
            }
        }
    });
    rx
}

/// Upgrades a connection: its path, and its frames forwarded (heartbeats answered).
async fn accept(
    tcp: TcpStream,
    protocol: String,
    beats: Arc<watch::Sender<Vec<String>>>,
) -> Result<(String, Conn), String> {
    let path = Arc::new(Mutex::new(String::new()));
    let seen_path = path.clone();
    // The error variant is tungstenite's HTTP response, as its callback type requires.
    #[allow(clippy::result_large_err)]
    let callback = move |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                         response| {
        *seen_path.lock().unwrap() = request.uri().path().to_owned();
        Ok(response)
    };
    let ws = tokio_tungstenite::accept_hdr_async(tcp, callback)
        .await
        .map_err(|e| e.to_string())?;
    let (sink, mut stream) = ws.split();
    let sink = Arc::new(tokio::sync::Mutex::new(sink));
    let (tx, seen) = mpsc::unbounded_channel();
    let answer = sink.clone();
    let reader = tokio::spawn(async move {
        while let Some(next) = stream.next().await {
            let text = match next {
                Ok(Ws::Text(t)) => t.as_str().to_owned(),
                Ok(Ws::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
                Ok(Ws::Close(frame)) => {
                    let _ = tx.send(Seen::Closed(Some(frame.map_or(1005, |f| f.code.into()))));
                    continue;
                }
                Ok(_) => continue,
                Err(_) => break,
            };
            if is_beat(&protocol, &text) {
                if let Some((_, ack)) = client_beat(&protocol) {
                    let _ = answer.lock().await.send(Ws::text(ack)).await;
                }
                beats.send_modify(|b| b.push(text));
                continue;
            }
            let _ = tx.send(Seen::Frame(text));
        }
        let _ = tx.send(Seen::Closed(None));
    });
    let path = path.lock().unwrap().clone();
    Ok((path, Conn { sink, seen, reader }))
}

impl Walker {
    /// Whether our client's frame is the recorded one; request ids it chose are remembered.
    fn matches(&mut self, recorded: &str, actual: &str) -> bool {
        let Some((id_key, _)) = client_ids(&self.protocol) else {
            return same_frame(recorded, actual);
        };
        let (Ok(mut expected), Ok(got)) = (
            serde_json::from_str::<Value>(recorded),
            serde_json::from_str::<Value>(actual),
        ) else {
            return recorded == actual;
        };
        let mut ids = Vec::new();
        mask_ids(&mut expected, id_key, &mut ids);
        if !same_frame(&expected.to_string(), actual) {
            return false;
        }
        let mut chosen = Vec::new();
        mask_ids(&mut got.clone(), id_key, &mut chosen);
        for (recorded, ours) in ids.into_iter().zip(chosen) {
            self.ids.insert(recorded.to_string(), ours);
        }
        true
    }

    /// A recorded server frame as ours is sent it: masks filled, echoed ids rewritten.
    fn answer(&self, recorded: &str) -> String {
        let Ok(mut value) = serde_json::from_str::<Value>(recorded) else {
            return recorded.to_owned();
        };
        fill(&mut value);
        if let Some((_, echo_key)) = client_ids(&self.protocol) {
            let mut packets: Vec<&mut Value> = match &mut value {
                Value::Array(items) => items.iter_mut().collect(),
                other => vec![other],
            };
            for packet in &mut packets {
                if let Some(id) = packet.get_mut(echo_key) {
                    if let Some(ours) = self.ids.get(&id.to_string()) {
                        *id = ours.clone();
                    }
                }
            }
        }
        value.to_string()
    }
}

/// Replaces the request ids (top level, or in a batch's packets) with masks, collecting them.
fn mask_ids(frame: &mut Value, key: &str, ids: &mut Vec<Value>) {
    let packets: Vec<&mut Value> = match frame {
        Value::Array(items) => items.iter_mut().collect(),
        other => vec![other],
    };
    for packet in packets {
        if let Some(id) = packet.get_mut(key) {
            ids.push(std::mem::replace(id, Value::from("$masked:number")));
        }
    }
}

/// Fills the masks of a recorded server frame with plausible values: the same value wherever
/// the same entity appears (a Skynet message's `ID` in its event, its result and the log), since
/// it is derived from the object's other fields (but the envelope's `type` and `for`).
fn fill(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let identity = {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                for (k, v) in map.iter() {
                    let masked = v.as_str().is_some_and(|s| s.starts_with('$'));
                    if !masked && k != "type" && k != "for" {
                        (k, v.to_string()).hash(&mut hasher);
                    }
                }
                hasher.finish()
            };
            for (key, v) in map.iter_mut() {
                match v.as_str() {
                    Some("$masked:string") => *v = Value::from(filled_string(key, identity)),
                    Some("$masked:number") => {
                        *v = Value::from(1_700_000_000_000 + identity % 1_000_000_000);
                    }
                    Some(s) if s.starts_with("$prefix:") => {
                        *v = Value::from(&s["$prefix:".len()..]);
                    }
                    _ => fill(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(fill),
        _ => {}
    }
}

/// A plausible string for a masked key: a signed token where one belongs, else hex digits.
fn filled_string(key: &str, identity: u64) -> String {
    if key == "token" {
        // What the recording app signs at `login` (socketcluster-server adds `iat`).
        let claims = json!({"user": "ann", "iat": 1_700_000_000});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"interop-secret"),
        )
        .unwrap()
    } else {
        format!("{identity:016x}")
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios: our clients doing what the recorded clients did

/// What a scenario found wrong in what our client decoded.
type Outcome = Result<(), String>;

fn check(ok: bool, what: impl std::fmt::Display) -> Outcome {
    if ok { Ok(()) } else { Err(what.to_string()) }
}

fn config() -> LinkConfig {
    LinkConfig {
        request_timeout: WAIT,
        ..LinkConfig::default()
    }
}

/// Events a handler received, in order.
struct Inbox<T>(mpsc::UnboundedSender<T>);

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> Result<T, String> {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(value)) => Ok(value),
        _ => Err(format!("no {what} within the wait")),
    }
}

fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

mod skynet_scenarios {
    use super::*;
    use protolink_protocols::skynet::{self as sk, Channel, Client, ClientSender};

    impl sk::ClientHandler for Inbox<sk::SentMessage> {
        async fn message_event(&self, message: sk::MessageEvent) {
            let _ = self.0.send(message.0);
        }
    }

    pub(super) async fn connect(
        url: String,
    ) -> Result<(Link<Client>, mpsc::UnboundedReceiver<sk::SentMessage>), String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let link = protolink::ws::connect::<Client>(url)
            .config(config())
            .handler(move |_| Inbox(tx))
            .await
            .map_err(fail("connect"))?;
        Ok((link, rx))
    }

    fn int(n: i64) -> Channel {
        Channel::Int(n)
    }

    fn text(s: &str) -> Channel {
        Channel::String(s.to_owned())
    }

    async fn open(link: &Link<Client>, channel: Channel) -> Result<Vec<Channel>, String> {
        Ok(link
            .open(sk::Open { channel })
            .await
            .map_err(fail("open"))?
            .channels)
    }

    async fn send(
        link: &Link<Client>,
        channel: Channel,
        message: Value,
        extra: Value,
    ) -> Result<sk::SentMessage, String> {
        let extra = serde_json::from_value(extra).map_err(fail("extra"))?;
        link.message(sk::Message {
            channel,
            message,
            extra,
        })
        .await
        .map_err(fail("message"))
    }

    async fn log(
        link: &Link<Client>,
        start: Option<Value>,
        end: Option<Value>,
    ) -> Result<Vec<Value>, String> {
        let reply = link
            .log(sk::Log { start, end })
            .await
            .map_err(fail("log"))?;
        Ok(reply.log.iter().map(|e| e.message.clone()).collect())
    }

    /// A sent message as the server stamped it: ours, with an id and a time.
    fn stamped(sent: &sk::SentMessage, channel: &Channel, message: &Value) -> Outcome {
        check(
            &sent.channel == channel && &sent.message == message && !sent.id.is_empty(),
            format!("sent message {sent:?}"),
        )?;
        check(sent.time > 0, "a time")
    }

    pub(super) async fn main_path(base: String) -> Outcome {
        let (a, mut a_events) = connect(format!("{base}/connect")).await?;
        let (b, mut b_events) = connect(format!("{base}/connect")).await?;
        check(open(&a, int(42)).await? == [int(42)], "a opened 42")?;
        check(open(&b, int(42)).await? == [int(42)], "b opened 42")?;
        let hi = json!("hi");
        let result = send(&a, int(42), hi.clone(), json!({"extra": {"x": 1}})).await?;
        stamped(&result, &int(42), &hi)?;
        check(
            result.extra.get("extra") == Some(&json!({"x": 1})),
            "extra kept",
        )?;
        let event = next(&mut b_events, "event on b").await?;
        stamped(&event, &int(42), &hi)?;
        check(
            event.id == result.id,
            "the event and the result name one message",
        )?;
        let table = json!({"n": [1, 2]});
        stamped(
            &send(&b, int(42), table.clone(), json!({})).await?,
            &int(42),
            &table,
        )?;
        stamped(&next(&mut a_events, "event on a").await?, &int(42), &table)?;
        send(&a, int(43), json!("nobody"), json!({})).await?;
        check(
            log(&a, Some(json!(0)), Some(json!(2))).await? == [json!("nobody"), table.clone()],
            "log 0..2",
        )?;
        check(
            log(&a, None, None).await? == [json!("nobody"), table, hi],
            "the whole log",
        )?;
        let left = b
            .close_channel(sk::CloseChannel { channel: int(42) })
            .await
            .map_err(fail("close"))?;
        check(left.channels.is_empty(), "b closed 42")?;
        send(&a, int(42), json!("after close"), json!({})).await?;
        a.close(1000, "").await;
        b.close(1000, "").await;
        Ok(())
    }

    pub(super) async fn message_without_open(base: String) -> Outcome {
        let (a, mut a_events) = connect(format!("{base}/connect")).await?;
        let (b, _) = connect(format!("{base}/connect")).await?;
        check(open(&a, int(42)).await? == [int(42)], "a opened 42")?;
        let hi = json!("hi");
        let result = send(&b, int(42), hi.clone(), json!({})).await?;
        stamped(&result, &int(42), &hi)?;
        stamped(&next(&mut a_events, "event on a").await?, &int(42), &hi)?;
        a.close(1000, "").await;
        b.close(1000, "").await;
        Ok(())
    }

    /// The Lua client: it connects to `/connect/`, sends without opening, and pipelines.
    pub(super) async fn lua_client(base: String) -> Outcome {
        let (c1, mut c1_events) = connect(format!("{base}/connect/")).await?;
        check(open(&c1, int(42)).await? == [int(42)], "c1 opened 42")?;
        check(log(&c1, None, None).await?.is_empty(), "an empty log")?;
        let (c2, _) = connect(format!("{base}/connect/")).await?;
        let hello = json!("hello from lua");
        let result = send(&c2, int(42), hello.clone(), json!({"from": "b"})).await?;
        stamped(&result, &int(42), &hello)?;
        let event = next(&mut c1_events, "event on c1").await?;
        stamped(&event, &int(42), &hello)?;
        check(event.extra.get("from") == Some(&json!("b")), "from kept")?;
        let table = json!({"list": [1, 2], "n": 1});
        let (sent, logged) = tokio::join!(
            send(&c2, text("x"), table.clone(), json!({})),
            log(&c2, Some(json!(0)), Some(json!(5)))
        );
        stamped(&sent?, &text("x"), &table)?;
        check(logged? == [table.clone(), hello], "c2's log")?;
        check(
            log(&c1, Some(json!(0)), Some(json!(1))).await? == [table],
            "c1's log",
        )?;
        c1.close(1000, "").await;
        check(
            log(&c2, Some(json!("bad")), Some(json!([])))
                .await?
                .is_empty(),
            "a log with bad bounds",
        )?;
        c2.close(1000, "").await;
        Ok(())
    }

    /// The web page in two tabs: each asks for the log and opens `*` at once.
    pub(super) async fn web_page(base: String) -> Outcome {
        let (c1, mut c1_events) = connect(format!("{base}/connect")).await?;
        let (logged, opened) = tokio::join!(log(&c1, None, None), open(&c1, text("*")));
        check(logged?.is_empty() && opened? == [text("*")], "tab 1 set up")?;
        let (c2, _) = connect(format!("{base}/connect")).await?;
        let (logged, opened) = tokio::join!(log(&c2, None, None), open(&c2, text("*")));
        check(logged?.is_empty() && opened? == [text("*")], "tab 2 set up")?;
        for (channel, said) in [("default", "hello from the page"), ("42", "second")] {
            let said = json!(said);
            stamped(
                &send(&c2, text(channel), said.clone(), json!({})).await?,
                &text(channel),
                &said,
            )?;
            stamped(
                &next(&mut c1_events, "event on tab 1").await?,
                &text(channel),
                &said,
            )?;
        }
        c2.close(1001, "").await;
        c1.close(1001, "").await;
        Ok(())
    }
}

mod socketcluster_scenarios {
    use super::*;
    use protolink::{RequestError, Sender};
    use protolink_protocols::chat::{self as sc, Client, ClientSender};

    /// What arrived from the server, in order.
    #[derive(Debug, PartialEq)]
    pub(super) enum Got {
        Publish(String, Value),
        Token(String),
        TokenRemoved,
        Shouted(Value),
        Asked(Value),
        AskResult(Value),
    }

    impl sc::ClientHandler for Inbox<Got> {
        async fn publish_event(&self, message: sc::PublishEvent) {
            let data = message.data.unwrap_or(Value::Null);
            let _ = self.0.send(Got::Publish(message.channel, data));
        }

        async fn set_auth_token(&self, request: sc::SetAuthToken) -> Result<Empty, RemoteError> {
            let _ = self.0.send(Got::Token(request.token));
            Ok(Empty)
        }

        async fn remove_auth_token(&self, _: sc::RemoveAuthToken) {
            let _ = self.0.send(Got::TokenRemoved);
        }

        async fn shouted(&self, message: sc::Shouted) {
            let _ = self.0.send(Got::Shouted(message.0));
        }

        async fn ask_client(&self, request: sc::AskClient) -> Result<Value, RemoteError> {
            let _ = self.0.send(Got::Asked(request.0));
            Ok(json!({"a": "ok"}))
        }

        async fn ping_client(&self, _: sc::PingClient) -> Result<sc::PingClientReply, RemoteError> {
            Ok(sc::PingClientReply {})
        }

        async fn ask_client_result(&self, message: sc::AskClientResult) {
            let _ = self.0.send(Got::AskResult(message.0));
        }
    }

    /// Connects as socketcluster-client does (`authToken: null`) and checks the handshake's
    /// reply.
    pub(super) async fn connect(
        base: &str,
        v14: bool,
    ) -> Result<(Link<Client>, mpsc::UnboundedReceiver<Got>), String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let config = LinkConfig {
            heartbeat_variant: Some(if v14 { "1" } else { "2" }.to_owned()),
            ..config()
        };
        let link = protolink::ws::connect::<Client>(format!("{base}/socketcluster/"))
            .config(config)
            .session(Session::new().with(sc::Handshake {
                auth_token: Some(Value::Null),
            }))
            .handler(move |_| Inbox(tx))
            .await
            .map_err(fail("connect"))?;
        let reply = link
            .handshake_reply()
            .and_then(|raw| serde_json::from_str::<sc::HandshakeReply>(raw.get()).ok())
            .ok_or("no handshake reply")?;
        check(
            !reply.id.is_empty()
                && reply.ping_timeout == 20000
                && !reply.is_authenticated
                && reply.auth_error.is_none(),
            format!("handshake reply {reply:?}"),
        )?;
        Ok((link, rx))
    }

    pub(super) async fn handshake(base: String, v14: bool) -> Outcome {
        let (a, _) = connect(&base, v14).await?;
        a.close(1000, "").await;
        Ok(())
    }

    pub(super) async fn invoke(base: String, v14: bool) -> Outcome {
        let (a, _) = connect(&base, v14).await?;
        let sum = |a: i64, b: i64| sc::Sum { a, b };
        check(a.sum(sum(2, 3)).await.map_err(fail("sum"))? == 5, "2 + 3")?;
        match a.fail(json!({})).await {
            Err(RequestError::Remote(e)) => check(
                e.message == "nope"
                    && e.name.as_deref() == Some("MyError")
                    && e.extra.get("code") == Some(&json!(42)),
                format!("fail's error {e:?}"),
            )?,
            other => return Err(format!("fail answered {other:?}")),
        }
        a.nothing(Value::Null).await.map_err(fail("nothing"))?;
        let (three, seven) = tokio::join!(a.sum(sum(1, 2)), a.sum(sum(3, 4)));
        check(
            three.map_err(fail("sum"))? == 3 && seven.map_err(fail("sum"))? == 7,
            "two sums at once",
        )?;
        a.close(1000, "").await;
        Ok(())
    }

    pub(super) async fn emit(base: String, v14: bool) -> Outcome {
        let (a, mut got) = connect(&base, v14).await?;
        a.shout(json!({"x": 1})).await.map_err(fail("shout"))?;
        check(
            next(&mut got, "shouted").await? == Got::Shouted(json!({"x": 1})),
            "shouted back",
        )?;
        a.close(1000, "").await;
        Ok(())
    }

    pub(super) async fn pubsub(base: String, v14: bool) -> Outcome {
        let (a, mut a_got) = connect(&base, v14).await?;
        let (b, mut b_got) = connect(&base, v14).await?;
        let news = |data: Value| sc::Publish {
            channel: "news".to_owned(),
            data: Some(data),
        };
        for link in [&a, &b] {
            link.subscribe(sc::Subscribe {
                channel: "news".to_owned(),
                wait_for_auth: None,
                data: None,
            })
            .await
            .map_err(fail("subscribe"))?;
        }
        // A publish without a cid, then one acknowledged.
        a.send(news(json!({"t": "hi"})))
            .await
            .map_err(fail("publish"))?;
        a.publish(news(json!("hi2")))
            .await
            .map_err(fail("publish"))?;
        for said in [json!({"t": "hi"}), json!("hi2")] {
            let heard = Got::Publish("news".to_owned(), said);
            check(next(&mut a_got, "publish on a").await? == heard, "a heard")?;
            check(next(&mut b_got, "publish on b").await? == heard, "b heard")?;
        }
        // Unsubscribed by a bare string without a cid, as socketcluster-client does.
        a.send(sc::Unsubscribe("news".to_owned()))
            .await
            .map_err(fail("unsubscribe"))?;
        b.publish(news(json!("after")))
            .await
            .map_err(fail("publish"))?;
        let after = Got::Publish("news".to_owned(), json!("after"));
        check(
            next(&mut b_got, "publish on b").await? == after,
            "b heard after",
        )?;
        a.close(1000, "").await;
        b.close(1000, "").await;
        check(
            a_got.try_recv().is_err(),
            "a heard nothing after unsubscribing",
        )
    }

    pub(super) async fn auth(base: String, v14: bool) -> Outcome {
        let (a, mut got) = connect(&base, v14).await?;
        a.login(sc::Login {
            user: "ann".to_owned(),
        })
        .await
        .map_err(fail("login"))?;
        match next(&mut got, "#setAuthToken").await? {
            Got::Token(token) => {
                let claims = jsonwebtoken::decode::<Value>(
                    &token,
                    &jsonwebtoken::DecodingKey::from_secret(b"interop-secret"),
                    &{
                        let mut v = jsonwebtoken::Validation::default();
                        v.required_spec_claims.clear();
                        v
                    },
                )
                .map_err(fail("the token"))?;
                check(claims.claims["user"] == "ann", "the token names ann")?;
            }
            other => return Err(format!("expected a token, got {other:?}")),
        }
        a.logout(Value::Null).await.map_err(fail("logout"))?;
        check(
            next(&mut got, "#removeAuthToken").await? == Got::TokenRemoved,
            "the token removed",
        )?;
        a.remove_auth_token()
            .await
            .map_err(fail("#removeAuthToken"))?;
        check(
            a.sum(sc::Sum { a: 1, b: 1 }).await.map_err(fail("sum"))? == 2,
            "1 + 1",
        )?;
        a.close(1000, "").await;
        Ok(())
    }

    pub(super) async fn server_disconnect(base: String, v14: bool) -> Outcome {
        let (a, _) = connect(&base, v14).await?;
        // Never answered: the server closes the socket instead.
        match a.kick(Value::Null).await {
            Err(RequestError::Disconnected) => {}
            other => return Err(format!("kick answered {other:?}")),
        }
        let (code, reason) = tokio::time::timeout(WAIT, a.closed())
            .await
            .map_err(fail("closed"))?;
        check(code == 4321, format!("closed with {code} {reason}"))?;
        Ok(())
    }

    pub(super) async fn client_disconnect(base: String, v14: bool) -> Outcome {
        let (a, _) = connect(&base, v14).await?;
        a.send(sc::Disconnect {
            code: 4321,
            data: Some(json!("bye")),
        })
        .await
        .map_err(fail("#disconnect"))?;
        if v14 {
            // 14.x closes with the code the client named.
            let (code, _) = tokio::time::timeout(WAIT, a.closed())
                .await
                .map_err(fail("closed"))?;
            check(code == 4321, format!("closed with {code}"))
        } else {
            a.close(1000, "").await;
            Ok(())
        }
    }

    /// The PyPI client's session: three calls at once, a publish, and the server's askClient.
    pub(super) async fn pypi(base: String) -> Outcome {
        let (c1, mut got) = connect(&base, false).await?;
        check(
            next(&mut got, "askClient").await? == Got::Asked(json!({"q": 1})),
            "asked",
        )?;
        let (sum, shout, subscribe) = tokio::join!(
            c1.sum(sc::Sum { a: 2, b: 3 }),
            c1.shout(json!({"x": 1})),
            c1.subscribe(sc::Subscribe {
                channel: "news".to_owned(),
                wait_for_auth: None,
                data: None,
            })
        );
        check(sum.map_err(fail("sum"))? == 5, "2 + 3")?;
        shout.map_err(fail("shout"))?;
        subscribe.map_err(fail("subscribe"))?;
        c1.publish(sc::Publish {
            channel: "news".to_owned(),
            data: Some(json!("hi")),
        })
        .await
        .map_err(fail("publish"))?;
        let mut heard = Vec::new();
        while heard.len() < 3 {
            heard.push(next(&mut got, "what the server sent").await?);
        }
        check(
            heard
                == [
                    Got::Shouted(json!({"x": 1})),
                    Got::Publish("news".to_owned(), json!("hi")),
                    Got::AskResult(json!({"a": "ok"})),
                ],
            format!("heard {heard:?}"),
        )?;
        c1.close(1000, "").await;
        Ok(())
    }
}

mod litecord_scenarios {
    use super::*;
    use protolink_protocols::litecord_example::{self as lc, Client};

    /// Answers TOKEN_VALIDATE as rest-py does: a bare `true`, or `[false, reason]`.
    struct Component {
        valid: &'static str,
        asked: mpsc::UnboundedSender<String>,
    }

    impl lc::ClientHandler for Component {
        async fn token_validate(
            &self,
            request: lc::TokenValidate,
        ) -> Result<lc::TokenValidity, RemoteError> {
            let valid = request.token == self.valid;
            let _ = self.asked.send(request.token);
            Ok(if valid {
                lc::TokenValidity::Bool(true)
            } else {
                lc::TokenValidity::TokenVerdict(lc::TokenVerdict {
                    valid: false,
                    reason: Some("user not found".to_owned()),
                })
            })
        }
    }

    /// rest-py's session: HELLO_ACK, heartbeats, a TOKEN_VALIDATE answered; `token` is the one
    /// the gateway asks about.
    pub(super) async fn restpy(
        base: String,
        mut beats: watch::Receiver<Vec<String>>,
        token: &str,
    ) -> Outcome {
        let (asked, mut tokens) = mpsc::unbounded_channel();
        let link = protolink::ws::connect::<Client>(format!("{base}/"))
            .config(config())
            .session(Session::new().with(lc::HelloAck {
                password: "P".to_owned(),
            }))
            .handler(move |_| Component {
                valid: "dXNlcg==.HfSYKg.KxUH7tplEuq65KX4qApdCmU6bk0",
                asked,
            })
            .await
            .map_err(fail("connect"))?;
        check(
            next(&mut tokens, "TOKEN_VALIDATE").await? == token,
            "the token asked",
        )?;
        // The recorded HELLO asks for a heartbeat every 500 ms: one comes, as rest-py's did.
        let beat = tokio::time::timeout(WAIT, beats.wait_for(|b| !b.is_empty()))
            .await
            .map_err(fail("a heartbeat"))?
            .map_err(fail("a heartbeat"))?
            .clone();
        check(
            beat.iter().all(|b| {
                same_frame(r#"{"op":2}"#, b) || same_frame(r#"{"op":2,"s":"$masked:number"}"#, b)
            }),
            format!("heartbeats {beat:?}"),
        )?;
        link.close(1000, "").await;
        Ok(())
    }
}

mod clusterio_scenarios {
    use super::*;
    use protolink::RequestError;
    use protolink_protocols::clusterio::{
        self as cl, ControlWithMaster, ControlWithMasterSender, SlaveWithMaster,
        SlaveWithMasterSender,
    };

    /// The master's secret signed this one (claims `{"id":"api"}`); it serves slaves and controls.
    const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6ImFwaSJ9.8xhtA9sgnOq7g_h14JNt1OSIqVeNkCwyPe1IZbD5r1w";
    const VERSION: &str = "2.0.0-alpha";

    async fn control(base: &str) -> Result<Link<ControlWithMaster>, String> {
        protolink::ws::connect::<ControlWithMaster>(format!("{base}/api/socket"))
            .config(config())
            .session(Session::new().with(cl::RegisterControl {
                token: TOKEN.to_owned(),
                agent: "clusterctl".to_owned(),
                version: VERSION.to_owned(),
            }))
            .await
            .map_err(fail("connect a control"))
    }

    /// What the master asked a slave, in order.
    #[derive(Debug)]
    enum Asked {
        Assign(i64, Value),
        Start(i64),
        Metrics,
    }

    struct Slave {
        asked: mpsc::UnboundedSender<Asked>,
        /// The real slave's answer to `statistics_exporter:get_metrics`.
        metrics: Vec<Value>,
    }

    impl cl::SlaveWithMasterHandler for Slave {
        async fn assign_instance(&self, request: cl::AssignInstance) -> Result<Empty, RemoteError> {
            let config = serde_json::to_value(&request.serialized_config).unwrap_or_default();
            let _ = self.asked.send(Asked::Assign(request.instance_id, config));
            Ok(Empty)
        }

        async fn start_instance(&self, request: cl::StartInstance) -> Result<Empty, RemoteError> {
            let _ = self.asked.send(Asked::Start(request.instance_id));
            // The recording slave had no Factorio.
            Err(RemoteError::new(
                "ENOENT: no such file or directory, open 'factorio-absent/data/changelog.txt'",
            ))
        }

        async fn create_save(&self, _: cl::CreateSave) -> Result<Empty, RemoteError> {
            Err(RemoteError::new("not in these transcripts"))
        }

        async fn stop_instance(&self, _: cl::StopInstance) -> Result<Empty, RemoteError> {
            Err(RemoteError::new("not in these transcripts"))
        }

        async fn delete_instance(&self, _: cl::DeleteInstance) -> Result<Empty, RemoteError> {
            Err(RemoteError::new("not in these transcripts"))
        }

        async fn send_rcon(&self, _: cl::SendRcon) -> Result<cl::SendRconReply, RemoteError> {
            Err(RemoteError::new("not in these transcripts"))
        }

        async fn get_metrics(&self, _: cl::GetMetrics) -> Result<cl::GetMetricsReply, RemoteError> {
            let _ = self.asked.send(Asked::Metrics);
            Ok(cl::GetMetricsReply {
                results: self.metrics.clone(),
            })
        }
    }

    async fn slave(
        base: &str,
        metrics: Vec<Value>,
    ) -> Result<(Link<SlaveWithMaster>, mpsc::UnboundedReceiver<Asked>), String> {
        let (asked, rx) = mpsc::unbounded_channel();
        let link = protolink::ws::connect::<SlaveWithMaster>(format!("{base}/api/socket"))
            .config(config())
            .session(Session::new().with(cl::RegisterSlave {
                token: TOKEN.to_owned(),
                agent: "Clusterio Slave".to_owned(),
                version: VERSION.to_owned(),
                name: "one".to_owned(),
                id: 1,
            }))
            .handler(move |_| Slave { asked, metrics })
            .await
            .map_err(fail("connect the slave"))?;
        Ok((link, rx))
    }

    /// An instance's configuration as the real clusterctl and slave write it.
    fn instance_config(id: i64, name: &str, slave: Option<i64>) -> cl::CreateInstance {
        let config = json!({"groups": [
            {"name": "instance", "fields": {"name": name, "id": id, "assigned_slave": slave}},
            {"name": "factorio", "fields": {"game_port": null, "rcon_port": null,
                "rcon_password": null, "settings": {"tags": ["clusterio"], "auto_pause": false}}},
        ]});
        cl::CreateInstance {
            serialized_config: serde_json::from_value(config).unwrap_or_default(),
        }
    }

    fn report(instances: &[cl::CreateInstance]) -> cl::UpdateInstances {
        cl::UpdateInstances {
            instances: instances
                .iter()
                .map(|i| cl::SlaveInstance {
                    serialized_config: i.serialized_config.clone(),
                })
                .collect(),
        }
    }

    /// The instance group of an assigned config, and the plugin groups the master added.
    async fn assigned(asked: &mut mpsc::UnboundedReceiver<Asked>, id: i64, name: &str) -> Outcome {
        match next(asked, "assign_instance").await? {
            Asked::Assign(got, config) => {
                let groups = config["groups"].as_array().cloned().unwrap_or_default();
                check(
                    got == id
                        && groups.first().map(|g| g["fields"].clone())
                            == Some(json!({"name": name, "id": id, "assigned_slave": 1}))
                        && groups.iter().any(|g| g["name"] == "global_chat"),
                    format!("assigned {got} {config}"),
                )
            }
            other => Err(format!("expected assign_instance {id}, got {other:?}")),
        }
    }

    pub(super) async fn control_handshake(base: String) -> Outcome {
        let c = control(&base).await?;
        let slaves = c
            .list_slaves(cl::ListSlaves {})
            .await
            .map_err(fail("list"))?;
        let instances = c
            .list_instances(cl::ListInstances {})
            .await
            .map_err(fail("list"))?;
        check(
            slaves.list.is_empty() && instances.list.is_empty(),
            "empty lists",
        )?;
        c.close_gracefully(1000, "quit").await;
        Ok(())
    }

    pub(super) async fn token_slave_no_claims(base: String) -> Outcome {
        let (s, _) = slave(&base, Vec::new()).await?;
        s.close(1000, "").await;
        Ok(())
    }

    pub(super) async fn slave_assign(base: String) -> Outcome {
        let (s, mut asked) = slave(&base, Vec::new()).await?;
        let fromslave = instance_config(5, "fromslave", Some(1));
        s.update_instances(report(std::slice::from_ref(&fromslave)))
            .await
            .map_err(fail("update_instances"))?;
        assigned(&mut asked, 5, "fromslave").await?;
        let c = control(&base).await?;
        let slaves = c
            .list_slaves(cl::ListSlaves {})
            .await
            .map_err(fail("list"))?;
        check(
            slaves.list.len() == 1
                && slaves.list[0].id == 1
                && slaves.list[0].name == "one"
                && slaves.list[0].agent == "Clusterio Slave"
                && slaves.list[0].connected,
            format!("slaves {:?}", slaves.list),
        )?;
        let instances = c
            .list_instances(cl::ListInstances {})
            .await
            .map_err(fail("list"))?;
        check(
            instances.list.len() == 1
                && instances.list[0].id == 5
                && instances.list[0].name == "fromslave"
                && instances.list[0].assigned_slave == Some(1),
            format!("instances {:?}", instances.list),
        )?;
        c.create_instance(instance_config(7, "alpha", None))
            .await
            .map_err(fail("create"))?;
        let (done, slave_side) = tokio::join!(
            c.assign_instance_command(cl::AssignInstanceCommand {
                instance_id: 7,
                slave_id: 1,
            }),
            assigned(&mut asked, 7, "alpha")
        );
        done.map_err(fail("assign"))?;
        slave_side?;
        s.update_instances(report(&[fromslave, instance_config(7, "alpha", Some(1))]))
            .await
            .map_err(fail("update_instances"))?;
        assigned(&mut asked, 5, "fromslave").await?;
        assigned(&mut asked, 7, "alpha").await?;
        s.close(1000, "").await;
        c.close(1000, "").await;
        Ok(())
    }

    /// The real slave and clusterctl: each clusterctl command on a control link of its own.
    pub(super) async fn real_slave_and_clusterctl(base: String, metrics: Vec<Value>) -> Outcome {
        let (s, mut asked) = slave(&base, metrics.clone()).await?;
        s.update_instances(report(&[]))
            .await
            .map_err(fail("update_instances"))?;
        let c2 = control(&base).await?;
        c2.create_instance(instance_config(7, "alpha", None))
            .await
            .map_err(fail("create"))?;
        c2.close_gracefully(1000, "quit").await;
        let c3 = control(&base).await?;
        let slaves = c3
            .list_slaves(cl::ListSlaves {})
            .await
            .map_err(fail("list"))?;
        check(
            slaves.list.len() == 1 && slaves.list[0].connected,
            "one slave",
        )?;
        c3.close_gracefully(1000, "quit").await;
        let c4 = control(&base).await?;
        let (done, slave_side) = tokio::join!(
            c4.assign_instance_command(cl::AssignInstanceCommand {
                instance_id: 7,
                slave_id: 1,
            }),
            assigned(&mut asked, 7, "alpha")
        );
        done.map_err(fail("assign"))?;
        slave_side?;
        c4.close_gracefully(1000, "quit").await;
        let c5 = control(&base).await?;
        let (done, slave_side) = tokio::join!(
            c5.set_instance_config_field(cl::SetInstanceConfigField {
                instance_id: 7,
                field: "instance.name".to_owned(),
                value: "beta".to_owned(),
            }),
            assigned(&mut asked, 7, "beta")
        );
        done.map_err(fail("set field"))?;
        slave_side?;
        c5.close_gracefully(1000, "quit").await;
        let c6 = control(&base).await?;
        let config = c6
            .get_instance_config(cl::GetInstanceConfig { instance_id: 7 })
            .await
            .map_err(fail("get config"))?;
        check(
            serde_json::to_value(&config.serialized_config).unwrap_or_default()["groups"][0]["fields"]
                ["name"]
                == "beta",
            "the renamed config",
        )?;
        c6.close_gracefully(1000, "quit").await;
        let c7 = control(&base).await?;
        c7.set_instance_output_subscriptions(cl::SetInstanceOutputSubscriptions {
            instance_ids: vec![7],
        })
        .await
        .map_err(fail("subscribe"))?;
        match c7
            .start_instance(cl::StartInstance { instance_id: 7 })
            .await
        {
            Err(RequestError::Remote(e)) => check(
                e.message.starts_with("ENOENT: no such file or directory"),
                format!("start failed with {}", e.message),
            )?,
            other => return Err(format!("start answered {other:?}")),
        }
        check(
            matches!(next(&mut asked, "start_instance").await?, Asked::Start(7)),
            "the slave was asked to start 7",
        )?;
        c7.close_gracefully(1000, "quit").await;
        check(
            matches!(next(&mut asked, "get_metrics").await?, Asked::Metrics),
            "the master asked for metrics",
        )?;
        s.close(1000, "").await;
        Ok(())
    }
}

/// The transcripts replayed against our clients, each by a scenario below.
const SCENARIOS: &[&str] = &[
    "skynet/main-path",
    "skynet/message-without-open",
    "skynet/lua-client",
    "skynet/web-page",
    "litecord/restpy-token-valid",
    "litecord/restpy-token-invalid",
    "clusterio/control-handshake",
    "clusterio/token-slave-no-claims",
    "clusterio/slave-assign",
    "clusterio/real-slave-and-clusterctl",
    "socketcluster/pypi-socketclusterclient",
    "socketcluster/handshake",
    "socketcluster/handshake-v14",
    "socketcluster/invoke",
    "socketcluster/invoke-v14",
    "socketcluster/emit",
    "socketcluster/emit-v14",
    "socketcluster/pubsub",
    "socketcluster/pubsub-v14",
    "socketcluster/auth",
    "socketcluster/auth-v14",
    "socketcluster/server-disconnect",
    "socketcluster/server-disconnect-v14",
    "socketcluster/client-disconnect",
    "socketcluster/client-disconnect-v14",
];

async fn scenario(
    transcript: &Transcript,
    base: String,
    beats: watch::Receiver<Vec<String>>,
) -> Outcome {
    let name = transcript.name.as_str();
    // The real slave's metrics, as it answered the master.
    let metrics = transcript
        .steps
        .iter()
        .find_map(|(_, step)| match step {
            Step::Send { text, .. } if text.contains("get_metrics_response") => {
                serde_json::from_str::<Value>(text).ok()
            }
            _ => None,
        })
        .and_then(|frame| frame["data"]["results"].as_array().cloned())
        .unwrap_or_default();
    match name {
        "skynet/main-path" => skynet_scenarios::main_path(base).await,
        "skynet/message-without-open" => skynet_scenarios::message_without_open(base).await,
        "skynet/lua-client" => skynet_scenarios::lua_client(base).await,
        "skynet/web-page" => skynet_scenarios::web_page(base).await,
        "litecord/restpy-token-valid" => {
            litecord_scenarios::restpy(base, beats, "dXNlcg==.HfSYKg.KxUH7tplEuq65KX4qApdCmU6bk0")
                .await
        }
        "litecord/restpy-token-invalid" => {
            litecord_scenarios::restpy(base, beats, "bm9ib2R5.x.y").await
        }
        "clusterio/control-handshake" => clusterio_scenarios::control_handshake(base).await,
        "clusterio/token-slave-no-claims" => clusterio_scenarios::token_slave_no_claims(base).await,
        "clusterio/slave-assign" => clusterio_scenarios::slave_assign(base).await,
        "clusterio/real-slave-and-clusterctl" => {
            clusterio_scenarios::real_slave_and_clusterctl(base, metrics).await
        }
        "socketcluster/pypi-socketclusterclient" => socketcluster_scenarios::pypi(base).await,
        sc if sc.starts_with("socketcluster/") => {
            use socketcluster_scenarios as s;
            let v14 = sc.ends_with("-v14");
            match sc
                .trim_start_matches("socketcluster/")
                .trim_end_matches("-v14")
            {
                "handshake" => s::handshake(base, v14).await,
                "invoke" => s::invoke(base, v14).await,
                "emit" => s::emit(base, v14).await,
                "pubsub" => s::pubsub(base, v14).await,
                "auth" => s::auth(base, v14).await,
                "server-disconnect" => s::server_disconnect(base, v14).await,
                "client-disconnect" => s::client_disconnect(base, v14).await,
                other => Err(format!("no scenario for {other}")),
            }
        }
        other => Err(format!("no scenario for {other}")),
    }
}

#[tokio::test]
async fn our_clients_talk_to_the_recorded_real_servers() {
    let all = transcripts();
    let mut problems = Vec::new();
    let mut replayed = 0;
    for transcript in &all {
        if NOT_REPLAYED
            .iter()
            .any(|(name, _)| *name == transcript.name)
        {
            continue;
        }
        if !SCENARIOS.contains(&transcript.name.as_str()) {
            problems.push(format!(
                "{}: neither replayed nor listed in NOT_REPLAYED",
                transcript.name
            ));
            continue;
        }
        let replay = replay_server(transcript).await;
        let outcome = tokio::time::timeout(
            WAIT * 3,
            scenario(transcript, replay.base.clone(), replay.beats.clone()),
        )
        .await
        .unwrap_or_else(|_| Err("the scenario did not finish".to_owned()));
        if let Err(e) = outcome {
            problems.push(format!("{}: our client: {e}", transcript.name));
        }
        match tokio::time::timeout(WAIT * 3, replay.walk).await {
            Ok(Ok(walk)) => problems.extend(walk),
            _ => problems.push(format!("{}: the replay did not finish", transcript.name)),
        }
        replayed += 1;
    }
    for (name, _) in NOT_REPLAYED {
        if !all.iter().any(|t| t.name == *name) {
            problems.push(format!(
                "{name}: listed in NOT_REPLAYED, but no such transcript"
            ));
        }
    }
    for (name, frame, _, _) in CLIENT_DEPARTURES {
        let recorded = all.iter().any(|t| {
            t.name == *name
                && t.steps
                    .iter()
                    .any(|(_, s)| matches!(s, Step::Send { text, .. } if text == frame))
        });
        if !recorded {
            problems.push(format!(
                "{name}: CLIENT_DEPARTURES names a frame it does not hold: {frame}"
            ));
        }
    }
    assert!(replayed >= 25, "only {replayed} transcripts replayed");
    assert!(
        problems.is_empty(),
        "{} problems in {replayed} transcripts:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
