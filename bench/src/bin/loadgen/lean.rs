//! `loadgen lean`: request/reply servers measured through one lean client.
//!
//! `loadgen rpc` drives each implementation with its own client (64 tasks each awaiting its
//! reply), so the clients differ and the slowest sets the ceiling. Here every server is driven
//! by the same client, written to cost as little as it can: one task per connection that keeps
//! `W` requests in flight, writes a new request for every reply it reads, and flushes once per
//! batch of replies that were ready together. The client does not decode replies (it counts
//! frames), so what differs between the rows is the server.
//!
//! Servers, each in its own process (`serve-rpc KIND`):
//! - `echo`: tokio-tungstenite that sends every text frame back as it is, one task per
//!   connection, flushing once per batch: the limit of the WebSocket layer on this machine.
//! - `raw`: the hand-written tokio-tungstenite + serde_json Litecord server of `loadgen rpc`.
//! - `protolink`: the `litecord_example` server on the runtime.
//! - `protolink-serde`: the same with `LinkConfig::one_pass` off (every frame through classify
//!   and serde), to measure what the generated scanner saves end to end.
//! - `jsonrpsee`: jsonrpsee 0.26's server with the same method (`--features jsonrpsee`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::proc::{Proc, Result, print_side_by_side, window};
use crate::raw::{ClientWs, dial};
use crate::rpc::PASSWORD;

/// Options of `loadgen lean`.
#[derive(clap::Args)]
pub(crate) struct LeanArgs {
    /// Measured seconds per server, per round and load.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Unmeasured seconds before each measurement.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Rounds; each round measures every server back to back, in rotating order.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Loads, comma-separated, each `CONNECTIONSxIN_FLIGHT`.
    #[arg(long, value_delimiter = ',', default_value = "1x64,1x1,64x16")]
    loads: Vec<String>,
    /// Servers to measure, comma-separated (the first is the one the ratios are of); jsonrpsee
    /// needs `--features jsonrpsee`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "protolink,echo,raw,jsonrpsee"
    )]
    servers: Vec<String>,
}

/// A load: connections, and requests in flight on each.
#[derive(Clone, Copy)]
struct Load {
    connections: usize,
    inflight: usize,
}

fn parse_load(text: &str) -> Result<Load> {
    let (c, w) = text
        .split_once('x')
        .ok_or_else(|| format!("a load is CONNECTIONSxIN_FLIGHT, not {text:?}"))?;
    Ok(Load {
        connections: c.trim().parse()?,
        inflight: w.trim().parse()?,
    })
}

/// What the lean client says to one kind of server.
#[derive(Clone, Copy)]
enum Dialect {
    /// Litecord: HELLO, then HELLO_ACK; GET_GUILD requests. The echo server gets the same
    /// requests, without the handshake.
    Litecord { handshake: bool },
    /// JSON-RPC 2.0.
    JsonRpc,
}

impl Dialect {
    fn of(kind: &str) -> Dialect {
        match kind {
            "echo" => Dialect::Litecord { handshake: false },
            "jsonrpsee" => Dialect::JsonRpc,
            _ => Dialect::Litecord { handshake: true },
        }
    }

    fn request(self, n: u64) -> String {
        match self {
            Dialect::Litecord { .. } => {
                format!(r#"{{"op":4,"w":"GET_GUILD","a":["381870553235193857"],"n":{n}}}"#)
            }
            Dialect::JsonRpc => format!(
                r#"{{"jsonrpc":"2.0","id":{n},"method":"get_guild","params":["381870553235193857"]}}"#
            ),
        }
    }

    async fn open(self, url: &str) -> Result<ClientWs> {
        let mut ws = dial(url).await?;
        if let Dialect::Litecord { handshake: true } = self {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str().contains(r#""op":0"#) => {}
                other => return Err(format!("expected HELLO, got {other:?}").into()),
            }
            ws.send(Message::text(format!(
                r#"{{"op":1,"password":"{PASSWORD}"}}"#
            )))
            .await?;
        }
        Ok(ws)
    }
}

/// One connection of the lean client: `inflight` requests written at once, then one new
/// request for every reply, flushed once per batch of replies that were ready together. Counts
/// replies into `done` until `stop` is set.
async fn drive(
    mut ws: ClientWs,
    dialect: Dialect,
    inflight: usize,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let mut n = 0u64;
    for _ in 0..inflight {
        n += 1;
        ws.feed(Message::text(dialect.request(n))).await?;
    }
    ws.flush().await?;
    while !stop.load(Ordering::Relaxed) {
        let mut replies = 0;
        let mut next = ws.next().await;
        loop {
            match next {
                Some(Ok(Message::Text(_))) => {
                    replies += 1;
                    n += 1;
                    ws.feed(Message::text(dialect.request(n))).await?;
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!("the server closed: {frame:?}").into());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err("the server ended the connection".into()),
            }
            // Whatever else is ready now joins the batch; the flush waits for nothing.
            match ws.next().now_or_never() {
                Some(more) => next = more,
                None => break,
            }
        }
        done.fetch_add(replies, Ordering::Relaxed);
        ws.flush().await?;
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// Replies per second over `seconds`, after `warmup`, with `load` on the server at `url`.
async fn measure(url: &str, kind: &str, load: Load, warmup: f64, seconds: f64) -> Result<f64> {
    let dialect = Dialect::of(kind);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut connections = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        let ws = dialect.open(url).await?;
        connections.push(tokio::spawn(drive(
            ws,
            dialect,
            load.inflight,
            done.clone(),
            stop.clone(),
        )));
    }
    let (first, last, elapsed) = window(warmup, seconds, || done.load(Ordering::Relaxed)).await;
    stop.store(true, Ordering::Relaxed);
    for connection in connections {
        // A connection stops after its next reply; one that gets none is not waited for.
        match tokio::time::timeout(Duration::from_secs(2), connection).await {
            Ok(Ok(Err(e))) => return Err(format!("{kind}: {e}").into()),
            Ok(Err(e)) => return Err(format!("{kind}: {e}").into()),
            _ => {}
        }
    }
    Ok((last - first) as f64 / elapsed)
}

/// `loadgen lean`.
pub(crate) async fn run(args: LeanArgs) -> Result<()> {
    let loads = args
        .loads
        .iter()
        .map(|l| parse_load(l))
        .collect::<Result<Vec<_>>>()?;
    let mut kinds: Vec<&str> = args.servers.iter().map(String::as_str).collect();
    if !cfg!(feature = "jsonrpsee") && kinds.contains(&"jsonrpsee") {
        kinds.retain(|k| *k != "jsonrpsee");
        println!("(built without --features jsonrpsee: the jsonrpsee server is skipped)");
    }
    let mut servers = Vec::new();
    let mut urls = Vec::new();
    for kind in &kinds {
        let mut server = Proc::spawn_self(&["serve-rpc", kind])?;
        urls.push(server.url().await?);
        servers.push(server);
    }
    println!(
        "lean: {} rounds, {} s measured (+{} s warm-up) per server and load",
        args.rounds, args.seconds, args.warmup
    );
    // rates[load][kind] = one rate per round; cpu likewise, in µs of server CPU per reply.
    let mut rates = vec![vec![Vec::new(); kinds.len()]; loads.len()];
    let mut cpu = vec![vec![Vec::new(); kinds.len()]; loads.len()];
    for round in 0..args.rounds {
        for (l, load) in loads.iter().enumerate() {
            let mut line = format!(
                "round {} {:>3}x{:<3}:",
                round + 1,
                load.connections,
                load.inflight
            );
            for k in 0..kinds.len() {
                // Rotate the order between rounds: load on the machine comes and goes.
                let k = (k + round) % kinds.len();
                let before = servers[k].cpu_seconds()?;
                let rate = measure(&urls[k], kinds[k], *load, args.warmup, args.seconds).await?;
                let spent = servers[k].cpu_seconds()? - before;
                let replies = rate * (args.warmup + args.seconds);
                cpu[l][k].push(spent * 1e6 / replies.max(1.0));
                rates[l][k].push(rate);
                line.push_str(&format!("  {} {:.0}/s", kinds[k], rate));
            }
            println!("{line}");
        }
    }
    let labels: Vec<String> = loads
        .iter()
        .map(|load| format!("{}×{}", load.connections, load.inflight))
        .collect();
    print_side_by_side("load", &labels, &kinds, &rates, &cpu);
    for server in servers {
        server.stop().await;
    }
    Ok(())
}
