//! `loadgen soak`: `protolink serve socketcluster` holding many connections for a long time.
//!
//! Every connection does the `#handshake`, subscribes to one of `channels` channels and answers
//! the server's pings. A publisher sends acknowledged `#publish` frames at a steady rate, each
//! reaching every subscriber of one channel, round robin. A churn pool of connections is closed
//! and opened again, `churn` of them every second; the other connections are the healthy ones,
//! which must never be closed. The server's resident memory is sampled every second. The run
//! fails when a healthy connection was dropped or a publish went unacknowledged.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::proc::{Proc, Result, io, protolink_binary};
use crate::socketcluster::{Client, Frame, Ping};

/// Options of `loadgen soak`.
#[derive(clap::Args)]
pub(crate) struct SoakArgs {
    /// Connections held (the churn pool among them).
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// Seconds the run lasts, warm-up included.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Seconds of warm-up (two turns of the churn pool by default): memory is judged on the
    /// samples after it.
    #[arg(long, default_value_t = 120)]
    warmup: u64,
    /// Connections that come and go (the first ones opened); the rest must stay up.
    #[arg(long, default_value_t = 1000)]
    churn_pool: usize,
    /// Connections of the pool closed and opened again every second.
    #[arg(long, default_value_t = 20)]
    churn: usize,
    /// Channels the connections subscribe to (connection `i` to channel `i % channels`).
    #[arg(long, default_value_t = 100)]
    channels: usize,
    /// Publishes per second, each to one channel in turn.
    #[arg(long, default_value_t = 20)]
    publishes: u64,
    /// Milliseconds between the server's pings (its `--ping-interval`).
    #[arg(long, default_value_t = 8000)]
    ping_interval: u64,
    /// The `protolink` binary (default: the one next to this binary).
    #[arg(long)]
    protolink: Option<PathBuf>,
}

/// Read buffer of each soak connection: they are idle most of the time.
const READ_BUFFER: usize = 4096;

/// The counters every connection shares.
#[derive(Default)]
struct Counters {
    deliveries: AtomicU64,
    acks: AtomicU64,
    failures: AtomicU64,
    reconnects: AtomicU64,
    reconnect_failures: AtomicU64,
}

/// `loadgen soak`.
pub(crate) async fn run(args: SoakArgs) -> Result<()> {
    if args.channels == 0 || args.churn_pool > args.conns || args.warmup >= args.seconds {
        return Err("need --channels > 0, --churn-pool <= --conns and --warmup < --seconds".into());
    }
    let protolink = protolink_binary(args.protolink.clone())?;
    let ping_interval = args.ping_interval.to_string();
    // Room for the churn's overlap and the publisher.
    let cap = (args.conns + args.churn * 4 + 16).to_string();
    let mut server = Proc::spawn(Command::new(&protolink).args([
        "serve",
        "socketcluster",
        "--listen",
        "127.0.0.1:0",
        "--ping-interval",
        &ping_interval,
        "--max-connections",
        &cap,
    ]))?;
    let url = server.url().await?;
    server.drain(|_| {});
    let idle_rss = server.rss_kib()?;
    println!(
        "soak: {} connections on {} channels ({} of them churning, {} closed and reopened per \
         second), {} publishes/s, pings every {} ms, {} s ({} s warm-up)",
        args.conns,
        args.channels,
        args.churn_pool,
        args.churn,
        args.publishes,
        args.ping_interval,
        args.seconds,
        args.warmup
    );

    let counters = Arc::new(Counters::default());
    let ping = Ping::V2;
    let opened = Instant::now();
    let handshakes = Arc::new(Semaphore::new(256));
    let mut openings = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let (url, counters, handshakes) = (url.clone(), counters.clone(), handshakes.clone());
        let channel = i % args.channels;
        openings.push(tokio::spawn(async move {
            let _permit = handshakes.acquire_owned().await.map_err(io)?;
            subscriber(&url, ping, channel, counters).await
        }));
    }
    let mut readers = Vec::with_capacity(args.conns);
    for opening in openings {
        readers.push(opening.await.map_err(io)??);
    }
    let open_seconds = opened.elapsed().as_secs_f64();
    let healthy: Vec<JoinHandle<()>> = readers.split_off(args.churn_pool);
    let pool = Arc::new(Mutex::new(readers));
    let connected_rss = server.rss_kib()?;
    println!(
        "opened {} connections in {open_seconds:.1} s; server RSS {idle_rss} KiB idle, \
         {connected_rss} KiB connected",
        args.conns
    );

    let publisher = Client::connect_with(&url, ping, 64 << 10).await?;
    let out = publisher.out.clone();
    let on_reply = counters.clone();
    let publisher_reader = publisher.read(move |frame| match frame {
        Frame::Reply { error: false, .. } => {
            on_reply.acks.fetch_add(1, Ordering::Relaxed);
        }
        Frame::Reply { .. } | Frame::Invalid => {
            on_reply.failures.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    });

    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut second = tokio::time::interval(Duration::from_secs(1));
    let publish_every = Duration::from_secs_f64(1.0 / args.publishes.max(1) as f64);
    let mut publish_tick = tokio::time::interval(publish_every);
    let (mut sent, mut next_churn) = (0u64, 0usize);
    let cpu_start = server.cpu_seconds()?;
    while Instant::now() < end {
        tokio::select! {
            _ = second.tick() => {
                let t = start.elapsed().as_secs_f64();
                samples.push((t, server.rss_kib()?));
                churn(&args, &url, ping, &pool, &mut next_churn, &counters);
                if samples.len() % 60 == 0 {
                    eprintln!(
                        "  {t:>5.0} s: RSS {} KiB, {} deliveries, {} acks, {} reconnects",
                        samples.last().map_or(0, |s| s.1),
                        counters.deliveries.load(Ordering::Relaxed),
                        counters.acks.load(Ordering::Relaxed),
                        counters.reconnects.load(Ordering::Relaxed),
                    );
                }
            }
            _ = publish_tick.tick(), if args.publishes > 0 => {
                let channel = sent as usize % args.channels;
                // Invoke ids start at 2 (1 was the handshake).
                let cid = sent + 2;
                let frame = format!(
                    r##"{{"event":"#publish","data":{{"channel":"soak-{channel}","data":"tick {sent}"}},"cid":{cid}}}"##
                );
                out.send(frame).await.map_err(io)?;
                sent += 1;
            }
        }
    }
    let cpu = server.cpu_seconds()? - cpu_start;
    // The last acknowledgements are on their way.
    let settle = Instant::now() + Duration::from_secs(10);
    while counters.acks.load(Ordering::Relaxed) < sent && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dropped = healthy.iter().filter(|r| r.is_finished()).count();
    let publisher_gone = publisher_reader.is_finished();
    for reader in healthy {
        reader.abort();
    }
    publisher_reader.abort();
    for reader in lock(&pool).drain(..) {
        reader.abort();
    }
    let peak = server.hwm_kib()?;
    server.stop().await;

    let report = Report::new(&samples, args.warmup as f64);
    let acks = counters.acks.load(Ordering::Relaxed);
    let failures = counters.failures.load(Ordering::Relaxed);
    println!();
    println!(
        "| server RSS (KiB) | at warm-up end | min after | max after | at the end | trend after warm-up (KiB/min) | trend, second half | peak |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| protolink serve socketcluster | {} | {} | {} | {} | {:+.1} | {:+.1} | {peak} |",
        report.at_warmup,
        report.min,
        report.max,
        report.last,
        report.slope_per_minute,
        report.late_slope_per_minute
    );
    println!();
    println!(
        "| healthy connections | dropped | reconnects (failed) | publishes (acked, errors) | deliveries | server CPU (s) |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {dropped} | {} ({}) | {sent} ({acks}, {failures}) | {} | {cpu:.1} |",
        args.conns - args.churn_pool,
        counters.reconnects.load(Ordering::Relaxed),
        counters.reconnect_failures.load(Ordering::Relaxed),
        counters.deliveries.load(Ordering::Relaxed),
    );
    if dropped > 0 || publisher_gone {
        return Err(format!(
            "{dropped} healthy connections were dropped{}",
            if publisher_gone {
                ", and the publisher"
            } else {
                ""
            }
        )
        .into());
    }
    if acks < sent || failures > 0 {
        return Err(format!("{sent} publishes, {acks} acknowledged, {failures} errors").into());
    }
    Ok(())
}

/// Opens one subscriber: handshake, `#subscribe`, then a reader that counts deliveries.
async fn subscriber(
    url: &str,
    ping: Ping,
    channel: usize,
    counters: Arc<Counters>,
) -> Result<JoinHandle<()>> {
    let mut client = Client::connect_with(url, ping, READ_BUFFER).await?;
    let subscribe =
        format!(r##"{{"event":"#subscribe","data":{{"channel":"soak-{channel}"}},"cid":2}}"##);
    client.request(2, &subscribe).await?;
    Ok(client.read(move |frame| match frame {
        Frame::Delivery => {
            counters.deliveries.fetch_add(1, Ordering::Relaxed);
        }
        Frame::Invalid => {
            counters.failures.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }))
}

/// Closes the next `churn` connections of the pool (round robin) and opens them again, each in
/// a task of its own.
fn churn(
    args: &SoakArgs,
    url: &str,
    ping: Ping,
    pool: &Arc<Mutex<Vec<JoinHandle<()>>>>,
    next: &mut usize,
    counters: &Arc<Counters>,
) {
    let size = lock(pool).len();
    if size == 0 {
        return;
    }
    for _ in 0..args.churn.min(size) {
        let slot = *next % size;
        *next += 1;
        // Dropping the reader drops the connection: its writer sends a close frame.
        lock(pool)[slot].abort();
        let (url, pool, counters) = (url.to_owned(), pool.clone(), counters.clone());
        let channel = slot % args.channels;
        tokio::spawn(async move {
            match subscriber(&url, ping, channel, counters.clone()).await {
                Ok(reader) => {
                    counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    lock(&pool)[slot] = reader;
                }
                Err(e) => {
                    if counters.reconnect_failures.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("  a reconnect failed: {e}");
                    }
                }
            }
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The memory samples after the warm-up.
struct Report {
    at_warmup: u64,
    min: u64,
    max: u64,
    last: u64,
    /// Least-squares slope of RSS over time after the warm-up.
    slope_per_minute: f64,
    /// The same over the second half of the samples after the warm-up.
    late_slope_per_minute: f64,
}

impl Report {
    fn new(samples: &[(f64, u64)], warmup: f64) -> Report {
        let after: Vec<(f64, u64)> = samples.iter().copied().filter(|s| s.0 >= warmup).collect();
        let at_warmup = after.first().map_or(0, |s| s.1);
        let min = after.iter().map(|s| s.1).min().unwrap_or(0);
        let max = after.iter().map(|s| s.1).max().unwrap_or(0);
        let last = after.last().map_or(0, |s| s.1);
        let late = &after[after.len() / 2..];
        Report {
            at_warmup,
            min,
            max,
            last,
            slope_per_minute: slope(&after) * 60.0,
            late_slope_per_minute: slope(late) * 60.0,
        }
    }
}

/// The least-squares slope of memory over time, in KiB per second.
fn slope(samples: &[(f64, u64)]) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let n = samples.len() as f64;
    let mean_t = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let mean_m = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
    let cov: f64 = samples
        .iter()
        .map(|s| (s.0 - mean_t) * (s.1 as f64 - mean_m))
        .sum();
    let var: f64 = samples.iter().map(|s| (s.0 - mean_t).powi(2)).sum();
    if var > 0.0 { cov / var } else { 0.0 }
}
