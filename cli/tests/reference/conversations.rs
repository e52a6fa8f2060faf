//! Conversation tests: what real peers sent, recorded on loopback (`interop/transcripts/`, format
//! in its README), replayed offline against our reference servers.
//!
//! Every transcript's client side is played against `protolink serve PROTOCOL`, and every frame
//! our server sends is checked against the recorded one, field for field: for `real: "server"`
//! transcripts those are the real server's frames, for `real: "client"` ones the real client's
//! frames are what is played (and the server frames recorded with them are checked too).
//! Frames the server sends in a row (with nothing sent between) may come in any order: requests
//! are handled concurrently, and the real servers' versions differ in it (socketcluster-server
//! 20.x replies to `login` before its `#setAuthToken`, 14.x after).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::{RawWs, WAIT, spawn, terminate};

/// Parts of transcripts where our server departs from the real one on purpose, with why: a
/// connection (by name), a frame sent (by its text, with the answer to it), or a frame the real
/// server sent (by its text, with the client's answer to it) that is not replayed. Each is also listed in its definition's header.
const DEPARTURES: &[(&str, &str, &str)] = &[
    (
        "skynet/connect-trailing-slash",
        "z",
        "an upgrade on an unknown path gets HTTP 404; the real server accepts it and closes it",
    ),
    (
        "skynet/no-type",
        r#"{"type":null}"#,
        "a tag that is not a string is `No such command undefined`; the real server prints it",
    ),
    (
        "skynet/no-type",
        r#"{"type":["open"],"channel":1}"#,
        "a tag that is not a string names no command; JavaScript reads `[\"open\"]` as `open`",
    ),
    (
        "clusterio/real-slave-and-clusterctl",
        r#"{"seq":6,"type":"statistics_exporter:get_metrics_request","data":{}}"#,
        "our master serves no HTTP `/metrics`, so it never asks its slaves for their metrics \
         (our slave's answer is checked in the reference tests)",
    ),
];

/// Protocols whose close codes are not compared, with why (their definitions say it too).
const CLOSE_CODES_DEPART: &[(&str, &str)] = &[(
    "clusterio",
    "the close message carries the reason; the real master then sends a close frame without a \
     code (1005), or drops the TCP connection when the peer sent its close message, where ours \
     closes with 1008 (policy) or 1000 (normal)",
)];

/// Options of the reference server for particular transcripts, beyond the protocol's.
const EXTRA_ARGS: &[(&str, &[&str])] = &[
    // The token the server asks rest-py to validate (a known user's, and an unknown one's).
    (
        "litecord/restpy-token-valid",
        &[
            "--validate-token",
            "dXNlcg==.HfSYKg.KxUH7tplEuq65KX4qApdCmU6bk0",
        ],
    ),
    (
        "litecord/restpy-token-invalid",
        &["--validate-token", "bm9ib2R5.x.y"],
    ),
    (
        // The recording server invoked `askClient` on every client after its handshake.
        "socketcluster/pypi-socketclusterclient",
        &["--ask-client", r#"{"q":1}"#],
    ),
];

/// A round trip that shows the server has handled everything sent before it on a connection
/// (emits and Skynet's commands are handled in order): played after a frame that gets no answer
/// when the transcript goes on on another connection, where the recorder waited for quiet.
fn barrier(protocol: &str) -> Option<(&'static str, &'static str)> {
    match protocol {
        "socketcluster" => Some((
            r#"{"event":"shout","data":"barrier"}"#,
            r#"{"event":"shouted","data":"barrier"}"#,
        )),
        "skynet" => Some((
            r#"{"type":"log","start":1000000}"#,
            r#"{"type":"result","for":"log","log":[]}"#,
        )),
        _ => None,
    }
}

/// Transcripts recorded against a real SocketCluster 14.x server: ours speaks as 20.x does
/// (they differ in `#disconnect`, string `cid`s and the order of some frames), so these are
/// replayed against our client's side in the SocketCluster tests, not against our server.
fn replayed_against_our_server(name: &str) -> bool {
    !name.ends_with("-v14")
}

/// The options `serve PROTOCOL` runs with, as the recorded servers were configured.
fn server_args(protocol: &str) -> Vec<&'static str> {
    match protocol {
        "skynet" => vec![],
        // socketcluster-server's defaults, and the secret the recording app signed with.
        "socketcluster" => vec![
            "--protocol-version",
            "2",
            "--auth-secret",
            "interop-secret",
            "--ping-interval",
            "8000",
            "--ping-timeout",
            "20000",
        ],
        "litecord" => vec!["--password", "P", "--hb-interval", "500"],
        // The secret the recording master signed the scenarios' tokens with.
        "clusterio" => vec!["--secret", "interop-secret-0123456789"],
        other => panic!("no reference server for {other}"),
    }
}

/// One step of a transcript, from the client side's point of view.
#[derive(Debug, Clone)]
pub(super) enum Step {
    Connect { path: String, status: Option<u16> },
    Send { text: String, binary: bool },
    Recv { text: String },
    Close { code: u16 },
    Closed { code: Option<u16>, reason: String },
}

pub(super) struct Transcript {
    pub(super) name: String,
    pub(super) protocol: String,
    /// Which side the real implementation played: `server` or `client`.
    pub(super) real: String,
    pub(super) steps: Vec<(String, Step)>,
}

pub(super) fn transcripts() -> Vec<Transcript> {
    let root = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../interop/transcripts"
    ));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flat_map(|dir| std::fs::read_dir(dir.unwrap().path()).into_iter().flatten())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.iter().map(|path| read(&root, path)).collect()
}

fn read(root: &Path, path: &Path) -> Transcript {
    let name = path
        .strip_prefix(root)
        .unwrap()
        .with_extension("")
        .to_string_lossy()
        .into_owned();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let text = |step: &Value, key: &str| step[key].as_str().map(str::to_owned);
    let steps = file["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no steps"))
        .iter()
        .map(|step| {
            let conn = step["conn"].as_str().unwrap().to_owned();
            let code = |key: &str| step[key].as_u64().and_then(|c| u16::try_from(c).ok());
            let parsed = if let Some(path) = text(step, "connect") {
                Step::Connect {
                    path,
                    status: code("status"),
                }
            } else if let Some(text) = text(step, "send").or_else(|| text(step, "server_recv")) {
                Step::Send {
                    text,
                    binary: false,
                }
            } else if let Some(text) = text(step, "send_binary") {
                Step::Send { text, binary: true }
            } else if let Some(text) = text(step, "recv").or_else(|| text(step, "server_send")) {
                Step::Recv { text }
            } else if step.get("close").is_some() {
                Step::Close {
                    code: code("close").unwrap_or(1000),
                }
            } else if step.get("closed").is_some() {
                Step::Closed {
                    code: code("closed"),
                    reason: text(step, "reason").unwrap_or_default(),
                }
            } else {
                panic!("{name}: unknown step {step}")
            };
            (conn, parsed)
        })
        .collect();
    Transcript {
        name,
        protocol: file["protocol"].as_str().unwrap().to_owned(),
        real: file["real"].as_str().unwrap().to_owned(),
        steps,
    }
}

/// Whether `actual` is what `expected` recorded: JSON compared as values, with `$masked:TYPE`
/// standing for any value of that JSON type and `$prefix:TEXT` for any string starting so.
fn same(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(e), _) if e.starts_with("$masked:") => match &e["$masked:".len()..] {
            "string" => actual.is_string(),
            "number" => actual.is_number(),
            "boolean" => actual.is_boolean(),
            "object" => actual.is_object(),
            "array" => actual.is_array(),
            _ => false,
        },
        (Value::String(e), Value::String(a)) if e.starts_with("$prefix:") => {
            a.starts_with(&e["$prefix:".len()..])
        }
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter()
                    .all(|(k, v)| a.get(k).is_some_and(|av| same(v, av)))
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| same(e, a))
        }
        _ => expected == actual,
    }
}

pub(super) fn same_frame(expected: &str, actual: &str) -> bool {
    match (
        serde_json::from_str::<Value>(expected),
        serde_json::from_str::<Value>(actual),
    ) {
        (Ok(e), Ok(a)) => same(&e, &a),
        _ => expected == actual,
    }
}

/// What the server side did next on a connection.
#[derive(Debug)]
enum Seen {
    Frame(String),
    Closed(Option<u16>),
}

async fn next_seen(ws: &mut RawWs) -> Seen {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Err(_) => return Seen::Frame("<nothing within the wait>".to_owned()),
            Ok(Some(Ok(Ws::Text(t)))) => return Seen::Frame(t.as_str().to_owned()),
            Ok(Some(Ok(Ws::Binary(b)))) => {
                return Seen::Frame(String::from_utf8_lossy(&b).into_owned());
            }
            Ok(Some(Ok(Ws::Close(frame)))) => {
                return Seen::Closed(Some(frame.map_or(1005, |f| u16::from(f.code))));
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return Seen::Closed(None),
        }
    }
}

/// The steps of a transcript that are replayed: all but its departures.
fn replayed_steps(transcript: &Transcript) -> Vec<&(String, Step)> {
    let departures: Vec<&str> = DEPARTURES
        .iter()
        .filter(|(name, _, _)| *name == transcript.name)
        .map(|(_, what, _)| *what)
        .collect();
    let mut skipping_answer_on: Option<&str> = None;
    // A frame the server sent that ours does not send, and the client's answer to it.
    let mut skipping_reply_on: Option<&str> = None;
    transcript
        .steps
        .iter()
        .filter(|(conn, step)| {
            if departures.contains(&conn.as_str()) {
                return false;
            }
            match step {
                Step::Recv { text } if departures.contains(&text.as_str()) => {
                    skipping_reply_on = Some(conn);
                    return false;
                }
                Step::Send { .. } if skipping_reply_on == Some(conn.as_str()) => {
                    skipping_reply_on = None;
                    return false;
                }
                _ => {}
            }
            match step {
                Step::Recv { .. } if skipping_answer_on == Some(conn.as_str()) => return false,
                Step::Send { text, .. } if departures.contains(&text.as_str()) => {
                    skipping_answer_on = Some(conn);
                    return false;
                }
                _ if skipping_answer_on == Some(conn.as_str()) => skipping_answer_on = None,
                _ => {}
            }
            true
        })
        .collect()
}

/// Plays one transcript against a fresh server; every difference, as text.
async fn replay(transcript: &Transcript) -> Vec<String> {
    let mut args = vec![
        "serve",
        transcript.protocol.as_str(),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend(server_args(&transcript.protocol));
    for (_, extra) in EXTRA_ARGS
        .iter()
        .filter(|(name, _)| *name == transcript.name)
    {
        args.extend_from_slice(extra);
    }
    let server = spawn(&args).await;
    // `ws://IP:PORT/PATH`: the transcripts name their own paths.
    let base = server
        .url
        .splitn(4, '/')
        .take(3)
        .collect::<Vec<_>>()
        .join("/");
    let steps = replayed_steps(transcript);
    let codes_depart = CLOSE_CODES_DEPART
        .iter()
        .any(|(protocol, _)| *protocol == transcript.protocol);
    let mut conns: HashMap<String, RawWs> = HashMap::new();
    let mut pending: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (at, (conn, step)) in steps.iter().enumerate() {
        let here = format!("{} step {at} ({conn})", transcript.name);
        if let Step::Recv { text } = step {
            pending.entry(conn.clone()).or_default().push(text.clone());
            // A run of frames the server sends in a row is matched as a whole.
            let run_goes_on =
                matches!(steps.get(at + 1), Some((c, Step::Recv { .. })) if c == conn);
            if run_goes_on {
                continue;
            }
            let mut expected = pending.remove(conn).unwrap_or_default();
            let Some(ws) = conns.get_mut(conn) else {
                problems.push(format!("{here}: no connection"));
                continue;
            };
            while !expected.is_empty() {
                match next_seen(ws).await {
                    Seen::Frame(actual) => {
                        match expected.iter().position(|e| same_frame(e, &actual)) {
                            Some(i) => {
                                expected.remove(i);
                            }
                            None => {
                                problems.push(format!(
                                    "{here}: expected {}, got {actual}",
                                    expected.join(" or ")
                                ));
                                break;
                            }
                        }
                    }
                    Seen::Closed(code) => {
                        problems.push(format!(
                            "{here}: expected {}, closed with {code:?}",
                            expected.join(" and ")
                        ));
                        break;
                    }
                }
            }
            continue;
        }
        match step {
            Step::Connect { path, status } => {
                let url = format!("{base}{path}");
                match (tokio_tungstenite::connect_async(&url).await, status) {
                    (Ok((ws, _)), None) => {
                        conns.insert(conn.clone(), ws);
                    }
                    (
                        Err(tokio_tungstenite::tungstenite::Error::Http(response)),
                        Some(expected),
                    ) if response.status().as_u16() == *expected => {}
                    (other, _) => problems.push(format!(
                        "{here}: connect {path}: expected {status:?}, got {:?}",
                        other.map(|_| "an open WebSocket")
                    )),
                }
            }
            Step::Send { text, binary } => {
                if let Some(ws) = conns.get_mut(conn) {
                    let frame = if *binary {
                        Ws::binary(text.as_bytes().to_vec())
                    } else {
                        Ws::text(text.clone())
                    };
                    if let Err(e) = ws.send(frame).await {
                        problems.push(format!("{here}: cannot send {text}: {e}"));
                    }
                    // Unanswered (the connection's next step is not a frame from the server)
                    // and followed by a step on another connection.
                    let unanswered = !matches!(
                        steps[at + 1..].iter().find(|(c, _)| c == conn),
                        Some((_, Step::Recv { .. }))
                    );
                    let elsewhere_next = steps.get(at + 1).is_some_and(|(c, _)| c != conn);
                    if let (true, true, Some((ask, answer))) =
                        (unanswered, elsewhere_next, barrier(&transcript.protocol))
                    {
                        let _ = ws.send(Ws::text(ask)).await;
                        match next_seen(ws).await {
                            Seen::Frame(got) if same_frame(answer, &got) => {}
                            other => problems.push(format!(
                                "{here}: expected {answer} after {text}, got {other:?}"
                            )),
                        }
                    }
                }
            }
            Step::Close { code } => {
                if let Some(mut ws) = conns.remove(conn) {
                    let _ = ws
                        .close(Some(CloseFrame {
                            code: (*code).into(),
                            reason: "".into(),
                        }))
                        .await;
                    // Our server answers the close: nothing else may come first.
                    match next_seen(&mut ws).await {
                        Seen::Closed(_) => {}
                        Seen::Frame(extra) => {
                            problems
                                .push(format!("{here}: an extra frame before the close: {extra}"));
                        }
                    }
                }
            }
            Step::Closed { code, .. } => {
                if let Some(mut ws) = conns.remove(conn) {
                    match next_seen(&mut ws).await {
                        Seen::Closed(actual) if actual == *code => {}
                        Seen::Closed(_) if codes_depart => {}
                        other => problems.push(format!(
                            "{here}: expected a close with {code:?}, got {other:?}"
                        )),
                    }
                }
            }
            Step::Recv { .. } => unreachable!("handled above"),
        }
    }
    terminate(server).await;
    problems
}

#[tokio::test]
async fn our_servers_answer_as_the_real_ones_did() {
    let all = transcripts();
    assert!(all.len() >= 20, "only {} transcripts", all.len());
    let mut problems = Vec::new();
    let mut replayed = 0;
    for transcript in all.iter().filter(|t| replayed_against_our_server(&t.name)) {
        problems.extend(replay(transcript).await);
        replayed += 1;
    }
    assert!(
        problems.is_empty(),
        "{} of {replayed} transcripts differ:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A recorded frame with its masks replaced by values of their type.
fn unmasked(text: &str) -> String {
    fn unmask(value: &mut Value) {
        match value {
            Value::String(s) if s == "$masked:number" => *value = Value::from(0),
            Value::String(s) if s.starts_with("$masked:") => *value = Value::from("x"),
            Value::String(s) if s.starts_with("$prefix:") => {
                *value = Value::from(&s["$prefix:".len()..]);
            }
            Value::Array(items) => items.iter_mut().for_each(unmask),
            Value::Object(map) => map.values_mut().for_each(unmask),
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(text) {
        Ok(mut value) => {
            unmask(&mut value);
            value.to_string()
        }
        Err(_) => text.to_owned(),
    }
}

/// Whether our side reads `text` as a message of its inbound enum `I`, or as a reply.
fn decodes<I: protolink::Inbound>(
    wire: &protolink::__private::WireProfile,
    text: &str,
) -> Result<(), String> {
    let packets: Vec<String> = match serde_json::from_str::<Vec<Value>>(text) {
        Ok(batch) if wire.batch => batch.iter().map(Value::to_string).collect(),
        _ => vec![text.to_owned()],
    };
    for packet in packets {
        match wire.classify(&packet) {
            Ok(protolink::__private::RawFrame::Message(raw)) => match I::decode(&raw) {
                // A message this side does not know and need not answer is ignored by design
                // (rest-py's `NEW_GUILD`).
                Err(protolink::DecodeError::UnknownMessage { .. }) if raw.id.is_none() => {}
                Err(e) => return Err(format!("{packet}: {e}")),
                Ok(_) => {}
            },
            Ok(protolink::__private::RawFrame::Reply(_)) => {}
            Err(e) => return Err(format!("{packet}: {e}")),
        }
    }
    Ok(())
}

/// Every frame a real peer sent decodes on our side: a real server's with our client's
/// decoders, a real client's with our server's. (Heartbeat texts are the session's, not
/// messages.)
#[test]
fn every_frame_a_real_peer_sent_decodes_on_our_side() {
    use protolink::Protocol;
    use protolink_protocols::{chat, clusterio as cl, litecord_example as lc, skynet};
    let mut problems = Vec::new();
    for transcript in transcripts() {
        for (at, (_, step)) in replayed_steps(&transcript).into_iter().enumerate() {
            let text = match (transcript.real.as_str(), step) {
                ("server", Step::Recv { text }) | ("client", Step::Send { text, .. }) => {
                    unmasked(text)
                }
                _ => continue,
            };
            if matches!(text.as_str(), "" | "#1" | "#2") {
                continue;
            }
            let client = transcript.real == "client";
            let result = match (transcript.protocol.as_str(), client) {
                ("skynet", false) => decodes::<skynet::ServerToClient>(skynet::Skynet::WIRE, &text),
                ("skynet", true) => decodes::<skynet::ClientToServer>(skynet::Skynet::WIRE, &text),
                ("socketcluster", false) => {
                    decodes::<chat::ServerToClient>(chat::Chat::WIRE, &text)
                }
                ("socketcluster", true) => decodes::<chat::ClientToServer>(chat::Chat::WIRE, &text),
                ("litecord", false) => {
                    decodes::<lc::ServerToClient>(lc::LitecordExample::WIRE, &text)
                }
                ("litecord", true) => {
                    decodes::<lc::ClientToServer>(lc::LitecordExample::WIRE, &text)
                }
                // A real master's frames go to controls and slaves: either client must read them.
                ("clusterio", false) => decodes::<cl::MasterToControl>(cl::Clusterio::WIRE, &text)
                    .or_else(|_| decodes::<cl::MasterToSlave>(cl::Clusterio::WIRE, &text)),
                ("clusterio", true) => decodes::<cl::ControlToMaster>(cl::Clusterio::WIRE, &text)
                    .or_else(|_| decodes::<cl::SlaveToMaster>(cl::Clusterio::WIRE, &text)),
                (other, _) => panic!("no decoders for {other}"),
            };
            if let Err(e) = result {
                problems.push(format!("{} step {at}: {e}", transcript.name));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn masks_and_prefixes_match_what_they_stand_for() {
    assert!(same_frame(
        r#"{"ID":"$masked:string","time":"$masked:number"}"#,
        r#"{"time":5,"ID":"x"}"#
    ));
    assert!(!same_frame(r#"{"ID":"$masked:string"}"#, r#"{"ID":5}"#));
    assert!(!same_frame(r#"{"a":1}"#, r#"{"a":1,"b":2}"#));
    assert!(same_frame(
        r#"{"error":"$prefix:SyntaxError: "}"#,
        r#"{"error":"SyntaxError: whatever"}"#
    ));
    assert!(!same_frame(
        r#"{"error":"$prefix:SyntaxError: "}"#,
        r#"{"error":"Error"}"#
    ));
    assert!(same_frame("#1", "#1"));
    assert!(!same_frame("", "#1"));
}
