//! The Skynet reference server, driven by several plain WebSocket clients.

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Ws;

use super::{RawWs, WAIT, spawn, terminate};

async fn client(url: &str) -> RawWs {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(ws: &mut RawWs, frame: Value) {
    ws.send(Ws::text(frame.to_string())).await.unwrap();
}

async fn recv(ws: &mut RawWs) -> Value {
    super::recv_json(ws, |_| false).await
}

/// The next text frame, as sent.
async fn recv_text(ws: &mut RawWs) -> String {
    use futures_util::StreamExt;
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Ws::Text(t)))) => return t.as_str().to_owned(),
            Ok(Some(Ok(Ws::Close(frame)))) => panic!("closed: {frame:?}"),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no frame: {other:?}"),
        }
    }
}

/// Sends a command and returns its reply (replies come in order; no events are expected).
async fn command(ws: &mut RawWs, frame: Value) -> Value {
    send(ws, frame).await;
    recv(ws).await
}

/// Asserts nothing arrives: a round trip with `log` must come back first.
async fn nothing_pending(ws: &mut RawWs) {
    // (`end: 0` would mean 100, as on the real server: start past the end instead.)
    let reply = command(ws, json!({"type": "log", "start": 1_000_000})).await;
    assert_eq!(
        reply,
        json!({"type": "result", "for": "log", "log": []}),
        "an unexpected frame came first"
    );
}

#[tokio::test]
async fn fan_out_wildcard_strict_channels_and_extra_keys() {
    let server = spawn(&[
        "serve",
        "skynet",
        "--listen",
        "127.0.0.1:0",
        "--log-size",
        "50",
    ])
    .await;
    assert!(server.url.ends_with("/connect"));
    let (mut a, mut b, mut star, mut other) = (
        client(&server.url).await,
        client(&server.url).await,
        client(&server.url).await,
        client(&server.url).await,
    );

    assert_eq!(
        command(&mut a, json!({"type": "open", "channel": 42})).await,
        json!({"type": "result", "for": "open", "channels": [42]})
    );
    assert_eq!(
        command(&mut b, json!({"type": "open", "channel": 42})).await["channels"],
        json!([42])
    );
    assert_eq!(
        command(&mut star, json!({"type": "open", "channel": "*"})).await["channels"],
        json!(["*"])
    );
    // "42" is not 42.
    assert_eq!(
        command(&mut other, json!({"type": "open", "channel": "42"})).await["channels"],
        json!(["42"])
    );

    let reply = command(
        &mut b,
        json!({"type": "message", "channel": 42, "message": "hi", "extra": {"x": 1}}),
    )
    .await;
    assert_eq!(reply["type"], "result");
    assert_eq!(reply["for"], "message");
    assert_eq!(reply["message"], "hi");
    assert_eq!(reply["extra"], json!({"x": 1}));
    assert!(reply["ID"].is_string() && reply["time"].is_i64(), "{reply}");

    for ws in [&mut a, &mut star] {
        let event = recv(ws).await;
        assert_eq!(event["type"], "message");
        assert_eq!(event["channel"], 42);
        assert_eq!(event["message"], "hi");
        assert_eq!(event["extra"], json!({"x": 1}));
        assert_eq!(event["ID"], reply["ID"]);
        assert_eq!(event["time"], reply["time"]);
    }
    // Not back to the sender, not to the string channel "42".
    nothing_pending(&mut b).await;
    nothing_pending(&mut other).await;

    // Closing returns the channels left; closing again is an error.
    assert_eq!(
        command(&mut a, json!({"type": "close", "channel": 42})).await["channels"],
        json!([])
    );
    assert_eq!(
        command(&mut a, json!({"type": "close", "channel": 42})).await,
        json!({"type": "error", "error": "Error: Channel 42 not open."})
    );
    terminate(server).await;
}

#[tokio::test]
async fn log_is_newest_first_and_sliced() {
    let server = spawn(&[
        "serve",
        "skynet",
        "--listen",
        "127.0.0.1:0",
        "--log-size",
        "3",
    ])
    .await;
    let mut ws = client(&server.url).await;
    command(&mut ws, json!({"type": "open", "channel": "c"})).await;
    for i in 0..5 {
        command(
            &mut ws,
            json!({"type": "message", "channel": "c", "message": i}),
        )
        .await;
    }
    // Bounded by --log-size, newest first.
    let log = command(&mut ws, json!({"type": "log"})).await;
    let messages: Vec<Value> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].clone())
        .collect();
    assert_eq!(messages, vec![json!(4), json!(3), json!(2)]);
    let slice = |start: Value, end: Value| {
        let mut frame = json!({"type": "log"});
        if !start.is_null() {
            frame["start"] = start;
        }
        if !end.is_null() {
            frame["end"] = end;
        }
        frame
    };
    let pick = |reply: Value| -> Vec<Value> {
        reply["log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].clone())
            .collect()
    };
    assert_eq!(
        pick(command(&mut ws, slice(json!(1), json!(2))).await),
        vec![json!(3)]
    );
    assert_eq!(
        pick(command(&mut ws, slice(json!(1), Value::Null)).await),
        vec![json!(3), json!(2)]
    );
    assert_eq!(
        pick(command(&mut ws, slice(json!(-1), Value::Null)).await),
        vec![json!(2)]
    );
    assert_eq!(
        pick(command(&mut ws, slice(json!(10), json!(20))).await),
        Vec::<Value>::new()
    );
    assert_eq!(
        pick(command(&mut ws, slice(json!(2), json!(1))).await),
        Vec::<Value>::new()
    );
    terminate(server).await;
}

#[tokio::test]
async fn every_error_case() {
    let server = spawn(&["serve", "skynet", "--listen", "127.0.0.1:0"]).await;
    let mut ws = client(&server.url).await;
    let error = |reply: Value| -> String {
        assert_eq!(reply["type"], "error", "{reply}");
        reply["error"].as_str().unwrap().to_owned()
    };
    // The real server's texts (osmarks/skynet b802d25), declared in skynet.protocol.
    ws.send(Ws::text("not json")).await.unwrap();
    assert!(error(recv(&mut ws).await).starts_with("SyntaxError: "));
    ws.send(Ws::text("5")).await.unwrap();
    assert_eq!(error(recv(&mut ws).await), "Error: Message must be object");
    ws.send(Ws::text("[1, 2]")).await.unwrap();
    assert_eq!(
        error(recv(&mut ws).await),
        "Error: No such command undefined"
    );
    assert_eq!(
        error(command(&mut ws, json!({"channel": 1})).await),
        "Error: No such command undefined"
    );
    assert_eq!(
        error(command(&mut ws, json!({"type": "dance"})).await),
        "Error: No such command dance"
    );
    for bad in [
        json!({"type": "open"}),
        json!({"type": "open", "channel": true}),
    ] {
        assert_eq!(
            error(command(&mut ws, bad).await),
            "Error: Invalid type for channel!"
        );
    }
    // `log` takes any bounds, as JavaScript reads them.
    assert_eq!(
        command(&mut ws, json!({"type": "log", "start": "x"})).await["for"],
        "log"
    );
    assert_eq!(
        error(command(&mut ws, json!({"type": "close", "channel": "zz"})).await),
        "Error: Channel zz not open."
    );
    // Still serving.
    assert_eq!(
        command(&mut ws, json!({"type": "open", "channel": 1})).await["channels"],
        json!([1])
    );
    terminate(server).await;
}

/// What the real server does and an earlier reading did not: sending without opening, the
/// server's keys written once, `/connect/`, and binary frames holding JSON.
#[tokio::test]
async fn behaves_as_the_real_server() {
    let server = spawn(&["serve", "skynet", "--listen", "127.0.0.1:0"]).await;
    let mut listener = client(&server.url).await;
    command(&mut listener, json!({"type": "open", "channel": 42})).await;
    // The Lua client's default URL ends in a slash.
    let mut sender = client(&format!("{}/", server.url)).await;
    send(
        &mut sender,
        json!({"type": "message", "channel": 42, "message": "hi", "ID": "mine",
               "time": 5, "for": "x", "z": 1}),
    )
    .await;
    let (sent_text, heard_text) = (recv_text(&mut sender).await, recv_text(&mut listener).await);
    let sent: Value = serde_json::from_str(&sent_text).unwrap();
    let heard: Value = serde_json::from_str(&heard_text).unwrap();
    let logged = command(&mut sender, json!({"type": "log", "end": 1})).await;
    for (what, frame) in [
        ("result", &sent),
        ("event", &heard),
        ("log", &logged["log"][0]),
    ] {
        assert_ne!(frame["ID"], "mine", "{what}: {frame}");
        assert_ne!(frame["time"], 5, "{what}: {frame}");
        assert_eq!(frame["z"], 1, "{what}: {frame}");
        assert_eq!(frame["message"], "hi", "{what}: {frame}");
    }
    assert_eq!(
        (&sent["type"], &sent["for"]),
        (&json!("result"), &json!("message"))
    );
    assert_eq!(heard["type"], "message");
    assert_eq!(sent["ID"], heard["ID"]);
    // Every key once: the texts hold no repeated key (serde_json would keep the last one).
    for text in [&sent_text, &heard_text] {
        for key in ["\"ID\"", "\"time\"", "\"type\"", "\"for\""] {
            assert!(text.matches(key).count() <= 1, "{key} twice in {text}");
        }
    }
    // A binary frame holding JSON is read as text.
    sender
        .send(Ws::binary(
            r#"{"type":"open","channel":"b"}"#.as_bytes().to_vec(),
        ))
        .await
        .unwrap();
    assert_eq!(recv(&mut sender).await["channels"], json!(["b"]));
    terminate(server).await;
}

#[tokio::test]
async fn a_thousand_pipelined_commands_match_their_replies() {
    let server = spawn(&["serve", "skynet", "--listen", "127.0.0.1:0"]).await;
    let mut ws = client(&server.url).await;
    for i in 0..1000 {
        let frame = if i % 2 == 0 {
            json!({"type": "open", "channel": i})
        } else {
            json!({"type": "close", "channel": -i})
        };
        ws.feed(Ws::text(frame.to_string())).await.unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..1000 {
        let reply = recv(&mut ws).await;
        if i % 2 == 0 {
            assert_eq!(reply["for"], "open");
            assert_eq!(
                reply["channels"].as_array().unwrap().last().unwrap(),
                &json!(i)
            );
        } else {
            assert_eq!(reply["error"], format!("Error: Channel {} not open.", -i));
        }
    }
    terminate(server).await;
}

#[tokio::test]
async fn listen_and_send_commands() {
    let server = spawn(&["serve", "skynet", "--listen", "127.0.0.1:0"]).await;
    let mut listener = tokio::process::Command::new(env!("CARGO_BIN_EXE_protolink"))
        .args(["skynet", "listen", &server.url, "--channel", "7"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(listener.stdout.take().unwrap()).lines();
    let opened = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(opened, r#"{"open":[7]}"#);
    let sent = tokio::process::Command::new(env!("CARGO_BIN_EXE_protolink"))
        .args([
            "skynet",
            "send",
            &server.url,
            "--channel",
            "7",
            r#"{"hello":"world"}"#,
        ])
        .output()
        .await
        .unwrap();
    assert!(sent.status.success());
    let printed: Value = serde_json::from_slice(&sent.stdout).unwrap();
    assert_eq!(printed["message"], json!({"hello": "world"}));
    let heard: Value = serde_json::from_str(
        &tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(heard["message"], json!({"hello": "world"}));
    assert_eq!(heard["channel"], 7);
    terminate(server).await;
}

/// `skynet listen` outlives its server: it says it lost the connection, reconnects to the
/// server that comes back on the same address, opens its channels again and hears messages.
#[tokio::test]
async fn listen_reconnects_after_the_server_restarts() {
    let first = spawn(&["serve", "skynet", "--listen", "127.0.0.1:0"]).await;
    let url = first.url.clone();
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/connect")
        .to_owned();
    let (mut listener, mut lines) = super::start(&["skynet", "listen", &url, "--channel", "7"]);
    let mut next_line = async || {
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("the listener still runs")
    };
    assert_eq!(next_line().await, r#"{"open":[7]}"#);
    terminate(first).await;
    let lost: Value = serde_json::from_str(&next_line().await).unwrap();
    assert!(lost["disconnected"].is_object(), "{lost}");
    let second = spawn(&["serve", "skynet", "--listen", &addr]).await;
    assert_eq!(next_line().await, r#"{"open":[7]}"#);
    let mut sender = client(&second.url).await;
    command(
        &mut sender,
        json!({"type": "message", "channel": 7, "message": "again"}),
    )
    .await;
    let heard: Value = serde_json::from_str(&next_line().await).unwrap();
    assert_eq!(heard["message"], "again");
    let pid = listener.id().unwrap().to_string();
    tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    let exit = tokio::time::timeout(WAIT, listener.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    terminate(second).await;
}

/// On SIGINT `skynet listen` closes its link with a close frame, not by dropping TCP.
#[tokio::test]
async fn listen_says_goodbye_with_a_close_frame() {
    use futures_util::StreamExt;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/connect", tcp.local_addr().unwrap());
    let (mut listener, _lines) = super::start(&["skynet", "listen", &url, "--channel", "7"]);
    let (stream, _) = tokio::time::timeout(WAIT, tcp.accept())
        .await
        .unwrap()
        .unwrap();
    let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
    let open = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(open.to_text().unwrap().contains("open"), "{open:?}");
    ws.send(Ws::text(r#"{"channels":[7],"type":"result","for":"open"}"#))
        .await
        .unwrap();
    // Something the listener cannot use is neither answered nor fatal.
    ws.send(Ws::text(r#"{"type":"message","channel":7}"#))
        .await
        .unwrap();
    let pid = listener.id().unwrap().to_string();
    tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    let frame = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert!(
        matches!(frame, Some(Ok(Ws::Close(Some(ref f)))) if u16::from(f.code) == 1000),
        "{frame:?}"
    );
    let exit = tokio::time::timeout(WAIT, listener.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// Out of file descriptors, the server waits before accepting again and says so once a second
/// (not once per attempt), and serves again as soon as descriptors are free.
#[tokio::test]
async fn running_out_of_file_descriptors_backs_off_and_recovers() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut server = tokio::process::Command::new("bash")
        .args([
            "-c",
            r#"ulimit -n 64 && exec "$0" serve skynet --listen 127.0.0.1:0"#,
            env!("CARGO_BIN_EXE_protolink"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(server.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT, out.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = first.strip_prefix("listening on ").unwrap().to_owned();
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/connect")
        .to_owned();
    // More half-open connections than the server has descriptors.
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let failing = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = err.next_line().await {
            if line.contains("accept failed") {
                return;
            }
        }
    })
    .await;
    assert!(failing.is_ok(), "no accept failure reported");
    // Over the next second and a half: a couple of warnings, not thousands.
    let mut warnings = 0;
    let _ = tokio::time::timeout(std::time::Duration::from_millis(1500), async {
        while let Ok(Some(line)) = err.next_line().await {
            warnings += usize::from(line.contains("accept failed"));
        }
    })
    .await;
    assert!(warnings <= 3, "{warnings} warnings in 1.5 s");
    drop(held);
    let served = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await {
                send(&mut ws, json!({"type": "open", "channel": 1})).await;
                return recv(&mut ws).await;
            }
        }
    })
    .await
    .expect("served again once descriptors are free");
    assert_eq!(served["channels"], json!([1]));
}

/// The log is bounded in bytes as well as in messages, and a `log` reply holds as many entries
/// of the range as fit in one frame (newest first), rather than dropping the requester.
#[tokio::test]
async fn the_log_is_bounded_in_bytes_and_its_replies_fit_a_frame() {
    let server = spawn(&[
        "serve",
        "skynet",
        "--listen",
        "127.0.0.1:0",
        "--log-bytes",
        "300000",
    ])
    .await;
    // `count` messages of `size` bytes, each starting with its number.
    let send_many = async |url: &str, count: usize, size: usize| {
        let mut ws = client(url).await;
        for n in 0..count {
            let text = format!("{n}{}", "x".repeat(size));
            command(
                &mut ws,
                json!({"type": "message", "channel": 1, "message": text}),
            )
            .await;
        }
        ws
    };
    let mut ws = send_many(&server.url, 5, 100_000).await;
    let log = command(&mut ws, json!({"type": "log"})).await;
    let kept: Vec<char> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["message"].as_str().unwrap().chars().next().unwrap())
        .collect();
    assert_eq!(kept, ['4', '3'], "the newest that fit in 300,000 bytes");
    terminate(server).await;

    // Four messages of 4.5 MiB: the log keeps them all, a reply carries what fits in 16 MiB.
    let server = spawn(&["serve", "skynet", "--listen", "127.0.0.1:0"]).await;
    let mut ws = send_many(&server.url, 4, 4_500_000).await;
    let log = command(&mut ws, json!({"type": "log"})).await;
    assert_eq!(log["log"].as_array().unwrap().len(), 3);
    // Still served.
    assert_eq!(
        command(&mut ws, json!({"type": "open", "channel": 2})).await["channels"],
        json!([2])
    );
    terminate(server).await;
}

/// Passes every `message` event on.
struct Heard(tokio::sync::mpsc::UnboundedSender<Value>);

impl protolink_protocols::skynet::ClientHandler for Heard {
    async fn message_event(&self, message: protolink_protocols::skynet::MessageEvent) {
        let _ = self.0.send(serde_json::to_value(&message.0).unwrap());
    }
}

/// Sends a Unix signal to the server process.
async fn signal(server: &super::Running, name: &str) {
    let pid = server.child.id().unwrap().to_string();
    let status = tokio::process::Command::new("kill")
        .args([format!("-{name}"), pid])
        .status()
        .await
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

/// The server is killed (SIGKILL, no close frames) while reconnecting clients hold a
/// subscription and have requests in flight: every pending request fails at once (not after the
/// request timeout), every client reconnects to the restarted server, and its subscription is
/// restored there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_pending_requests_and_clients_come_back_subscribed() {
    use protolink::ws::{Backoff, ReconnectingClient, connect};
    use protolink::{LinkConfig, RequestError, Sender};
    use protolink_protocols::skynet as sk;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const CLIENTS: usize = 3;
    let mut first = spawn(&["serve", "skynet", "--listen", "127.0.0.1:0"]).await;
    let url = first.url.clone();
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/connect")
        .to_owned();
    let subscribed = Arc::new(AtomicUsize::new(0));
    let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (subscribed, heard_tx, ready_tx) =
            (subscribed.clone(), heard_tx.clone(), ready_tx.clone());
        let make = move |_| Heard(heard_tx.clone());
        clients.push(
            connect::<sk::Client>(&url)
                .config(LinkConfig {
                    request_timeout: Duration::from_secs(30),
                    ..LinkConfig::default()
                })
                .handler(make)
                .reconnecting(
                    Backoff {
                        initial: Duration::from_millis(50),
                        max: Duration::from_millis(200),
                    },
                    move |link| {
                        let (subscribed, ready_tx) = (subscribed.clone(), ready_tx.clone());
                        async move {
                            let open = sk::Open {
                                channel: sk::Channel::Int(7),
                            };
                            if link.request(open).await.is_ok() {
                                subscribed.fetch_add(1, Ordering::SeqCst);
                                let _ = ready_tx.send(());
                            }
                        }
                    },
                ),
        );
    }
    let all_ready = async |ready: &mut tokio::sync::mpsc::UnboundedReceiver<()>| {
        for _ in 0..CLIENTS {
            tokio::time::timeout(WAIT, ready.recv()).await.unwrap();
        }
    };
    all_ready(&mut ready).await;

    // Frozen, the server reads nothing: the clients' requests stay in flight. Then it dies.
    signal(&first, "STOP").await;
    let links: Vec<_> = clients
        .iter()
        .map(|c: &ReconnectingClient<sk::Client>| c.link().unwrap())
        .collect();
    let pending: Vec<_> = links
        .into_iter()
        .map(|link| {
            tokio::spawn(async move {
                link.request(sk::Log {
                    start: None,
                    end: None,
                })
                .await
            })
        })
        .collect();
    first.child.kill().await.unwrap();
    for request in pending {
        // "At once": well inside the 30 s request timeout.
        let result = tokio::time::timeout(Duration::from_secs(5), request)
            .await
            .expect("the pending request fails at once")
            .unwrap();
        assert!(
            matches!(result, Err(RequestError::Disconnected)),
            "{result:?}"
        );
    }

    let second = spawn(&["serve", "skynet", "--listen", &addr]).await;
    all_ready(&mut ready).await;
    assert_eq!(subscribed.load(Ordering::SeqCst), 2 * CLIENTS);
    let mut sender = client(&second.url).await;
    send(
        &mut sender,
        json!({"type": "message", "channel": 7, "message": "after the restart"}),
    )
    .await;
    for _ in 0..CLIENTS {
        let event = tokio::time::timeout(WAIT, heard.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event["message"], "after the restart");
    }
    for client in clients {
        client.stop_and_wait(Duration::from_secs(2)).await;
    }
    terminate(second).await;
}
