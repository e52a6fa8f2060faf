//! Several reference servers sharing one Redis (`--broker redis://...`): Skynet and SocketCluster
//! pub/sub across processes, the shared Skynet log, and Redis killed and restarted under them.
//!
//! Each test starts its own `redis-server` (Debian's package; `scripts/test.sh` installs it when
//! missing) on a free loopback port, with persistence off.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message as Ws;

use super::{RawWs, Running, WAIT, spawn, terminate};

/// A `redis-server` of the test's own. Dropping it kills it.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    /// Starts one on a free port (picked by binding port 0 and letting it go; another process
    /// may take it first, so a start that fails is tried again on a new port).
    async fn start() -> Redis {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if let Some(redis) = Redis::start_on(port).await {
                return redis;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// Starts one on `port`; `None` when it exits (the port is taken) before it answers.
    async fn start_on(port: u16) -> Option<Redis> {
        let port_text = port.to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port_text,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is missing: install it (`apt-get install -y redis-server`; scripts/test.sh does)");
        let mut redis = Redis { child, port };
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            if redis.child.try_wait().unwrap().is_some() {
                return None;
            }
            if redis.pings().await {
                // Another test's Redis may have the port (both picked it as free): this one
                // then exits, and the answer came from the other.
                return redis.is_ours().await.then_some(redis);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server on port {port} did not answer within {WAIT:?}");
    }

    /// Whether it answers `PING`.
    async fn pings(&self) -> bool {
        let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if tcp.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut answer = [0u8; 7];
        matches!(
            tokio::time::timeout(WAIT, tcp.read_exact(&mut answer)).await,
            Ok(Ok(_)) if &answer == b"+PONG\r\n"
        )
    }

    /// Whether the Redis answering on the port is this child (its `INFO server` names the pid).
    async fn is_ours(&self) -> bool {
        let Some(pid) = self.child.id() else {
            return false;
        };
        let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if tcp.write_all(b"INFO server\r\n").await.is_err() {
            return false;
        }
        let wanted = format!("process_id:{pid}\r\n");
        let mut seen = Vec::new();
        let mut chunk = [0u8; 1024];
        let read = tokio::time::timeout(WAIT, async {
            while let Ok(n) = tcp.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&chunk[..n]);
                // Read up to the end of the `process_id:` line.
                let text = String::from_utf8_lossy(&seen);
                if let Some(at) = text.find("process_id:") {
                    if text[at..].contains("\r\n") {
                        break;
                    }
                }
            }
        });
        let _ = read.await;
        String::from_utf8_lossy(&seen).contains(&wanted)
    }

    /// Runs an inline command; its answer's first line.
    async fn run(&self, command: &str) -> String {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        tcp.write_all(format!("{command}\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n") {
            tokio::time::timeout(WAIT, tcp.read_exact(&mut byte))
                .await
                .unwrap()
                .unwrap();
            answer.push(byte[0]);
        }
        String::from_utf8(answer).unwrap()
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it and waits until it is gone.
    async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Starts it again on the same port.
    async fn restart(&mut self) {
        let again = Redis::start_on(self.port)
            .await
            .expect("redis-server restarts on its port");
        *self = again;
    }
}

async fn skynet(redis: &Redis, log_size: &str) -> Running {
    spawn(&[
        "serve",
        "skynet",
        "--listen",
        "127.0.0.1:0",
        "--log-size",
        log_size,
        "--broker",
        &redis.url(),
    ])
    .await
}

async fn socketcluster(redis: &Redis) -> Running {
    spawn(&[
        "serve",
        "socketcluster",
        "--listen",
        "127.0.0.1:0",
        "--auth-secret",
        "test-secret",
        "--broker",
        &redis.url(),
    ])
    .await
}

async fn connect(url: &str) -> RawWs {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(ws: &mut RawWs, frame: Value) {
    ws.send(Ws::text(frame.to_string())).await.unwrap();
}

/// The next JSON frame, skipping SocketCluster's pings (empty text frames).
async fn recv(ws: &mut RawWs) -> Value {
    super::recv_json(ws, str::is_empty).await
}

/// The next JSON frame if one comes within `wait`; panics on a close.
async fn recv_within(ws: &mut RawWs, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Ws::Text(t)))) if t.is_empty() => continue,
            Ok(Some(Ok(Ws::Text(t)))) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Some(Ok(Ws::Close(frame)))) => panic!("closed: {frame:?}"),
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("the connection broke: {other:?}"),
        }
    }
}

/// Whether a frame for which `wanted` holds comes within `wait` (skipping others: frames
/// published while a subscription was being restored may come late).
async fn receives(ws: &mut RawWs, wanted: impl Fn(&Value) -> bool, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match recv_within(ws, left).await {
            None => return false,
            Some(frame) if wanted(&frame) => return true,
            Some(_) => continue,
        }
    }
}

/// Sends a Skynet command and returns its reply (replies come in order; a client sending
/// commands here is subscribed to nothing that could come between).
async fn command(ws: &mut RawWs, frame: Value) -> Value {
    send(ws, frame).await;
    recv(ws).await
}

async fn open(ws: &mut RawWs, channel: Value) {
    let reply = command(ws, json!({"type": "open", "channel": channel})).await;
    assert_eq!(reply["for"], "open", "{reply}");
}

/// Asserts nothing arrives on a Skynet link: a round trip must come back first.
async fn nothing_pending(ws: &mut RawWs) {
    let reply = command(ws, json!({"type": "log", "start": 1_000_000})).await;
    assert_eq!(
        reply["log"],
        json!([]),
        "an unexpected frame came first: {reply}"
    );
}

#[tokio::test]
async fn skynet_messages_ids_and_the_log_span_three_servers() {
    let redis = Redis::start().await;
    let servers = [
        skynet(&redis, "5").await,
        skynet(&redis, "5").await,
        skynet(&redis, "5").await,
    ];
    let [one, two, three] = [&servers[0].url, &servers[1].url, &servers[2].url];
    let (mut a, mut b, mut star, mut other, mut witness) = (
        connect(one).await,
        connect(two).await,
        connect(three).await,
        connect(three).await,
        connect(one).await,
    );
    open(&mut a, json!(42)).await;
    open(&mut b, json!(42)).await;
    open(&mut star, json!("*")).await;
    open(&mut other, json!("42")).await;
    open(&mut witness, json!(42)).await;

    // From the second server to the first and, through `*`, the third; not back to the sender,
    // not to the string channel "42".
    let sent = command(
        &mut b,
        json!({"type": "message", "channel": 42, "message": "hi", "extra": {"x": 1}}),
    )
    .await;
    assert_eq!(sent["for"], "message", "{sent}");
    for ws in [&mut a, &mut star, &mut witness] {
        let event = recv(ws).await;
        assert_eq!(event["type"], "message");
        assert_eq!(event["channel"], 42);
        assert_eq!(event["message"], "hi");
        assert_eq!(event["extra"], json!({"x": 1}));
        assert_eq!(event["ID"], sent["ID"]);
    }
    nothing_pending(&mut b).await;
    nothing_pending(&mut other).await;

    // A channel closed on one server gets nothing more there (its neighbour on the same
    // server, which got the message, shows it was delivered there).
    let closed = command(&mut a, json!({"type": "close", "channel": 42})).await;
    assert_eq!(closed["channels"], json!([]));
    let again = command(
        &mut b,
        json!({"type": "message", "channel": 42, "message": 2}),
    )
    .await;
    assert_eq!(recv(&mut witness).await["ID"], again["ID"]);
    assert_eq!(recv(&mut star).await["ID"], again["ID"]);
    nothing_pending(&mut a).await;

    // Ids stay unique across the servers, messages sent on all three at once.
    let mut senders = Vec::new();
    for server in &servers {
        let url = server.url.clone();
        senders.push(tokio::spawn(async move {
            let mut ws = connect(&url).await;
            let mut ids = Vec::new();
            for n in 0..20 {
                let reply = command(
                    &mut ws,
                    json!({"type": "message", "channel": "x", "message": n}),
                )
                .await;
                ids.push(reply["ID"].as_str().unwrap().to_owned());
            }
            ids
        }));
    }
    let mut ids = HashSet::new();
    for sender in senders {
        for id in sender.await.unwrap() {
            assert!(ids.insert(id.clone()), "{id} handed out twice");
        }
    }
    assert_eq!(ids.len(), 60);
    for _ in 0..60 {
        assert_eq!(recv(&mut star).await["channel"], "x");
    }

    // One log for the cluster, newest first, bounded by --log-size, whichever server is asked.
    for n in 0..6 {
        let ws = match n % 3 {
            0 => &mut a,
            1 => &mut b,
            _ => &mut other,
        };
        command(
            ws,
            json!({"type": "message", "channel": "log", "message": n}),
        )
        .await;
    }
    for ws in [&mut a, &mut b, &mut other] {
        let log = command(ws, json!({"type": "log"})).await;
        let messages: Vec<&Value> = log["log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["message"])
            .collect();
        assert_eq!(messages, [5, 4, 3, 2, 1], "{log}");
        let sliced = command(ws, json!({"type": "log", "start": 1, "end": 3})).await;
        assert_eq!(sliced["log"][0]["message"], 4);
        assert_eq!(sliced["log"].as_array().unwrap().len(), 2);
    }
    // What Redis refuses is an error too: the log's key made a string behind the servers' backs.
    assert!(
        redis
            .run("SET protolink:skynet:log not-a-list")
            .await
            .starts_with("+OK")
    );
    let sent = command(
        &mut b,
        json!({"type": "message", "channel": 42, "message": 3}),
    )
    .await;
    assert_eq!(
        sent["for"], "message",
        "published, though not logged: {sent}"
    );
    let log = command(&mut b, json!({"type": "log"})).await;
    let error = log["error"].as_str().unwrap();
    assert!(
        error.starts_with("Error: the message broker refused the request: ")
            && error.contains("WRONGTYPE"),
        "{log}"
    );
    for server in servers {
        terminate(server).await;
    }
}

/// A SocketCluster handshake on a raw connection.
async fn handshake(url: &str) -> RawWs {
    let mut ws = connect(url).await;
    send(
        &mut ws,
        json!({"event": "#handshake", "data": {}, "cid": 1}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["rid"], 1);
    ws
}

async fn subscribe(ws: &mut RawWs, channel: &str, cid: u64) {
    send(
        ws,
        json!({"event": "#subscribe", "data": {"channel": channel}, "cid": cid}),
    )
    .await;
    assert_eq!(recv(ws).await, json!({"rid": cid}));
}

fn publish(channel: &str, data: Value, cid: Option<u64>) -> Value {
    let mut frame = json!({"event": "#publish", "data": {"channel": channel, "data": data}});
    if let Some(cid) = cid {
        frame["cid"] = json!(cid);
    }
    frame
}

#[tokio::test]
async fn socketcluster_publishes_reach_every_server() {
    let redis = Redis::start().await;
    let one = socketcluster(&redis).await;
    let two = socketcluster(&redis).await;
    let mut here = handshake(&one.url).await;
    let mut there = handshake(&two.url).await;
    let mut publisher = handshake(&two.url).await;
    subscribe(&mut here, "news", 2).await;
    subscribe(&mut there, "news", 2).await;

    // Acknowledged (Redis took it), then delivered on both servers; a publisher subscribed to
    // the channel gets its own publish too, as in SocketCluster.
    send(&mut publisher, publish("news", json!({"t": 1}), Some(2))).await;
    assert_eq!(recv(&mut publisher).await, json!({"rid": 2}));
    let delivered = json!({"event": "#publish", "data": {"channel": "news", "data": {"t": 1}}});
    assert_eq!(recv(&mut here).await, delivered);
    assert_eq!(recv(&mut there).await, delivered);
    // Without a cid, from the other server.
    send(&mut here, publish("news", json!(2), None)).await;
    assert_eq!(recv(&mut here).await["data"]["data"], 2);
    assert_eq!(recv(&mut there).await["data"]["data"], 2);

    // Unsubscribed on one server: the other still gets what follows, this one nothing.
    send(
        &mut here,
        json!({"event": "#unsubscribe", "data": "news", "cid": 3}),
    )
    .await;
    assert_eq!(recv(&mut here).await, json!({"rid": 3}));
    send(&mut publisher, publish("news", json!(3), Some(3))).await;
    assert_eq!(recv(&mut publisher).await, json!({"rid": 3}));
    assert_eq!(recv(&mut there).await["data"]["data"], 3);
    // A round trip on `here` comes back with nothing ahead of it.
    send(
        &mut here,
        json!({"event": "sum", "data": {"a": 1, "b": 2}, "cid": 4}),
    )
    .await;
    assert_eq!(recv(&mut here).await, json!({"rid": 4, "data": 3}));
    terminate(one).await;
    terminate(two).await;
}

/// A Skynet client publishing a message every 10 ms until stopped, counting what succeeded and
/// what failed (any other answer, or a close, fails the test).
struct Steady {
    counts: Arc<(AtomicU64, AtomicU64)>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Steady {
    async fn start(url: &str) -> Steady {
        let mut ws = connect(url).await;
        let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (counts.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(10));
            while !stopped.load(Ordering::Relaxed) {
                every.tick().await;
                let reply = command(
                    &mut ws,
                    json!({"type": "message", "channel": "steady", "message": 1}),
                )
                .await;
                match reply["type"].as_str() {
                    Some("result") => seen.0.fetch_add(1, Ordering::Relaxed),
                    Some("error") => {
                        let error = reply["error"].as_str().unwrap_or_default();
                        assert!(
                            error.starts_with("Error: the message broker is "),
                            "{reply}"
                        );
                        seen.1.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => panic!("{reply}"),
                };
            }
        });
        Steady { counts, stop, task }
    }

    /// Messages that succeeded and that failed so far.
    fn counts(&self) -> (u64, u64) {
        (
            self.counts.0.load(Ordering::Relaxed),
            self.counts.1.load(Ordering::Relaxed),
        )
    }

    /// Polls until `done(succeeded, failed)` holds (within `WAIT`).
    async fn wait_until(&self, done: impl Fn(u64, u64) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (ok, failed) = self.counts();
            if done(ok, failed) {
                return;
            }
            assert!(
                !self.task.is_finished() && tokio::time::Instant::now() < deadline,
                "steady publisher: {ok} succeeded, {failed} failed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
    }
}

#[tokio::test]
async fn redis_killed_and_restarted_under_publishing_clients() {
    let mut redis = Redis::start().await;
    let sky_one = skynet(&redis, "100").await;
    let sky_two = skynet(&redis, "100").await;
    let sc_one = socketcluster(&redis).await;
    let sc_two = socketcluster(&redis).await;

    let mut sky_publisher = connect(&sky_one.url).await;
    let mut sky_near = connect(&sky_one.url).await;
    let mut sky_far = connect(&sky_two.url).await;
    open(&mut sky_near, json!(7)).await;
    open(&mut sky_far, json!(7)).await;
    open(&mut sky_far, json!(8)).await;
    let mut sc_publisher = handshake(&sc_one.url).await;
    let mut sc_far = handshake(&sc_two.url).await;
    subscribe(&mut sc_far, "news", 2).await;
    subscribe(&mut sc_far, "sport", 3).await;

    // A client publishing all along, a message every 10 ms, on its own link.
    let steady = Steady::start(&sky_one.url).await;
    steady.wait_until(|ok, _| ok > 0).await;
    redis.kill().await;
    // Publishes fail, saying why, and nobody is disconnected.
    let failed = command(
        &mut sky_publisher,
        json!({"type": "message", "channel": 7, "message": "lost"}),
    )
    .await;
    assert_eq!(failed["type"], "error", "{failed}");
    let reason = failed["error"].as_str().unwrap();
    assert!(
        reason.starts_with("Error: the message broker is unavailable"),
        "{reason}"
    );
    send(&mut sc_publisher, publish("news", json!("lost"), Some(10))).await;
    let failed = recv(&mut sc_publisher).await;
    assert_eq!(failed["rid"], 10);
    assert_eq!(failed["error"]["name"], "BrokerError", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{failed}"
    );
    // The log cannot be read either, and says so.
    let log = command(&mut sky_publisher, json!({"type": "log"})).await;
    assert_eq!(log["type"], "error", "{log}");

    steady.wait_until(|_, failed| failed > 0).await;
    redis.restart().await;
    // Publish until the subscriptions are back on every server (each publish is answered at
    // once; what is published before a server joined its channels again is lost, at most once).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let soon = Duration::from_millis(300);
    let mut n = 0;
    for channel in [7, 8] {
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "channel {channel} not restored"
            );
            n += 1;
            let reply = command(
                &mut sky_publisher,
                json!({"type": "message", "channel": channel, "message": n}),
            )
            .await;
            if reply["type"] != "result" {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let this_one = |event: &Value| event["message"] == n;
            let far = receives(&mut sky_far, this_one, soon).await;
            let near = channel != 7 || receives(&mut sky_near, this_one, soon).await;
            if far && near {
                break;
            }
        }
    }
    for channel in ["news", "sport"] {
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{channel} not restored"
            );
            n += 1;
            send(&mut sc_publisher, publish(channel, json!(n), Some(n))).await;
            let reply = recv(&mut sc_publisher).await;
            assert_eq!(reply["rid"], n);
            if reply.get("error").is_some() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let this_one = |event: &Value| event["data"] == json!({"channel": channel, "data": n});
            if receives(&mut sc_far, this_one, soon).await {
                break;
            }
        }
    }
    // The steady publisher got errors while Redis was down, then succeeded again, on one link.
    let ok_after_restart = steady.counts().0;
    steady.wait_until(|ok, _| ok > ok_after_restart).await;
    steady.stop().await;
    // Everyone is still connected: a round trip on each link (behind what came late).
    for ws in [&mut sky_publisher, &mut sky_near, &mut sky_far] {
        send(ws, json!({"type": "log", "start": 1_000_000})).await;
        assert!(receives(ws, |f| f["for"] == "log", WAIT).await);
    }
    send(
        &mut sc_far,
        json!({"event": "sum", "data": {"a": 1, "b": 1}, "cid": 99}),
    )
    .await;
    assert!(receives(&mut sc_far, |f| f == &json!({"rid": 99, "data": 2}), WAIT).await);
    for server in [sky_one, sky_two, sc_one, sc_two] {
        terminate(server).await;
    }
}

#[tokio::test]
async fn a_server_without_redis_says_so_and_exits() {
    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let output = Command::new(env!("CARGO_BIN_EXE_protolink"))
        .args([
            "serve",
            "skynet",
            "--listen",
            "127.0.0.1:0",
            "--broker",
            &url,
        ])
        .output();
    let output = tokio::time::timeout(WAIT, output).await.unwrap().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot reach Redis at {url}")),
        "{stderr}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_protolink"))
        .args([
            "serve",
            "socketcluster",
            "--listen",
            "127.0.0.1:0",
            "--broker",
            "http://x",
        ])
        .output();
    let output = tokio::time::timeout(WAIT, output).await.unwrap().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not a Redis URL"), "{stderr}");
}

#[tokio::test]
async fn a_stalled_redis_sheds_load_instead_of_queueing() {
    let redis = Redis::start().await;
    let server = skynet(&redis, "10").await;
    let pid = redis.child.id().unwrap().to_string();
    let signal = |name: &'static str| {
        let pid = pid.clone();
        async move {
            let status = Command::new("kill")
                .args([name, &pid])
                .status()
                .await
                .unwrap();
            assert!(status.success());
        }
    };
    signal("-STOP").await;
    // More messages than the broker holds for Redis (4,096 waiting): six clients pipelining a
    // thousand each (a link has at most 1,024 requests pending).
    let mut clients = Vec::new();
    for _ in 0..6 {
        let url = server.url.clone();
        clients.push(tokio::spawn(async move {
            let mut ws = connect(&url).await;
            for n in 0..1000 {
                send(
                    &mut ws,
                    json!({"type": "message", "channel": 1, "message": n}),
                )
                .await;
            }
            let mut errors = Vec::new();
            for _ in 0..1000 {
                let reply = recv(&mut ws).await;
                assert_eq!(reply["type"], "error", "Redis is stopped: {reply}");
                errors.push(reply["error"].as_str().unwrap().to_owned());
            }
            (ws, errors)
        }));
    }
    let mut links = Vec::new();
    let (mut overloaded, mut timed_out) = (0, 0);
    for client in clients {
        let (ws, errors) = client.await.unwrap();
        links.push(ws);
        for error in errors {
            if error.starts_with("Error: the message broker is overloaded") {
                overloaded += 1;
            } else if error.starts_with("Error: the message broker is unavailable") {
                timed_out += 1;
            } else {
                panic!("unexpected error {error}");
            }
        }
    }
    assert!(overloaded > 0, "no publish was refused at once");
    assert!(timed_out > 0, "no publish waited for Redis");
    signal("-CONT").await;
    // Redis answers again: publishes succeed on the same links.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let ws = &mut links[0];
    loop {
        let reply = command(
            ws,
            json!({"type": "message", "channel": 1, "message": "back"}),
        )
        .await;
        if reply["type"] == "result" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{reply}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    terminate(server).await;
}
