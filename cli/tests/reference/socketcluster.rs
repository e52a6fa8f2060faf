//! SocketCluster end to end: the real socketcluster-client 20.x against `protolink serve
//! socketcluster`, `protolink socketcluster client` against the real socketcluster-server 20.x,
//! each with protocol version 1 and 2, and the server's answers to bad input.
//!
//! The Node packages are pinned by `interop/package-lock.json`; `scripts/test.sh` installs them
//! (`npm ci --prefix interop`) when `interop/node_modules` is missing.

use std::path::PathBuf;
use std::process::Stdio;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message as Ws;

use super::{RawWs, WAIT, spawn, terminate};

/// Short pings, so that staying connected for several intervals takes well under a second.
const PING_INTERVAL: &str = "200";
const PING_TIMEOUT: &str = "2000";
/// More than three ping intervals.
const STAY_MS: &str = "700";

fn interop_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../interop"));
    assert!(
        dir.join("node_modules/socketcluster-client").is_dir()
            && dir.join("node_modules/socketcluster-server").is_dir(),
        "the real SocketCluster packages are missing: run `npm ci --prefix interop` \
         (scripts/test.sh does)"
    );
    dir
}

/// Our server with the tests' settings, plus `extra` options.
async fn our_server(version: &str, extra: &[&str]) -> super::Running {
    let mut args = vec![
        "serve",
        "socketcluster",
        "--listen",
        "127.0.0.1:0",
        "--protocol-version",
        version,
        "--auth-secret",
        "test-secret",
        "--ping-interval",
        PING_INTERVAL,
        "--ping-timeout",
        PING_TIMEOUT,
    ];
    args.extend_from_slice(extra);
    spawn(&args).await
}

/// The real server, with its stdout (the first line names the address).
struct RealServer {
    child: Child,
    url: String,
}

async fn real_server(version: &str) -> RealServer {
    real_server_of(20, version).await
}

/// The real server of a major version: 20.x, or 14.x (installed beside it under an alias).
async fn real_server_of(major: u8, version: &str) -> RealServer {
    let major = major.to_string();
    let mut child = Command::new("node")
        .current_dir(interop_dir())
        .args([
            "sc-server.js",
            "--major",
            &major,
            "--protocol-version",
            version,
            "--ping-interval",
            PING_INTERVAL,
            "--ping-timeout",
            PING_TIMEOUT,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the real server starts in time")
        .unwrap()
        .unwrap();
    let url = first
        .strip_prefix("listening on ")
        .expect("first line names the address")
        .to_owned();
    // Keep reading so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    RealServer { child, url }
}

/// Runs a client to its end and returns its JSON lines.
async fn run_to_end(mut command: Command) -> (bool, Vec<Value>) {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(WAIT * 3, child.wait_with_output())
        .await
        .expect("the client finishes in time")
        .unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    if !output.status.success() {
        eprintln!(
            "client failed; stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    (output.status.success(), lines)
}

async fn real_client(url: &str, version: &str) -> Vec<Value> {
    let mut command = Command::new("node");
    command.current_dir(interop_dir()).args([
        "sc-client.js",
        url,
        "--protocol-version",
        version,
        "--stay",
        STAY_MS,
    ]);
    let (ok, lines) = run_to_end(command).await;
    assert!(ok, "the real client failed: {lines:#?}");
    lines
}

/// The line of a step (the first with that name).
fn step<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {lines:#?}"))
}

fn steps<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["step"] == name).collect()
}

fn received<'a>(lines: &'a [Value], key: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter_map(|l| l["received"].get(key))
        .collect()
}

async fn real_client_against_our_server(version: &str) {
    // Like the interop tests' real server, ours invokes `askClient` unprompted after connecting.
    let server = our_server(version, &["--ask-client", r#"{"q":1}"#]).await;
    assert!(server.url.ends_with("/socketcluster/"), "{}", server.url);
    let lines = real_client(&server.url, version).await;

    let handshake = step(&lines, "handshake");
    assert_eq!(handshake["isAuthenticated"], false);
    assert_eq!(handshake["pingTimeout"], 2000);
    assert_eq!(handshake["id"], "string");
    assert_eq!(step(&lines, "shout")["data"], json!({"x": 1}));
    assert_eq!(step(&lines, "sum")["data"], 5);
    assert_eq!(
        step(&lines, "fail")["error"],
        json!({"name": "MyError", "message": "nope", "code": 42})
    );
    assert_eq!(step(&lines, "nothing")["hasData"], false);
    // The server invokes `askClient` unprompted right after the handshake and transmits the
    // reply back; `callMe` makes it invoke `askClient` again and answer with the reply.
    assert_eq!(
        step(&lines, "askClientResult")["data"],
        json!({"a": "ok", "q": 1})
    );
    assert_eq!(
        received(&lines, "askClient"),
        [&json!({"q": 1}), &json!({"q": 2})]
    );
    assert_eq!(step(&lines, "callMe")["data"], json!({"a": "ok", "q": 2}));
    assert_eq!(step(&lines, "subscribe")["channel"], "news");
    assert_eq!(step(&lines, "publish")["data"], json!({"t": "hi"}));
    assert_eq!(step(&lines, "invokePublish")["acked"], true);
    assert_eq!(step(&lines, "publishReceived")["data"], "hi2");
    // After unsubscribing from `news`, the next publish seen is on `other`.
    assert_eq!(
        step(&lines, "unsubscribe")["next"],
        json!({"channel": "other", "data": "after"})
    );
    assert!(
        !received(&lines, "publish")
            .iter()
            .any(|p| p["data"] == "gone"),
        "{lines:#?}"
    );
    let authenticated = step(&lines, "authenticated");
    assert_eq!(authenticated["state"], "authenticated");
    assert_eq!(authenticated["authToken"]["user"], "alice");
    assert!(authenticated["authToken"]["exp"].is_u64());
    assert_eq!(step(&lines, "deauthenticated")["state"], "unauthenticated");
    let again = step(&lines, "authenticate");
    assert_eq!(again["isAuthenticated"], true);
    assert_eq!(again["state"], "authenticated");
    assert_eq!(step(&lines, "deauthenticate")["state"], "unauthenticated");
    let bad = &step(&lines, "badToken")["error"];
    assert_eq!(bad["name"], "AuthTokenInvalidError");
    assert_eq!(bad["isBadToken"], true);
    let stay = step(&lines, "stay");
    assert_eq!(stay["state"], "open", "{lines:#?}");
    assert_eq!(stay["closed"], Value::Null);
    step(&lines, "done");
    terminate(server).await;
}

#[tokio::test]
async fn real_client_against_our_server_protocol_v2() {
    real_client_against_our_server("2").await;
}

#[tokio::test]
async fn real_client_against_our_server_protocol_v1() {
    real_client_against_our_server("1").await;
}

async fn our_client(url: &str, version: &str, steps: &[&str]) -> (bool, Vec<Value>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_protolink"));
    command
        .args([
            "socketcluster",
            "client",
            url,
            "--protocol-version",
            version,
        ])
        .args(steps);
    run_to_end(command).await
}

/// What both real servers answer to `shout`, `sum {a: 2, b: 3}` and `fail`, as our client
/// reports it; the client's invoke steps.
fn shouts_sums_and_fails(lines: &[Value]) -> Vec<&Value> {
    assert_eq!(received(lines, "shouted"), [&json!({"x": 1})]);
    let invokes = steps(lines, "invoke");
    assert_eq!(
        invokes[0],
        &json!({"step": "invoke", "event": "sum", "data": 5})
    );
    assert_eq!(
        invokes[1]["error"],
        json!({"name": "MyError", "message": "nope", "code": 42})
    );
    invokes
}

async fn our_client_against_real_server(version: &str) {
    let server = real_server(version).await;
    let stay = format!("stay:{STAY_MS}");
    let (ok, lines) = our_client(
        &server.url,
        version,
        &[
            // The real server invokes `askClient` right after the connection, then transmits our
            // reply back as `askClientResult`.
            "wait:askClient",
            "wait:askClientResult",
            r#"emit:shout:{"x":1}"#,
            "wait:shouted",
            r#"invoke:sum:{"a":2,"b":3}"#,
            "invoke:fail:{}",
            "invoke:nothing:{}",
            r#"invoke:callMe:{"q":2}"#,
            "subscribe:news",
            r#"publish:news:{"t":"hi"}"#,
            "wait:publish",
            r#"invoke-publish:news:"hi2""#,
            "wait:publish",
            "unsubscribe:news",
            r#"invoke:login:{"user":"bob"}"#,
            "wait:setAuthToken",
            "invoke:logout:{}",
            "wait:removeAuthToken",
            "authenticate:saved",
            "authenticate:not.a.token",
            "deauthenticate",
            &stay,
        ],
    )
    .await;
    assert!(ok, "{lines:#?}");

    let handshake = step(&lines, "handshake");
    assert_eq!(handshake["isAuthenticated"], false);
    assert_eq!(handshake["pingTimeout"], 2000);
    assert!(handshake["id"].is_string());
    assert_eq!(
        received(&lines, "askClient"),
        [&json!({"q": 1}), &json!({"q": 2})]
    );
    assert_eq!(
        received(&lines, "askClientResult"),
        [&json!({"a": "ok", "q": 1})]
    );
    let invokes = shouts_sums_and_fails(&lines);
    assert_eq!(
        invokes[2],
        &json!({"step": "invoke", "event": "nothing", "data": null})
    );
    assert_eq!(invokes[3]["data"], json!({"a": "ok", "q": 2}));
    assert_eq!(
        received(&lines, "publish"),
        [
            &json!({"channel": "news", "data": {"t": "hi"}}),
            &json!({"channel": "news", "data": "hi2"})
        ]
    );
    assert_eq!(step(&lines, "invokePublish")["acked"], true);
    let token = received(&lines, "setAuthToken");
    assert_eq!(token.len(), 1, "{lines:#?}");
    assert_eq!(token[0]["user"], "bob");
    assert!(!received(&lines, "removeAuthToken").is_empty());
    let auths = steps(&lines, "authenticate");
    assert_eq!(auths[0]["isAuthenticated"], true, "{lines:#?}");
    assert_eq!(auths[1]["error"]["name"], "AuthTokenInvalidError");
    assert_eq!(auths[1]["error"]["isBadToken"], true);
    assert_eq!(step(&lines, "stay")["open"], true);
    assert_eq!(step(&lines, "done")["ok"], true);
    drop(server.child);
}

#[tokio::test]
async fn our_client_against_real_server_protocol_v2() {
    our_client_against_real_server("2").await;
}

/// socketcluster-server 14.x speaks the older dialect: `#removeAuthToken` with `"data": null`,
/// `#setAuthToken` ahead of the login reply, `#disconnect` with its code before a close. Our
/// client takes all of it, and reports the server's close code.
#[tokio::test]
async fn our_client_against_a_real_14_server() {
    let server = real_server_of(14, "1").await;
    let (ok, lines) = our_client(
        &server.url,
        "1",
        &[
            "wait:askClient",
            "wait:askClientResult",
            r#"emit:shout:{"x":1}"#,
            "wait:shouted",
            r#"invoke:sum:{"a":2,"b":3}"#,
            "invoke:fail:{}",
            "subscribe:news",
            r#"publish:news:{"t":"hi"}"#,
            "wait:publish",
            r#"invoke:login:{"user":"bob"}"#,
            "wait:setAuthToken",
            "invoke:logout:{}",
            "wait:removeAuthToken",
            "invoke:kick:{}",
        ],
    )
    .await;
    // The scenario ends with the server's close, so it does not complete.
    assert!(!ok, "{lines:#?}");
    shouts_sums_and_fails(&lines);
    assert_eq!(
        received(&lines, "publish"),
        [&json!({"channel": "news", "data": {"t": "hi"}})]
    );
    assert_eq!(received(&lines, "setAuthToken")[0]["user"], "bob");
    assert_eq!(received(&lines, "removeAuthToken").len(), 1, "{lines:#?}");
    let closed = lines
        .iter()
        .find_map(|line| line.get("closed"))
        .unwrap_or_else(|| panic!("no close reported: {lines:#?}"));
    assert_eq!(closed["code"], 4321, "{lines:#?}");
    drop(server.child);
}

#[tokio::test]
async fn our_client_against_real_server_protocol_v1() {
    our_client_against_real_server("1").await;
}

#[tokio::test]
async fn our_client_and_server_together() {
    let server = our_server("1", &[]).await;
    let (ok, lines) = our_client(
        &server.url,
        "1",
        &[
            r#"invoke:sum:{"a":20,"b":22}"#,
            r#"invoke:join:{"room":"lobby"}"#,
            r#"invoke:sendMessage:{"room":"lobby","text":"hello"}"#,
            "wait:message",
            r#"invoke:login:{"user":"carol"}"#,
            "wait:setAuthToken",
            "authenticate:saved",
            "stay:700",
        ],
    )
    .await;
    assert!(ok, "{lines:#?}");
    let invokes = steps(&lines, "invoke");
    assert_eq!(invokes[0]["data"], 42);
    assert_eq!(invokes[1]["data"]["members"].as_array().unwrap().len(), 1);
    assert_eq!(invokes[2]["data"], json!({"id": 1}));
    let message = received(&lines, "message");
    assert_eq!(message[0]["text"], "hello");
    assert_eq!(message[0]["room"], "lobby");
    assert_eq!(step(&lines, "authenticate")["isAuthenticated"], true);
    assert_eq!(step(&lines, "stay")["open"], true);
    terminate(server).await;
}

/// A handshake with a bad auth token: the server deauthenticates the socket (`#removeAuthToken`,
/// ahead of the reply), reports the error under `authError`, and the link works on.
async fn bad_handshake_token(url: &str) -> Vec<Value> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_protolink"));
    command.args([
        "socketcluster",
        "client",
        url,
        "--auth-token",
        "not.a.token",
        "wait:removeAuthToken",
        r#"invoke:sum:{"a":1,"b":2}"#,
    ]);
    let (ok, lines) = run_to_end(command).await;
    assert!(ok, "{lines:#?}");
    let handshake = step(&lines, "handshake");
    assert_eq!(handshake["isAuthenticated"], false, "{lines:#?}");
    assert_eq!(
        handshake["authError"],
        json!({"name": "AuthTokenInvalidError", "message": "invalid token", "isBadToken": true})
    );
    assert_eq!(step(&lines, "invoke")["data"], 3);
    lines
}

#[tokio::test]
async fn a_bad_handshake_token_is_removed_as_the_real_server_does() {
    let real = real_server("2").await;
    bad_handshake_token(&real.url).await;
    drop(real.child);
    let ours = our_server("2", &[]).await;
    bad_handshake_token(&ours.url).await;
    terminate(ours).await;
}

#[tokio::test]
async fn mismatched_protocol_versions_time_out() {
    // The server pings `#1`; a version 2 client waits for empty frames and answers none.
    let server = our_server("1", &["--ask-client", r#"{"q":1}"#]).await;
    let mut command = Command::new("node");
    command.current_dir(interop_dir()).args([
        "sc-client.js",
        &server.url,
        "--protocol-version",
        "2",
        "--stay",
        "3500",
    ]);
    let (_, lines) = run_to_end(command).await;
    let closed = &step(&lines, "stay")["closed"];
    assert!(
        *closed == 4000 || *closed == 4001,
        "expected a ping timeout: {lines:#?}"
    );
    terminate(server).await;
}

// Bad input, on a plain WebSocket.

async fn raw(url: &str) -> RawWs {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(ws: &mut RawWs, text: &str) {
    ws.send(Ws::text(text.to_owned())).await.unwrap();
}

/// The next JSON frame, skipping pings (empty or `#1` text frames).
async fn recv<T>(ws: &mut tokio_tungstenite::WebSocketStream<T>) -> Value
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    super::recv_json(ws, |t| t.is_empty() || t == "#1").await
}

/// Reads until the close frame; its code.
async fn close_code<T>(ws: &mut tokio_tungstenite::WebSocketStream<T>) -> u16
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a close in time")
        {
            Some(Ok(Ws::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Ws::Close(None))) | None | Some(Err(_)) => panic!("closed without a code"),
            Some(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn bad_input_closes_as_socketcluster_does() {
    let server = our_server("2", &[]).await;

    // Anything before the handshake: 4009.
    let mut ws = raw(&server.url).await;
    send(&mut ws, r#"{"event":"sum","data":{"a":1,"b":2},"cid":1}"#).await;
    assert_eq!(close_code(&mut ws).await, 4009);

    // A pong before the handshake is traffic before the handshake too.
    let mut ws = raw(&server.url).await;
    send(&mut ws, "").await;
    assert_eq!(close_code(&mut ws).await, 4009);

    // A `#handshake` whose cid is a string: 4008.
    let mut ws = raw(&server.url).await;
    send(
        &mut ws,
        r##"{"event":"#handshake","data":{"authToken":null},"cid":"1"}"##,
    )
    .await;
    assert_eq!(close_code(&mut ws).await, 4008);

    // A `#handshake` without cid: 4008.
    let mut ws = raw(&server.url).await;
    send(&mut ws, r##"{"event":"#handshake","data":{}}"##).await;
    assert_eq!(close_code(&mut ws).await, 4008);

    // Neither close comes after a `#disconnect` (20.x sends none): the close frame is the next
    // frame.
    let mut ws = raw(&server.url).await;
    send(&mut ws, r#"{"event":"sum","data":{},"cid":1}"#).await;
    let next = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert!(
        matches!(next, Some(Ok(Ws::Close(Some(ref f)))) if u16::from(f.code) == 4009),
        "{next:?}"
    );

    // A 14.x client's `#disconnect` closes the socket with its code.
    let mut ws = raw(&server.url).await;
    send(
        &mut ws,
        r##"{"event":"#handshake","data":{"authToken":null},"cid":1}"##,
    )
    .await;
    assert_eq!(recv(&mut ws).await["rid"], 1);
    send(
        &mut ws,
        r##"{"event":"#disconnect","data":{"code":4321,"data":"bye"}}"##,
    )
    .await;
    assert_eq!(close_code(&mut ws).await, 4321);

    terminate(server).await;
}

#[tokio::test]
async fn batches_tokens_and_pub_sub_on_the_wire() {
    let server = our_server("2", &[]).await;
    let mut ws = raw(&server.url).await;

    // One frame holding a JSON array of packets: each is handled, in order.
    send(
        &mut ws,
        r##"[{"event":"#handshake","data":{"authToken":"not.a.token"},"cid":1},
            {"event":"sum","data":{"a":2,"b":3},"cid":2}]"##,
    )
    .await;
    // The bad token deauthenticates the socket, as the real server does: `#removeAuthToken`
    // goes out ahead of the handshake reply. Replies are matched by rid; requests are handled
    // concurrently, so the sum's reply may come anywhere.
    let frames = [
        recv(&mut ws).await,
        recv(&mut ws).await,
        recv(&mut ws).await,
    ];
    let remove = frames
        .iter()
        .position(|f| f == &json!({"event": "#removeAuthToken"}));
    let handshake_at = frames.iter().position(|f| f["rid"] == 1);
    assert!(
        matches!((remove, handshake_at), (Some(r), Some(h)) if r < h),
        "{frames:#?}"
    );
    let mut replies: Vec<Value> = frames
        .into_iter()
        .filter(|f| f.get("rid").is_some())
        .collect();
    replies.sort_by_key(|r| r["rid"].as_i64());
    let [handshake, sum] = <[Value; 2]>::try_from(replies).expect("two replies");
    assert_eq!(handshake["rid"], 1);
    assert!(handshake["data"]["id"].is_string());
    assert_eq!(handshake["data"]["pingTimeout"], 2000);
    assert_eq!(handshake["data"]["isAuthenticated"], false);
    // A bad token does not fail the handshake: it is reported.
    assert_eq!(
        handshake["data"]["authError"],
        json!({"name": "AuthTokenInvalidError", "message": "invalid token", "isBadToken": true})
    );
    assert_eq!(sum, json!({"rid": 2, "data": 5}));

    // A reply without data, and an error object with extra keys.
    send(&mut ws, r#"{"event":"nothing","data":{},"cid":3}"#).await;
    assert_eq!(recv(&mut ws).await, json!({"rid": 3}));
    send(&mut ws, r#"{"event":"fail","data":{},"cid":4}"#).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"rid": 4, "error": {"message": "nope", "name": "MyError", "code": 42}})
    );

    // Pub/sub: subscribe, publish without and with cid, unsubscribe (a bare string).
    send(
        &mut ws,
        r##"{"event":"#subscribe","data":{"channel":"news"},"cid":5}"##,
    )
    .await;
    assert_eq!(recv(&mut ws).await, json!({"rid": 5}));
    send(
        &mut ws,
        r##"{"event":"#publish","data":{"channel":"news","data":{"t":"hi"}}}"##,
    )
    .await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"event": "#publish", "data": {"channel": "news", "data": {"t": "hi"}}})
    );
    send(
        &mut ws,
        r##"{"event":"#publish","data":{"channel":"news","data":"hi2"},"cid":6}"##,
    )
    .await;
    let mut got = vec![recv(&mut ws).await, recv(&mut ws).await];
    got.sort_by_key(|v| v.get("rid").is_some());
    assert_eq!(
        got,
        [
            json!({"event": "#publish", "data": {"channel": "news", "data": "hi2"}}),
            json!({"rid": 6})
        ]
    );
    send(&mut ws, r##"{"event":"#unsubscribe","data":"news"}"##).await;
    // Emits are handled one after another: once `shout` is echoed, the unsubscribe is done.
    send(&mut ws, r#"{"event":"shout","data":{"n":1}}"#).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"event": "shouted", "data": {"n": 1}})
    );
    send(
        &mut ws,
        r##"{"event":"#publish","data":{"channel":"news","data":"gone"},"cid":7}"##,
    )
    .await;
    // Only the acknowledgement: nothing is delivered any more.
    assert_eq!(recv(&mut ws).await, json!({"rid": 7}));

    // Auth: a token from `login`, then `#authenticate` with a bad one.
    send(
        &mut ws,
        r#"{"event":"login","data":{"user":"dave"},"cid":8}"#,
    )
    .await;
    // `#setAuthToken` goes without a `cid`, as socketcluster-server transmits it, and the reply
    // does not wait for an acknowledgement the real clients never send.
    let set = recv(&mut ws).await;
    assert_eq!(set["event"], "#setAuthToken");
    assert!(set.get("cid").is_none(), "{set}");
    let token = set["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3);
    assert_eq!(recv(&mut ws).await, json!({"rid": 8}));
    send(
        &mut ws,
        &json!({"event": "#authenticate", "data": token, "cid": 9}).to_string(),
    )
    .await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"rid": 9, "data": {"isAuthenticated": true}})
    );
    send(
        &mut ws,
        r##"{"event":"#authenticate","data":"x.y.z","cid":10}"##,
    )
    .await;
    assert_eq!(recv(&mut ws).await, json!({"event": "#removeAuthToken"}));
    assert_eq!(
        recv(&mut ws).await,
        json!({"rid": 10, "error": {"name": "AuthTokenInvalidError", "message": "invalid token", "isBadToken": true}})
    );
    terminate(server).await;
}

/// A server that invokes the client right behind the handshake reply (as socketcluster-server
/// does on `connection`), here in the same frame: the client must already be past its
/// handshake when it reads the invoke.
#[tokio::test]
async fn our_client_takes_an_invoke_right_behind_the_handshake_reply() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/socketcluster/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let handshake = recv(&mut ws).await;
        assert_eq!(handshake["event"], "#handshake");
        let reply = json!([
            {"rid": handshake["cid"], "data": {"id": "x", "pingTimeout": 20000, "isAuthenticated": false}},
            {"event": "askClient", "cid": 1, "data": {"q": 9}}
        ]);
        ws.send(Ws::text(reply.to_string())).await.unwrap();
        assert_eq!(
            recv(&mut ws).await,
            json!({"rid": 1, "data": {"a": "ok", "q": 9}})
        );
        // The client waits for this before it closes.
        ws.send(Ws::text(r#"{"event":"shouted","data":1}"#))
            .await
            .unwrap();
        assert_eq!(close_code(&mut ws).await, 1000);
    });
    let (ok, lines) = our_client(&url, "2", &["wait:askClient", "wait:shouted"]).await;
    assert!(ok, "{lines:#?}");
    assert_eq!(received(&lines, "askClient"), [&json!({"q": 9})]);
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
}

/// Sends requests with malformed channel names and arguments after a handshake; returns the
/// replies by `cid`.
async fn malformed_requests(url: &str) -> Vec<Value> {
    let mut ws = raw(url).await;
    send(
        &mut ws,
        r##"{"event":"#handshake","data":{"authToken":null},"cid":1}"##,
    )
    .await;
    send(
        &mut ws,
        r##"{"event":"#subscribe","data":{"channel":5},"cid":2}"##,
    )
    .await;
    send(&mut ws, r##"{"event":"#subscribe","cid":3}"##).await;
    send(
        &mut ws,
        r##"{"event":"#publish","data":{"data":1},"cid":4}"##,
    )
    .await;
    send(&mut ws, r##"{"event":"#unsubscribe","data":5,"cid":5}"##).await;
    let mut replies = Vec::new();
    while replies.len() < 5 {
        let frame = recv(&mut ws).await;
        // The real server invokes `askClient` on every new socket: not a reply.
        if frame.get("rid").is_some() {
            replies.push(frame);
        }
    }
    replies.sort_by_key(|r| r["rid"].as_i64());
    replies.remove(0);
    replies
}

#[tokio::test]
async fn malformed_channel_names_are_refused_as_the_real_server_does() {
    let error = |rid: u32, what: &str| {
        json!({"rid": rid, "error": {
            "name": "InvalidActionError",
            "message": format!("{what} channel name was malformatted"),
        }})
    };
    let expected = [
        error(2, "Subscribe"),
        error(3, "Subscribe"),
        error(4, "Publish"),
        error(5, "Unsubscribe"),
    ];
    let real = real_server("2").await;
    assert_eq!(malformed_requests(&real.url).await, expected);
    drop(real.child);
    let ours = our_server("2", &[]).await;
    assert_eq!(malformed_requests(&ours.url).await, expected);
    terminate(ours).await;
}

/// What the real server accepts and answers, auth-wise: an HS512 token signed with the secret,
/// a token that is not a string (`AuthTokenError` in the reply, not a close), and no public
/// default secret when none is given.
#[tokio::test]
async fn auth_tokens_as_the_real_server_takes_them() {
    let sign = |secret: &str, algorithm| {
        let claims = json!({"user": "ann"});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(algorithm),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let handshake = |token: Value| {
        json!({"event": "#handshake", "data": {"authToken": token}, "cid": 1}).to_string()
    };
    let server = our_server("2", &[]).await;
    for algorithm in [
        jsonwebtoken::Algorithm::HS256,
        jsonwebtoken::Algorithm::HS384,
        jsonwebtoken::Algorithm::HS512,
    ] {
        let mut ws = raw(&server.url).await;
        send(&mut ws, &handshake(json!(sign("test-secret", algorithm)))).await;
        let reply = recv(&mut ws).await;
        assert_eq!(
            reply["data"]["isAuthenticated"], true,
            "{algorithm:?}: {reply}"
        );
    }
    let mut ws = raw(&server.url).await;
    send(&mut ws, &handshake(json!(5))).await;
    let mut frames = [recv(&mut ws).await, recv(&mut ws).await];
    frames.sort_by_key(|f| f.get("rid").is_some());
    assert_eq!(frames[0], json!({"event": "#removeAuthToken"}));
    assert_eq!(
        frames[1]["data"]["authError"],
        json!({"name": "AuthTokenError", "message": "Invalid token format - Token must be a string", "isBadToken": true})
    );
    terminate(server).await;

    // Without --auth-secret the key is random: a token signed with the old public default
    // (or any guess) does not authenticate.
    let server = spawn(&["serve", "socketcluster", "--listen", "127.0.0.1:0"]).await;
    let mut ws = raw(&server.url).await;
    let guessed = sign("protolink-socketcluster", jsonwebtoken::Algorithm::HS256);
    send(&mut ws, &handshake(json!(guessed))).await;
    let mut frames = [recv(&mut ws).await, recv(&mut ws).await];
    frames.sort_by_key(|f| f.get("rid").is_some());
    assert_eq!(frames[1]["data"]["isAuthenticated"], false, "{frames:?}");
    assert_eq!(
        frames[1]["data"]["authError"]["name"],
        "AuthTokenInvalidError"
    );
    terminate(server).await;
}

/// A client of the restart test: hands on what is published, and never answers `askClient`, so
/// that a `callMe` stays in flight.
struct Subscriber {
    heard: tokio::sync::mpsc::UnboundedSender<Value>,
}

impl protolink_protocols::chat::ClientHandler for Subscriber {
    async fn publish_event(&self, message: protolink_protocols::chat::PublishEvent) {
        let _ = self.heard.send(message.data.unwrap_or(Value::Null));
    }

    async fn ask_client(
        &self,
        _: protolink_protocols::chat::AskClient,
    ) -> Result<Value, protolink::RemoteError> {
        std::future::pending().await
    }

    async fn set_auth_token(
        &self,
        _: protolink_protocols::chat::SetAuthToken,
    ) -> Result<protolink::Empty, protolink::RemoteError> {
        Ok(protolink::Empty)
    }

    async fn ping_client(
        &self,
        _: protolink_protocols::chat::PingClient,
    ) -> Result<protolink_protocols::chat::PingClientReply, protolink::RemoteError> {
        Ok(protolink_protocols::chat::PingClientReply {})
    }
}

/// The server is killed (no close frames) while reconnecting clients hold subscriptions and a
/// request in flight: the request fails at once (not at its timeout), every client reconnects to
/// the server that comes back on the same address, and its subscription is made again.
#[tokio::test]
async fn clients_recover_from_a_killed_server() {
    use protolink::prelude::*;
    use protolink_protocols::chat::{self, ClientSender};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let first = our_server("2", &[]).await;
    let addr = first
        .url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let url = first.url.clone();
    let (connects, connected) = tokio::sync::watch::channel(0usize);
    let connects = Arc::new(connects);
    let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let clients: Vec<ReconnectingClient<chat::Client>> = (0..3)
        .map(|_| {
            let (heard, connects) = (heard_tx.clone(), connects.clone());
            // Built once per connection: a closure made here (not inside `.handler(..)`, which
            // only needs one call) so that it can be called again.
            let make_handler = move |_| Subscriber {
                heard: heard.clone(),
            };
            connect::<chat::Client>(url.clone())
                .config(protolink_cli_link_config())
                .handler(make_handler)
                .reconnecting(
                    Backoff {
                        initial: Duration::from_millis(20),
                        max: Duration::from_millis(200),
                    },
                    move |link: Link<chat::Client>| {
                        let connects = connects.clone();
                        async move {
                            let subscribed = link
                                .subscribe(chat::Subscribe {
                                    channel: "news".into(),
                                    wait_for_auth: None,
                                    data: None,
                                })
                                .await;
                            assert!(subscribed.is_ok(), "{subscribed:?}");
                            connects.send_modify(|n| *n += 1);
                        }
                    },
                )
        })
        .collect();
    let wait_for_connects = async |n: usize| {
        let mut connected = connected.clone();
        tokio::time::timeout(WAIT, connected.wait_for(|done| *done >= n))
            .await
            .expect("every client (re)connected and subscribed")
            .expect("the clients are still there");
    };
    wait_for_connects(3).await;

    // A request in flight: the server invokes `askClient`, which this client never answers.
    let link = clients[0].link().expect("connected");
    let pending = tokio::spawn(async move { link.call_me(json!({"q": 7})).await });
    let mut first = first;
    first.child.kill().await.unwrap();
    let killed_at = Instant::now();
    let failed = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert!(
        matches!(failed, Err(RequestError::Disconnected)),
        "{failed:?}"
    );
    assert!(
        killed_at.elapsed() < Duration::from_secs(5),
        "failed only at its timeout"
    );

    let second = our_server_at(&addr).await;
    wait_for_connects(6).await;
    let mut publisher = raw(&second.url).await;
    send(
        &mut publisher,
        r##"{"event":"#handshake","data":{"authToken":null},"cid":1}"##,
    )
    .await;
    recv(&mut publisher).await;
    send(
        &mut publisher,
        r##"{"event":"#publish","data":{"channel":"news","data":"back"},"cid":2}"##,
    )
    .await;
    for _ in 0..3 {
        let got = tokio::time::timeout(WAIT, heard.recv()).await.unwrap();
        assert_eq!(got, Some(json!("back")));
    }
    for client in &clients {
        client.stop();
    }
    terminate(second).await;
}

/// Our server on a given address, with the tests' settings.
async fn our_server_at(addr: &str) -> super::Running {
    spawn(&[
        "serve",
        "socketcluster",
        "--listen",
        addr,
        "--protocol-version",
        "2",
        "--auth-secret",
        "test-secret",
        "--ping-interval",
        PING_INTERVAL,
        "--ping-timeout",
        PING_TIMEOUT,
    ])
    .await
}

/// The link settings our SocketCluster client uses with the tests' server.
fn protolink_cli_link_config() -> protolink::LinkConfig {
    protolink::LinkConfig {
        heartbeat_variant: Some("2".to_owned()),
        ..protolink::LinkConfig::default()
    }
}
