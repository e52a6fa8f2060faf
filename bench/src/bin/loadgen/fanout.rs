//! `loadgen fanout`: one publisher, many subscribers on one Skynet channel.
//!
//! Against the reference server (`protolink serve skynet`, a child process) and a plain
//! tokio-tungstenite broadcast server (this binary's `serve-broadcast`, a child process) that
//! speaks the same subset: `open` → result, `message` → `message` events to the channel's other
//! listeners and a result to the sender. The publisher and subscribers (lean tokio-tungstenite
//! clients) run in this process. The publisher keeps at most `window` messages ahead of the
//! slowest subscriber, so no server queue overflows and both servers get the same offered load.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use protolink_protocols::skynet as sk;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;

use crate::proc::{Proc, Result, announce, io, spread, until_stdin_closes};
use crate::raw::{SEND_QUEUE, write_loop, ws_config};

/// Options of `loadgen fanout`.
#[derive(clap::Args)]
pub(crate) struct FanoutArgs {
    /// Subscribers on the channel.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Measured seconds per server and round.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Unmeasured seconds before each measurement.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Rounds, each measuring both servers back to back in alternating order.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Messages the publisher may be ahead of the slowest subscriber.
    #[arg(long, default_value_t = 256)]
    window: u64,
    /// The `protolink` binary (build it with `cargo build --release -p protolink-cli`); by
    /// default the one beside this binary.
    #[arg(long)]
    protolink: Option<PathBuf>,
}

const OPEN: &str = r#"{"type":"open","channel":7}"#;
const MESSAGE: &str =
    r#"{"type":"message","channel":7,"message":"the quick brown fox jumps over the lazy dog"}"#;

/// `loadgen fanout`.
pub(crate) async fn run(args: FanoutArgs) -> Result<()> {
    let protolink = match args.protolink.clone() {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .ok_or("no directory")?
            .join("protolink"),
    };
    if !protolink.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release -p protolink-cli` first",
            protolink.display()
        )
        .into());
    }
    let mut servers = vec![
        Proc::spawn(Command::new(&protolink).args(["serve", "skynet", "--listen", "127.0.0.1:0"]))?,
        Proc::spawn_self(&["serve-broadcast"])?,
    ];
    let names = ["protolink serve skynet", "tokio-tungstenite broadcast"];
    let mut urls = Vec::new();
    for server in &mut servers {
        urls.push(server.url().await?);
    }
    let idle: Vec<u64> = servers
        .iter()
        .map(Proc::rss_kib)
        .collect::<Result<Vec<_>>>()?;
    println!(
        "fanout: 1 publisher, {} subscribers on one channel, {} rounds of {} s (+{} s warm-up), window {}",
        args.subscribers, args.rounds, args.seconds, args.warmup, args.window
    );
    let mut rates = vec![Vec::new(); servers.len()];
    let mut connected_rss = vec![Vec::new(); servers.len()];
    let mut loaded_rss = vec![Vec::new(); servers.len()];
    for round in 0..args.rounds {
        let mut line = format!("round {}:", round + 1);
        for i in 0..servers.len() {
            let i = (i + round) % servers.len();
            let result = measure(&urls[i], &servers[i], &args).await?;
            line.push_str(&format!(
                "  {} {:.0} deliveries/s (RSS {} KiB)",
                names[i], result.rate, result.loaded_rss
            ));
            rates[i].push(result.rate);
            connected_rss[i].push(result.connected_rss as f64);
            loaded_rss[i].push(result.loaded_rss as f64);
        }
        println!("{line}");
    }
    println!();
    println!(
        "| server | deliveries/s (median) | min–max | RSS idle (KiB) | RSS with {} subscribers (KiB, median) | RSS under load (KiB, median) | peak RSS (KiB) |",
        args.subscribers
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, name) in names.iter().enumerate() {
        let (median, min, max) = spread(&rates[i]);
        println!(
            "| {name} | {median:.0} | {min:.0}–{max:.0} | {} | {:.0} | {:.0} | {} |",
            idle[i],
            spread(&connected_rss[i]).0,
            spread(&loaded_rss[i]).0,
            servers[i].hwm_kib()?
        );
    }
    let ratios: Vec<f64> = rates[0].iter().zip(&rates[1]).map(|(p, c)| p / c).collect();
    let (median, min, max) = spread(&ratios);
    println!();
    println!("| ratio | median | min–max (per round) |");
    println!("|---|---|---|");
    println!("| protolink ÷ ceiling | {median:.2}× | {min:.2}–{max:.2} |");
    for server in servers {
        server.stop().await;
    }
    Ok(())
}

struct Measured {
    rate: f64,
    connected_rss: u64,
    loaded_rss: u64,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(url: &str) -> Result<Ws> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config(Some(64 << 10))), true)
            .await?;
    ws.send(Message::text(OPEN)).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains(r#""for":"open""#) => return Ok(ws),
            Some(Ok(Message::Text(t))) => return Err(format!("open failed: {t}").into()),
            Some(Ok(_)) => {}
            other => return Err(format!("open failed: {other:?}").into()),
        }
    }
}

/// One run against one server: fresh connections, warm-up, then deliveries per second.
async fn measure(url: &str, server: &Proc, args: &FanoutArgs) -> Result<Measured> {
    let total = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let mut counts = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..args.subscribers {
        let mut ws = open(url).await?;
        let count = Arc::new(AtomicU64::new(0));
        counts.push(count.clone());
        let (total, progress) = (total.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Text(t) = message {
                    if t.as_str().starts_with(r#"{"type":"message""#)
                        || t.as_str().contains(r#""type":"message""#)
                    {
                        count.fetch_add(1, Ordering::Relaxed);
                        total.fetch_add(1, Ordering::Relaxed);
                        progress.notify_one();
                    } else {
                        eprintln!("subscriber got {t}");
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let connected_rss = server.rss_kib()?;
    let publisher = open(url).await?;
    let (mut sink, mut source) = publisher.split();
    let errors = Arc::new(AtomicU64::new(0));
    let errors_seen = errors.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(Ok(message)) = source.next().await {
            if let Message::Text(t) = message {
                if t.as_str().contains(r#""type":"error""#) {
                    errors_seen.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let window = args.window;
    let publish = tokio::spawn(async move {
        let mut sent = 0u64;
        while !stopping.load(Ordering::Relaxed) {
            let slowest = counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .min()
                .unwrap_or(sent);
            let room = (slowest + window).saturating_sub(sent);
            if room == 0 {
                // Woken by deliveries; the timeout only guards against a lost wake-up.
                let _ = tokio::time::timeout(Duration::from_millis(5), progress.notified()).await;
                continue;
            }
            for _ in 0..room.min(64) {
                sink.feed(Message::text(MESSAGE)).await.map_err(io)?;
                sent += 1;
            }
            sink.flush().await.map_err(io)?;
        }
        let _ = sink.close().await;
        Ok::<u64, crate::proc::Error>(sent)
    });
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let (c0, t0) = (total.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    let (c1, t1) = (total.load(Ordering::Relaxed), Instant::now());
    let loaded_rss = server.rss_kib()?;
    stop.store(true, Ordering::Relaxed);
    let _sent = publish.await.map_err(io)??;
    for task in tasks {
        task.abort();
    }
    let errors = errors.load(Ordering::Relaxed);
    if errors > 0 {
        return Err(format!("the server answered {errors} messages with an error").into());
    }
    // Let the server drop the connections before the next run.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(Measured {
        rate: (c1 - c0) as f64 / (t1 - t0).as_secs_f64(),
        connected_rss,
        loaded_rss,
    })
}

// ---------------------------------------------------------------- the ceiling

/// Which frame it is.
#[derive(Deserialize)]
struct Tagged<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

#[derive(Serialize)]
struct OpenResult<'a> {
    channels: &'a [sk::Channel],
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "for")]
    answers: &'static str,
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    sent: &'a sk::SentMessage,
}

#[derive(Serialize)]
struct SentResult<'a> {
    #[serde(flatten)]
    sent: &'a sk::SentMessage,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "for")]
    answers: &'static str,
}

type Subscribers = HashMap<String, Vec<(u64, mpsc::Sender<String>)>>;

/// `serve-broadcast`: the plain server.
pub(crate) async fn serve_broadcast() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    announce(&format!("ws://{}/connect", listener.local_addr()?));
    let topics: Arc<RwLock<Subscribers>> = Arc::default();
    let next = Arc::new(AtomicU64::new(1));
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    until_stdin_closes(async {
        loop {
            let (tcp, _) = listener.accept().await?;
            let (topics, next) = (topics.clone(), next.clone());
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                if let Ok(ws) =
                    tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config(None))).await
                {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    broadcast_connection(ws, id, &topics, &next, epoch).await;
                    let mut map = topics.write().unwrap_or_else(|e| e.into_inner());
                    for subscribers in map.values_mut() {
                        subscribers.retain(|(s, _)| *s != id);
                    }
                }
            });
        }
    })
    .await
}

async fn broadcast_connection(
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    id: u64,
    topics: &RwLock<Subscribers>,
    counter: &AtomicU64,
    epoch: u128,
) {
    let (sink, mut source) = ws.split();
    let (tx, rx) = mpsc::channel::<String>(SEND_QUEUE);
    tokio::spawn(write_loop(sink, rx));
    let mut channels: Vec<sk::Channel> = Vec::new();
    while let Some(Ok(message)) = source.next().await {
        let Message::Text(text) = message else {
            if message.is_close() {
                return;
            }
            continue;
        };
        let text = text.as_str();
        let Ok(tagged) = serde_json::from_str::<Tagged<'_>>(text) else {
            continue;
        };
        let reply = match tagged.kind.as_ref() {
            "open" => {
                let Ok(open) = serde_json::from_str::<sk::Open>(text) else {
                    continue;
                };
                if !channels.contains(&open.channel) {
                    let topic = serde_json::to_string(&open.channel).unwrap_or_default();
                    topics
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(topic)
                        .or_default()
                        .push((id, tx.clone()));
                    channels.push(open.channel);
                }
                serde_json::to_string(&OpenResult {
                    channels: &channels,
                    kind: "result",
                    answers: "open",
                })
            }
            "message" => {
                let Ok(mut message) = serde_json::from_str::<sk::Message>(text) else {
                    continue;
                };
                message.extra.remove("type");
                if !channels.contains(&message.channel) {
                    continue;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let sent = sk::SentMessage {
                    channel: message.channel,
                    message: message.message,
                    id: format!("{epoch:x}{n:08x}"),
                    time: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                    extra: message.extra,
                };
                let Ok(frame) = serde_json::to_string(&Event {
                    kind: "message",
                    sent: &sent,
                }) else {
                    continue;
                };
                let topic = serde_json::to_string(&sent.channel).unwrap_or_default();
                {
                    let map = topics.read().unwrap_or_else(|e| e.into_inner());
                    for (subscriber, out) in map.get(&topic).into_iter().flatten() {
                        if *subscriber != id {
                            // A subscriber that does not keep up loses the frame (the
                            // benchmark's window keeps this from happening).
                            let _ = out.try_send(frame.clone());
                        }
                    }
                }
                serde_json::to_string(&SentResult {
                    sent: &sent,
                    kind: "result",
                    answers: "message",
                })
            }
            _ => continue,
        };
        let Ok(reply) = reply else { continue };
        if tx.send(reply).await.is_err() {
            return;
        }
    }
}
