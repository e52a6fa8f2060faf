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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use protolink_protocols::skynet as sk;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::proc::{
    Proc, Result, announce, io, protolink_binary, ratio_spread, spread, until_stdin_closes, window,
};
use crate::pubsub::{Deliveries, RunArgs};
use crate::raw::{ClientWs, SEND_QUEUE, dial, write_loop, ws_config};

/// Options of `loadgen fanout`.
#[derive(clap::Args)]
pub(crate) struct FanoutArgs {
    /// What every pub/sub load run takes.
    #[command(flatten)]
    run: RunArgs,
}

const OPEN: &str = r#"{"type":"open","channel":7}"#;
const MESSAGE: &str =
    r#"{"type":"message","channel":7,"message":"the quick brown fox jumps over the lazy dog"}"#;

/// `loadgen fanout`.
pub(crate) async fn run(args: FanoutArgs) -> Result<()> {
    let protolink = protolink_binary(args.run.protolink.clone())?;
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
        args.run.subscribers, args.run.rounds, args.run.seconds, args.run.warmup, args.run.window
    );
    let mut rates = vec![Vec::new(); servers.len()];
    let mut connected_rss = vec![Vec::new(); servers.len()];
    let mut loaded_rss = vec![Vec::new(); servers.len()];
    for round in 0..args.run.rounds {
        let mut line = format!("round {}:", round + 1);
        for i in 0..servers.len() {
            let i = (i + round) % servers.len();
            let result = measure(&[&urls[i]], &urls[i], &[&servers[i]], &args.run).await?;
            line.push_str(&format!(
                "  {} {:.0} deliveries/s (RSS {} KiB)",
                names[i], result.rate, result.loaded_rss[0]
            ));
            rates[i].push(result.rate);
            connected_rss[i].push(result.connected_rss[0] as f64);
            loaded_rss[i].push(result.loaded_rss[0] as f64);
        }
        println!("{line}");
    }
    println!();
    println!(
        "| server | deliveries/s (median) | min–max | RSS idle (KiB) | RSS with {} subscribers (KiB, median) | RSS under load (KiB, median) | peak RSS (KiB) |",
        args.run.subscribers
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
    let (median, min, max) = ratio_spread(&rates[0], &rates[1]);
    println!();
    println!("| ratio | median | min–max (per round) |");
    println!("|---|---|---|");
    println!("| protolink ÷ ceiling | {median:.2}× | {min:.2}–{max:.2} |");
    for server in servers {
        server.stop().await;
    }
    Ok(())
}

/// A fan-out run against one server: deliveries per second, and the server's memory.
pub(crate) struct Measured {
    pub(crate) rate: f64,
    /// With the subscribers connected, before the load.
    pub(crate) connected_rss: u64,
    /// At the end of the measured window.
    pub(crate) loaded_rss: u64,
}

async fn open(url: &str) -> Result<ClientWs> {
    let mut ws = dial(url).await?;
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

/// A fan-out run over one or more server processes.
pub(crate) struct Spread {
    /// Deliveries per second, over all subscribers.
    pub(crate) rate: f64,
    /// Deliveries in the measured window.
    pub(crate) deliveries: u64,
    /// The measured window's length (seconds).
    pub(crate) seconds: f64,
    /// Each process's RSS with the subscribers connected, before the load (KiB).
    pub(crate) connected_rss: Vec<u64>,
    /// Each process's RSS at the end of the measured window (KiB).
    pub(crate) loaded_rss: Vec<u64>,
    /// Each process's CPU time in the measured window (seconds, all threads).
    pub(crate) cpu: Vec<f64>,
}

/// One run: fresh connections (subscribers spread round-robin over `subscribe`, the publisher
/// on `publish`), warm-up, then deliveries per second, and the CPU and memory of `procs`.
pub(crate) async fn measure(
    subscribe: &[&str],
    publish: &str,
    procs: &[&Proc],
    args: &RunArgs,
) -> Result<Spread> {
    let mut deliveries = Deliveries::default();
    let mut tasks = Vec::new();
    for n in 0..args.subscribers {
        let mut ws = open(subscribe[n % subscribe.len()]).await?;
        let received = deliveries.subscriber();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Text(t) = message {
                    if t.as_str().starts_with(r#"{"type":"message""#)
                        || t.as_str().contains(r#""type":"message""#)
                    {
                        received.one();
                    } else {
                        eprintln!("subscriber got {t}");
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let connected_rss = procs
        .iter()
        .map(|p| p.rss_kib())
        .collect::<Result<Vec<_>>>()?;
    let publisher = open(publish).await?;
    let (sink, mut source) = publisher.split();
    let (out, rx) = mpsc::channel::<String>(SEND_QUEUE);
    tasks.push(tokio::spawn(write_loop(sink, rx)));
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
    let publishing = tokio::spawn(
        deliveries
            .pacer(args.window, stop.clone())
            .run(out, |_| MESSAGE.to_owned()),
    );
    let sample = || {
        let cpu: Vec<f64> = procs.iter().filter_map(|p| p.cpu_seconds().ok()).collect();
        (deliveries.total(), cpu)
    };
    let ((d0, cpu0), (d1, cpu1), elapsed) = window(args.warmup, args.seconds, sample).await;
    let loaded_rss = procs
        .iter()
        .map(|p| p.rss_kib())
        .collect::<Result<Vec<_>>>()?;
    stop.store(true, Ordering::Relaxed);
    let _sent = publishing.await.map_err(io)??;
    for task in tasks {
        task.abort();
    }
    let errors = errors.load(Ordering::Relaxed);
    if errors > 0 {
        return Err(format!("the server answered {errors} messages with an error").into());
    }
    // Let the server drop the connections before the next run.
    tokio::time::sleep(Duration::from_millis(300)).await;
    if cpu0.len() != procs.len() || cpu1.len() != procs.len() {
        return Err("cannot read a process's CPU time".into());
    }
    let deliveries = d1.saturating_sub(d0);
    Ok(Spread {
        rate: deliveries as f64 / elapsed,
        deliveries,
        seconds: elapsed,
        connected_rss,
        loaded_rss,
        cpu: cpu1.iter().zip(&cpu0).map(|(b, a)| b - a).collect(),
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
