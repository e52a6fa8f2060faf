//! `loadgen idle`: server memory per idle connection, with heartbeats running.
//!
//! The server (a child process) is a `litecord_example` server: HELLO with `hb_interval`, a
//! password in HELLO_ACK, then the client heartbeats and the server answers each one and closes
//! links that go silent. A second child process opens the connections with a lean
//! tokio-tungstenite client that answers HELLO and heartbeats. The parent reads the server's
//! VmRSS before the connections open and after they have heartbeated for a while.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protolink::ws::WsServer;
use protolink::{Link, LinkConfig};
use protolink_protocols::litecord_example as lc;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::proc::{Proc, Result, announce, io, until_stdin_closes};
use crate::raw::ws_config;
use crate::rpc::{Gateway, PASSWORD, litecord_session};

/// Options of `loadgen idle`.
#[derive(clap::Args)]
pub(crate) struct IdleArgs {
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// Heartbeat interval the server announces, in ms.
    #[arg(long, default_value_t = 1000)]
    hb_ms: u32,
    /// Seconds to hold the connections (heartbeating) before reading the server's memory.
    #[arg(long, default_value_t = 5.0)]
    hold: f64,
    /// Servers to measure (comma-separated): `runtime` (protolink's `ws::WsServer` as shipped),
    /// `runtime-4k` (the same link driver over sockets with a 4 KiB tungstenite read buffer),
    /// `raw-4k` (a hand-written tokio-tungstenite server, one task per connection).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "runtime,runtime-4k,raw-4k"
    )]
    servers: Vec<String>,
}

/// `loadgen idle`.
pub(crate) async fn run(args: IdleArgs) -> Result<()> {
    println!(
        "idle: {} connections, heartbeat every {} ms, held {} s",
        args.conns, args.hb_ms, args.hold
    );
    println!();
    println!(
        "| server | connected | RSS before (KiB) | RSS after (KiB) | per connection (KiB) | peak (KiB) | heartbeat acks/s | closed by server |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for kind in &args.servers {
        let hb = args.hb_ms.to_string();
        let mut server = Proc::spawn_self(&["serve-idle", kind, "--hb-ms", &hb])?;
        let url = server.url().await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = server.rss_kib()?;
        let conns = args.conns.to_string();
        let mut clients = Proc::spawn_self(&["idle-clients", "--url", &url, "--conns", &conns])?;
        let ready = clients.line(Duration::from_secs(300)).await?;
        let connected: usize = field(&ready, "connected")?;
        // Count acks over the hold only.
        clients.say("report").await?;
        let start = clients.line(Duration::from_secs(10)).await?;
        tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
        let after = server.rss_kib()?;
        let peak = server.hwm_kib()?;
        clients.say("report").await?;
        let end = clients.line(Duration::from_secs(10)).await?;
        let acks = field::<u64>(&end, "acks")? - field::<u64>(&start, "acks")?;
        let closed: u64 = field(&end, "closed")?;
        let per = (after.saturating_sub(before)) as f64 / connected.max(1) as f64;
        println!(
            "| {kind} | {connected} | {before} | {after} | {per:.1} | {peak} | {:.0} | {closed} |",
            acks as f64 / args.hold
        );
        clients.stop().await;
        server.stop().await;
    }
    Ok(())
}

/// `key=value` from a report line.
fn field<T: std::str::FromStr>(line: &str, key: &str) -> Result<T> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {key}= in {line:?}").into())
}

// ---------------------------------------------------------------- servers

/// `serve-idle KIND --hb-ms N`.
pub(crate) async fn serve(kind: &str, hb_ms: u32) -> Result<()> {
    match kind {
        "runtime" => {
            let server = WsServer::<lc::Server>::bind("127.0.0.1:0")
                .await?
                .path("/")
                .max_connections(1 << 20);
            announce(&format!("ws://{}/", server.local_addr()?));
            let (shutdown, task) = server.serve(litecord_session(hb_ms), |_| Gateway);
            until_stdin_closes(async {
                task.await.map_err(io)?;
                Ok(())
            })
            .await?;
            shutdown.shutdown();
            Ok(())
        }
        "runtime-4k" => serve_runtime_small_buffer(hb_ms).await,
        "raw-4k" => serve_raw(hb_ms).await,
        other => Err(format!("unknown server {other}").into()),
    }
}

/// What `ws::WsServer` does per connection (WebSocket handshake, `Link::spawn`, a task holding
/// the connection until it closes), with tungstenite's read buffer at 4 KiB instead of its
/// 128 KiB default: the runtime's driver and writer unchanged, only the socket setting differs.
async fn serve_runtime_small_buffer(hb_ms: u32) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    announce(&format!("ws://{}/", listener.local_addr()?));
    let session = litecord_session(hb_ms);
    until_stdin_closes(async {
        loop {
            let (tcp, _) = listener.accept().await?;
            let session = session.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(ws) =
                    tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config(Some(4096))))
                        .await
                else {
                    return;
                };
                let (source, sink) = protolink::transport::split_ws(ws);
                let link: Link<lc::Server> =
                    Link::spawn(source, sink, LinkConfig::default(), session, |_| Gateway);
                link.closed().await;
            });
        }
    })
    .await
}

/// A hand-written Litecord server: one task per connection, HELLO, password check, an answer
/// to every heartbeat, close 4003 after `hb + 1000` ms of silence.
async fn serve_raw(hb_ms: u32) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    announce(&format!("ws://{}/", listener.local_addr()?));
    let hello = format!(r#"{{"op":0,"hb_interval":{hb_ms}}}"#);
    let grace = Duration::from_millis(u64::from(hb_ms) + 1000);
    until_stdin_closes(async {
        loop {
            let (tcp, _) = listener.accept().await?;
            let hello = hello.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config(Some(4096))))
                        .await
                else {
                    return;
                };
                if ws.send(Message::text(hello)).await.is_err() {
                    return;
                }
                let mut ready = false;
                let mut deadline = tokio::time::Instant::now() + grace;
                loop {
                    tokio::select! {
                        message = ws.next() => {
                            let Some(Ok(Message::Text(text))) = message else { return };
                            let Ok(frame) = serde_json::from_str::<OpFrame>(text.as_str()) else {
                                continue;
                            };
                            deadline = tokio::time::Instant::now() + grace;
                            match (frame.op, ready) {
                                (1, false) if frame.password.as_deref() == Some(PASSWORD) => ready = true,
                                (2, true) if ws.send(Message::text(r#"{"op":3}"#)).await.is_err() => {
                                    return;
                                }
                                _ => {}
                            }
                        }
                        () = tokio::time::sleep_until(deadline) => {
                            let _ = ws.close(None).await;
                            return;
                        }
                    }
                }
            });
        }
    })
    .await
}

#[derive(serde::Deserialize)]
struct OpFrame {
    op: u8,
    #[serde(default)]
    password: Option<String>,
}

// ---------------------------------------------------------------- clients

/// `idle-clients`: opens `conns` connections (256 handshakes at a time), answers HELLO,
/// heartbeats at the announced interval; prints `ready connected=N failed=N` once all are
/// open, then `acks=N closed=N` for every `report` line on stdin; exits when stdin closes.
pub(crate) async fn clients(url: &str, conns: usize) -> Result<()> {
    let acks = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let handshakes = Arc::new(Semaphore::new(256));
    for _ in 0..conns {
        let (url, acks, closed, connected, failed, handshakes) = (
            url.to_owned(),
            acks.clone(),
            closed.clone(),
            connected.clone(),
            failed.clone(),
            handshakes.clone(),
        );
        tokio::spawn(async move {
            let permit = handshakes.acquire_owned().await;
            let opened = tokio_tungstenite::connect_async_with_config(
                url.as_str(),
                Some(ws_config(Some(4096))),
                true,
            )
            .await;
            let Ok((mut ws, _)) = opened else {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            // HELLO carries the interval.
            let hb_ms = match ws.next().await {
                Some(Ok(Message::Text(t))) => serde_json::from_str::<serde_json::Value>(t.as_str())
                    .ok()
                    .and_then(|v| v.get("hb_interval").and_then(serde_json::Value::as_u64)),
                _ => None,
            };
            let Some(hb_ms) = hb_ms else {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let ack = format!(r#"{{"op":1,"password":"{PASSWORD}"}}"#);
            if ws.send(Message::text(ack)).await.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            connected.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            // Spread the first beats over one interval.
            let period = Duration::from_millis(hb_ms);
            let first = period.mul_f64(fastrand_f64());
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, period);
            let mut s = 0u64;
            loop {
                tokio::select! {
                    message = ws.next() => match message {
                        Some(Ok(Message::Text(t))) if t.as_str().contains(r#""op":3"#) => {
                            acks.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Ok(Message::Close(_)) | Err(_)) | None => {
                            closed.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        Some(Ok(_)) => {}
                    },
                    _ = tick.tick() => {
                        let beat = format!(r#"{{"op":2,"s":{s}}}"#);
                        s += 1;
                        if ws.send(Message::text(beat)).await.is_err() {
                            closed.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            }
        });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while connected.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < conns
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "ready connected={} failed={}",
        connected.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim() == "report" {
            println!(
                "acks={} closed={}",
                acks.load(Ordering::Relaxed),
                closed.load(Ordering::Relaxed)
            );
        }
    }
    Ok(())
}

/// A number in [0, 1) without a random-number dependency (spreading only).
fn fastrand_f64() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}
