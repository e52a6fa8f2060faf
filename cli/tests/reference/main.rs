//! The reference servers and clients as a user runs them: the real binary, real sockets.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message as Ws;

mod cluster;
mod clusterio;
mod conversations;
mod real_servers;
mod skynet;
mod socketcluster;
mod tools;
mod ts_client;

const WAIT: Duration = Duration::from_secs(10);

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Running {
    child: Child,
    url: String,
    lines: Lines,
}

/// Lines a child process prints.
type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// Starts the binary with `args`, its stdout read line by line.
fn start(args: &[&str]) -> (Child, Lines) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_protolink"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// The next JSON frame within `WAIT`, skipping control frames and the text frames for which
/// `skip` holds (raw text pings); panics on a close.
async fn recv_json<T>(
    ws: &mut tokio_tungstenite::WebSocketStream<T>,
    skip: impl Fn(&str) -> bool,
) -> serde_json::Value
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .unwrap()
            .unwrap()
        {
            Ws::Text(t) if skip(t.as_str()) => continue,
            Ws::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Ws::Close(frame) => panic!("closed: {frame:?}"),
            _ => continue,
        }
    }
}

async fn spawn(args: &[&str]) -> Running {
    let (child, mut lines) = start(args);
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = first
        .strip_prefix("listening on ")
        .expect("first line names the address")
        .to_owned();
    Running { child, url, lines }
}

/// Sends SIGTERM and expects a clean exit.
async fn terminate(mut running: Running) {
    let pid = running.child.id().unwrap().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(WAIT, running.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> serde_json::Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Ws::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Ws::Close(frame) => panic!("closed: {frame:?}"),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn litecord_reference_server_talks_to_a_plain_client() {
    let mut server = spawn(&[
        "serve",
        "litecord",
        "--listen",
        "127.0.0.1:0",
        "--password",
        "pw",
        "--hb-interval",
        "200",
        "--validate-token",
        "abc",
    ])
    .await;
    assert!(
        server.url.starts_with("ws://127.0.0.1:") && server.url.ends_with('/'),
        "{}",
        server.url
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&server.url).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await,
        serde_json::json!({"op": 0, "hb_interval": 200})
    );
    ws.send(Ws::text(r#"{"op": 1, "password": "pw"}"#))
        .await
        .unwrap();
    // The server asks about the token once we are in.
    let ask = next_json(&mut ws).await;
    assert_eq!(ask["op"], 4);
    assert_eq!(ask["w"], "TOKEN_VALIDATE");
    assert_eq!(ask["a"], serde_json::json!(["abc"]));
    ws.send(Ws::text(format!(
        r#"{{"op": 5, "n": {}, "r": [true]}}"#,
        ask["n"]
    )))
    .await
    .unwrap();
    ws.send(Ws::text(r#"{"op": 2, "s": 0}"#)).await.unwrap();
    assert_eq!(next_json(&mut ws).await, serde_json::json!({"op": 3}));
    ws.send(Ws::text(
        r#"{"op": 4, "w": "GET_GUILD", "a": ["42"], "n": "n1"}"#,
    ))
    .await
    .unwrap();
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["n"], "n1");
    assert_eq!(reply["r"]["name"], "Guild 42");
    // What it received, as JSON lines.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(
            tokio::time::timeout(WAIT, server.lines.next_line())
                .await
                .unwrap()
                .unwrap()
                .unwrap(),
        );
    }
    assert!(
        seen.iter().any(|l| l.contains("\"token_validate\":[true]")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|l| l.contains("GET_GUILD")), "{seen:?}");
    terminate(server).await;
}

#[tokio::test]
async fn litecord_reference_client_and_server_together() {
    let server = spawn(&[
        "serve",
        "litecord",
        "--listen",
        "127.0.0.1:0",
        "--password",
        "pw",
        "--hb-interval",
        "100",
        "--validate-token",
        "good",
    ])
    .await;
    let mut client = Command::new(env!("CARGO_BIN_EXE_protolink"))
        .args([
            "litecord",
            "connect",
            &server.url,
            "--password",
            "pw",
            "--valid-token",
            "good",
            "--get-guild",
            "7",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while !(seen.iter().any(|l: &String| l.contains("TOKEN_VALIDATE"))
        && seen.iter().any(|l: &String| l.contains("Guild 7")))
    {
        seen.push(
            tokio::time::timeout(WAIT, lines.next_line())
                .await
                .unwrap()
                .unwrap()
                .unwrap(),
        );
    }
    let pid = client.id().unwrap().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(WAIT, client.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    );
    terminate(server).await;
}
