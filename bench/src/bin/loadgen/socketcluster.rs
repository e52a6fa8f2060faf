//! `loadgen socketcluster`: `protolink serve socketcluster` against the real socketcluster-server
//! 20.x (`interop/sc-server.js` under Node), each a child process, loaded by the same lean
//! tokio-tungstenite clients in this process speaking raw SocketCluster frames.
//!
//! Two measurements, side by side in every round:
//!
//! - invoke round trips per second: `sum {a: 2, b: 3}` over one connection, `inflight` requests
//!   in flight (each reply sends the next request);
//! - pub/sub deliveries per second: `subscribers` connections subscribed to one channel, one
//!   publisher sending acknowledged `#publish` frames, never more than `window` messages ahead
//!   of the slowest subscriber.
//!
//! Every connection does the `#handshake` first, answers the server's pings (`""` with `""` in
//! protocol version 2, `#1` with `#2` in version 1) and answers the `askClient` invoke the
//! Node server sends on every new connection.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::fanout::{Measured, Spread};
use crate::proc::{Proc, Result, io, protolink_binary, ratio_spread, spread, window};
use crate::pubsub::{Deliveries, RunArgs};
use crate::raw::{ClientWs, SEND_QUEUE, dial_with, write_loop};

/// Options of `loadgen socketcluster`.
#[derive(clap::Args)]
pub(crate) struct SocketclusterArgs {
    /// Invokes in flight on the one invoke connection.
    #[arg(long, default_value_t = 64)]
    inflight: u64,
    /// What every pub/sub load run takes.
    #[command(flatten)]
    run: RunArgs,
    /// The SocketCluster protocol version both servers speak: 1 (`#1` / `#2` pings) or 2
    /// (empty frames).
    #[arg(long, default_value_t = 2)]
    protocol_version: u8,
    /// The Node.js executable that runs `interop/sc-server.js`.
    #[arg(long, default_value = "node")]
    node: PathBuf,
}

const NAMES: [&str; 2] = ["protolink serve socketcluster", "socketcluster-server 20.x"];
const HANDSHAKE: &str = r##"{"event":"#handshake","data":{"authToken":null},"cid":1}"##;
const SUBSCRIBE: &str = r##"{"event":"#subscribe","data":{"channel":"bench"},"cid":2}"##;
/// How every delivery of a publish on the channel starts, from both servers.
const DELIVERY: &str = r##"{"event":"#publish","data":{"channel":"bench","##;

fn invoke(cid: u64) -> String {
    format!(r#"{{"event":"sum","data":{{"a":2,"b":3}},"cid":{cid}}}"#)
}

fn publish(cid: u64) -> String {
    format!(
        r##"{{"event":"#publish","data":{{"channel":"bench","data":"the quick brown fox jumps over the lazy dog"}},"cid":{cid}}}"##
    )
}

/// `loadgen socketcluster`.
pub(crate) async fn run(args: SocketclusterArgs) -> Result<()> {
    if !(1..=SEND_QUEUE as u64 / 2).contains(&args.inflight) {
        return Err(format!("--inflight must be between 1 and {}", SEND_QUEUE / 2).into());
    }
    if args.run.subscribers == 0 {
        return Err("--subscribers must be at least 1".into());
    }
    let ping = match args.protocol_version {
        1 => Ping::V1,
        2 => Ping::V2,
        _ => return Err("--protocol-version must be 1 or 2".into()),
    };
    let protolink = protolink_binary(args.run.protolink.clone())?;
    let interop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop");
    if !interop.join("node_modules/socketcluster-server").is_dir() {
        return Err(format!(
            "{} has no node_modules/socketcluster-server: run `npm ci --prefix interop` first",
            interop.display()
        )
        .into());
    }
    let version = args.protocol_version.to_string();
    let ours = Proc::spawn(Command::new(&protolink).args([
        "serve",
        "socketcluster",
        "--listen",
        "127.0.0.1:0",
        "--protocol-version",
        &version,
    ]))?;
    let theirs = Proc::spawn(
        Command::new(&args.node)
            .arg(interop.join("sc-server.js"))
            .args(["--port", "0", "--protocol-version", &version]),
    )
    .map_err(|e| format!("cannot start {}: {e}", args.node.display()))?;
    let mut servers = [ours, theirs];
    let mut urls = Vec::new();
    for server in &mut servers {
        urls.push(server.url().await?);
        // The Node server logs a JSON line per connection event; only errors are of interest.
        server.drain(|line| {
            if line.contains("Error") {
                eprintln!("server: {line}");
            }
        });
    }
    let idle: Vec<u64> = servers
        .iter()
        .map(Proc::rss_kib)
        .collect::<Result<Vec<_>>>()?;
    println!(
        "socketcluster: protocol version {}, {} rounds of {} s (+{} s warm-up) per server and measurement; \
         invoke with {} in flight on 1 connection; pub/sub 1 publisher → {} subscribers, window {}",
        args.protocol_version,
        args.run.rounds,
        args.run.seconds,
        args.run.warmup,
        args.inflight,
        args.run.subscribers,
        args.run.window
    );
    let mut invokes = [Vec::new(), Vec::new()];
    let mut fanouts: [Vec<Measured>; 2] = [Vec::new(), Vec::new()];
    // The servers' CPU use in each measured window, in cores.
    let mut invoke_cpu = [Vec::new(), Vec::new()];
    let mut fanout_cpu = [Vec::new(), Vec::new()];
    for round in 0..args.run.rounds {
        // Alternate the order between rounds: load on the machine comes and goes.
        let order = [round % 2, (round + 1) % 2];
        let mut line = format!("round {}:", round + 1);
        for i in order {
            let (per_second, cpu) = measure_invoke(&urls[i], &servers[i], ping, &args).await?;
            line.push_str(&format!(
                "  {} {per_second:.0} invokes/s (CPU {:.0} %);",
                NAMES[i],
                cpu * 100.0
            ));
            invokes[i].push(per_second);
            invoke_cpu[i].push(cpu);
        }
        for i in order {
            let (measured, cpu) = measure_pubsub(&urls[i], &servers[i], ping, &args).await?;
            line.push_str(&format!(
                "  {} {:.0} deliveries/s (CPU {:.0} %, RSS {} KiB);",
                NAMES[i],
                measured.rate,
                cpu * 100.0,
                measured.loaded_rss
            ));
            fanouts[i].push(measured);
            fanout_cpu[i].push(cpu);
        }
        println!("{}", line.trim_end_matches(';'));
    }
    let deliveries: Vec<Vec<f64>> = fanouts
        .iter()
        .map(|runs| runs.iter().map(|m| m.rate).collect())
        .collect();
    // The server's CPU time per operation in each round, in µs.
    let per_op = |cpu: &[f64], rates: &[f64]| -> Vec<f64> {
        cpu.iter().zip(rates).map(|(c, r)| c / r * 1e6).collect()
    };
    let invoke_us = [0, 1].map(|i| per_op(&invoke_cpu[i], &invokes[i]));
    let delivery_us = [0, 1].map(|i| per_op(&fanout_cpu[i], &deliveries[i]));
    println!();
    println!(
        "| server | invokes/s (median) | min–max | server CPU | CPU µs per invoke | deliveries/s (median) | min–max | server CPU | CPU µs per delivery |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, name) in NAMES.iter().enumerate() {
        let (inv, inv_min, inv_max) = spread(&invokes[i]);
        let (del, del_min, del_max) = spread(&deliveries[i]);
        println!(
            "| {name} | {inv:.0} | {inv_min:.0}–{inv_max:.0} | {:.0} % | {:.2} | {del:.0} | {del_min:.0}–{del_max:.0} | {:.0} % | {:.3} |",
            spread(&invoke_cpu[i]).0 * 100.0,
            spread(&invoke_us[i]).0,
            spread(&fanout_cpu[i]).0 * 100.0,
            spread(&delivery_us[i]).0,
        );
    }
    println!();
    println!(
        "| server | RSS idle (KiB) | RSS with {} subscribers (KiB, median) | RSS under pub/sub load (KiB, median) | peak RSS (KiB) |",
        args.run.subscribers
    );
    println!("|---|---|---|---|---|");
    for (i, name) in NAMES.iter().enumerate() {
        let median_kib = |pick: fn(&Measured) -> u64| {
            let values: Vec<f64> = fanouts[i].iter().map(|m| pick(m) as f64).collect();
            spread(&values).0
        };
        // VmHWM is only brought up to date now and then, so it can lag a reading of VmRSS.
        let peak = fanouts[i]
            .iter()
            .map(|m| m.loaded_rss)
            .fold(servers[i].hwm_kib()?, u64::max);
        println!(
            "| {name} | {} | {:.0} | {:.0} | {peak} |",
            idle[i],
            median_kib(|m| m.connected_rss),
            median_kib(|m| m.loaded_rss),
        );
    }
    println!();
    println!("| ratio | median | min–max (per round) | target |");
    println!("|---|---|---|---|");
    let rows = [
        (
            format!(
                "invoke round trips/s, {} in flight: protolink ÷ socketcluster-server",
                args.inflight
            ),
            ratio_spread(&invokes[0], &invokes[1]),
            "≥ 5×",
        ),
        (
            format!(
                "pub/sub deliveries/s, 1 → {}: protolink ÷ socketcluster-server",
                args.run.subscribers
            ),
            ratio_spread(&deliveries[0], &deliveries[1]),
            "≥ 5×",
        ),
        (
            "server CPU per invoke: socketcluster-server ÷ protolink".to_owned(),
            ratio_spread(&invoke_us[1], &invoke_us[0]),
            "—",
        ),
        (
            "server CPU per delivery: socketcluster-server ÷ protolink".to_owned(),
            ratio_spread(&delivery_us[1], &delivery_us[0]),
            "—",
        ),
    ];
    for (what, (median, min, max), target) in rows {
        println!("| {what} | {median:.2}× | {min:.2}–{max:.2} | {target} |");
    }
    for server in servers {
        server.stop().await;
    }
    Ok(())
}

/// Events per second of `count`, and the server's CPU use over the same window (in cores).
async fn rate_and_cpu(
    server: &Proc,
    count: impl Fn() -> u64,
    args: &SocketclusterArgs,
) -> Result<(f64, f64)> {
    let sample = || (count(), server.cpu_seconds());
    let ((c0, cpu0), (c1, cpu1), elapsed) = window(args.run.warmup, args.run.seconds, sample).await;
    Ok((
        c1.saturating_sub(c0) as f64 / elapsed,
        (cpu1? - cpu0?) / elapsed,
    ))
}

/// Invoke round trips per second over one fresh connection, and the server's CPU use.
async fn measure_invoke(
    url: &str,
    server: &Proc,
    ping: Ping,
    args: &SocketclusterArgs,
) -> Result<(f64, f64)> {
    let client = Client::connect(url, ping).await?;
    let out = client.out.clone();
    let inflight = args.inflight;
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Request ids: slot s carries 2 + s, then 2 + s + inflight, ... (1 was the handshake), so a
    // reply's slot is known from its id alone.
    let mut expected: Vec<u64> = (2..2 + inflight).collect();
    for &cid in &expected {
        out.send(invoke(cid)).await.map_err(io)?;
    }
    let (counted, failures, stopping) = (done.clone(), failed.clone(), stop.clone());
    let reader = client.read(move |frame| {
        let Frame::Reply { rid, data, error } = frame else {
            if matches!(frame, Frame::Invalid) {
                failures.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        let slot = rid.checked_sub(2).map(|n| (n % inflight) as usize);
        let Some(slot) = slot.filter(|&s| expected[s] == rid) else {
            failures.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if !error && data == Some("5") {
            counted.fetch_add(1, Ordering::Relaxed);
        } else {
            failures.fetch_add(1, Ordering::Relaxed);
        }
        if stopping.load(Ordering::Relaxed) {
            return;
        }
        expected[slot] = rid + inflight;
        // The queue holds at most the requests in flight and a pong.
        if out.try_send(invoke(rid + inflight)).is_err() {
            failures.fetch_add(1, Ordering::Relaxed);
        }
    });
    let measured = rate_and_cpu(server, || done.load(Ordering::Relaxed), args).await;
    stop.store(true, Ordering::Relaxed);
    // The reader only ends early when the connection does.
    let closed = reader.is_finished();
    reader.abort();
    if closed {
        return Err(format!("{url}: the connection closed during the measurement").into());
    }
    let measured = measured?;
    let failures = failed.load(Ordering::Relaxed);
    if failures > 0 {
        return Err(format!("{url}: {failures} invokes failed or were answered wrongly").into());
    }
    // Let the server drop the connection before the next run.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(measured)
}

/// Pub/sub deliveries per second with fresh connections, the server's memory and its CPU use.
async fn measure_pubsub(
    url: &str,
    server: &Proc,
    ping: Ping,
    args: &SocketclusterArgs,
) -> Result<(Measured, f64)> {
    let run = fanout(&[url], url, &[server], ping, &args.run).await?;
    let measured = Measured {
        rate: run.rate,
        connected_rss: run.connected_rss[0],
        loaded_rss: run.loaded_rss[0],
    };
    Ok((measured, run.cpu[0] / run.seconds))
}

/// One pub/sub run over one or more servers: fresh subscribers spread round-robin over
/// `subscribe`, the publisher on `url`; deliveries per second, and the CPU time and memory
/// of each of `procs` (the servers and whatever else the set-up runs).
pub(crate) async fn fanout(
    subscribe: &[&str],
    url: &str,
    procs: &[&Proc],
    ping: Ping,
    run: &RunArgs,
) -> Result<Spread> {
    let mut deliveries = Deliveries::default();
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for n in 0..run.subscribers {
        let mut client = Client::connect(subscribe[n % subscribe.len()], ping).await?;
        client.request(2, SUBSCRIBE).await?;
        let received = deliveries.subscriber();
        let failures = failed.clone();
        tasks.push(client.read(move |frame| match frame {
            Frame::Delivery => received.one(),
            Frame::Invalid => {
                failures.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let connected_rss = procs
        .iter()
        .map(|p| p.rss_kib())
        .collect::<Result<Vec<_>>>()?;
    let publisher = Client::connect(url, ping).await?;
    let out = publisher.out.clone();
    let (acks, failures) = (Arc::new(AtomicU64::new(0)), failed.clone());
    let acked = acks.clone();
    tasks.push(publisher.read(move |frame| match frame {
        Frame::Reply { error: false, .. } => {
            acked.fetch_add(1, Ordering::Relaxed);
        }
        Frame::Reply { .. } | Frame::Invalid => {
            failures.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }));
    let stop = Arc::new(AtomicBool::new(false));
    // Publish ids start at 2 (1 was the handshake).
    let publishing = tokio::spawn(
        deliveries
            .pacer(run.window, stop.clone())
            .run(out, |n| publish(n + 2)),
    );
    let sample = || {
        let cpu: Vec<f64> = procs.iter().filter_map(|p| p.cpu_seconds().ok()).collect();
        (deliveries.total(), cpu)
    };
    let ((d0, cpu0), (d1, cpu1), elapsed) = window(run.warmup, run.seconds, sample).await;
    let loaded_rss = procs.iter().map(|p| p.rss_kib()).collect::<Vec<_>>();
    stop.store(true, Ordering::Relaxed);
    let sent = publishing.await.map_err(io)??;
    // Give the last acks time (a slow server still has publishes queued), then check every
    // publish was acknowledged.
    for _ in 0..500 {
        if acks.load(Ordering::Relaxed) >= sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A reader only ends early when its connection does.
    let closed = tasks.iter().filter(|t| t.is_finished()).count();
    for task in tasks {
        task.abort();
    }
    if closed > 0 {
        return Err(format!("{url}: {closed} connections closed during the measurement").into());
    }
    let (acked, failures) = (acks.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    if failures > 0 || acked < sent {
        return Err(format!(
            "{url}: {sent} publishes, {acked} acknowledged, {failures} errors or unexpected frames"
        )
        .into());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    if cpu0.len() != procs.len() || cpu1.len() != procs.len() {
        return Err("cannot read a process's CPU time".into());
    }
    let delivered = d1.saturating_sub(d0);
    Ok(Spread {
        rate: delivered as f64 / elapsed,
        deliveries: delivered,
        seconds: elapsed,
        connected_rss,
        loaded_rss: loaded_rss.into_iter().collect::<Result<Vec<_>>>()?,
        cpu: cpu1.iter().zip(&cpu0).map(|(b, a)| b - a).collect(),
    })
}

// ---------------------------------------------------------------- the lean client

/// The server's ping and the client's pong.
#[derive(Clone, Copy)]
pub(crate) enum Ping {
    /// Protocol version 1: `#1`, answered `#2`.
    V1,
    /// Protocol version 2: an empty frame, answered with an empty frame.
    V2,
}

impl Ping {
    fn ping(self) -> &'static str {
        match self {
            Ping::V1 => "#1",
            Ping::V2 => "",
        }
    }

    fn pong(self) -> &'static str {
        match self {
            Ping::V1 => "#2",
            Ping::V2 => "",
        }
    }
}

/// What a frame from the server is to the caller.
pub(crate) enum Frame<'a> {
    /// A `#publish` delivered on the channel.
    Delivery,
    /// The answer to one of this client's invokes: `data` is the raw JSON text of its data.
    Reply {
        rid: u64,
        data: Option<&'a str>,
        error: bool,
    },
    /// Something the client answered itself (a ping, an invoke) or does not look at.
    Other,
    /// Not a SocketCluster frame.
    Invalid,
}

/// The keys of a SocketCluster frame the client looks at.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(default, borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(default)]
    cid: Option<u64>,
    #[serde(default)]
    rid: Option<u64>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

/// One connection: its reading half, and the queue of its batching writer.
pub(crate) struct Client {
    source: SplitStream<ClientWs>,
    pub(crate) out: mpsc::Sender<String>,
    ping: Ping,
}

impl Client {
    /// Connects and does the `#handshake`.
    pub(crate) async fn connect(url: &str, ping: Ping) -> Result<Client> {
        Client::connect_with(url, ping, 64 << 10).await
    }

    /// Connects with a read buffer of `read_buffer` bytes and does the `#handshake`.
    pub(crate) async fn connect_with(url: &str, ping: Ping, read_buffer: usize) -> Result<Client> {
        let (sink, source) = dial_with(url, read_buffer).await?.split();
        let (out, rx) = mpsc::channel(SEND_QUEUE);
        tokio::spawn(write_loop(sink, rx));
        let mut client = Client { source, out, ping };
        client.request(1, HANDSHAKE).await?;
        Ok(client)
    }

    /// Sends an invoke with id `cid` and waits for its successful answer.
    pub(crate) async fn request(&mut self, cid: u64, text: &str) -> Result<()> {
        self.out.send(text.to_owned()).await.map_err(io)?;
        while let Some(frame) = self.next_text().await {
            match self.classify(&frame) {
                Frame::Reply { rid, error, .. } if rid == cid => {
                    return if error {
                        Err(format!("{text} was answered {frame}").into())
                    } else {
                        Ok(())
                    };
                }
                Frame::Invalid => return Err(format!("unexpected frame {frame:?}").into()),
                _ => {}
            }
        }
        Err(format!("the connection closed before the answer to {text}").into())
    }

    /// Reads until the connection closes, handing every frame to `each`.
    pub(crate) fn read(
        mut self,
        mut each: impl FnMut(Frame<'_>) + Send + 'static,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(text) = self.next_text().await {
                each(self.classify(&text));
            }
        })
    }

    /// The next text frame; `None` once the connection is closed or broken.
    async fn next_text(&mut self) -> Option<Utf8Bytes> {
        loop {
            match self.source.next().await? {
                Ok(Message::Text(text)) => return Some(text),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Classifies a frame, answering pings and the server's invokes on the way.
    fn classify<'a>(&self, text: &'a str) -> Frame<'a> {
        if text == self.ping.ping() {
            // Only fails when the writer is gone, and then the connection is closing anyway.
            let _ = self.out.try_send(self.ping.pong().to_owned());
            return Frame::Other;
        }
        // Deliveries are most of the traffic: both servers write the event first.
        if text.starts_with(DELIVERY) {
            return Frame::Delivery;
        }
        let Ok(fields) = serde_json::from_str::<Fields<'_>>(text) else {
            return Frame::Invalid;
        };
        match (fields.event.as_deref(), fields.cid, fields.rid) {
            (Some("#publish"), _, _) => Frame::Delivery,
            (Some(_), Some(cid), _) => {
                // An invoke from the server (`askClient`), answered as interop/sc-client.js
                // answers it (with `q` left out).
                let _ = self
                    .out
                    .try_send(format!(r#"{{"rid":{cid},"data":{{"a":"ok"}}}}"#));
                Frame::Other
            }
            (None, _, Some(rid)) => Frame::Reply {
                rid,
                data: fields.data.map(RawValue::get),
                error: fields.error.is_some(),
            },
            _ => Frame::Other,
        }
    }
}
