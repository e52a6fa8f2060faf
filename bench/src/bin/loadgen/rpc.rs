//! `loadgen rpc`: request/reply throughput over one loopback connection.
//!
//! The same call, GET_GUILD of `litecord_example` (a guild id in, a four-field guild out), three
//! ways: protolink on both ends; a hand-written tokio-tungstenite + serde_json client and server
//! with the runtime's write batching (a writer task that feeds every queued frame and flushes
//! once); jsonrpsee's WebSocket server and client (`--features jsonrpsee`). Each server is a
//! child process; this process is the client, with `inflight` tasks each calling in a loop.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use protolink::ws::{WsServer, connect};
use protolink::{Link, LinkConfig, RemoteError, Session};
use protolink_protocols::litecord_example::{
    self as lc, ClientHandler, ClientSender, ServerHandler,
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::proc::{Proc, Result, announce, io, print_side_by_side, until_stdin_closes};
use crate::raw::{SEND_QUEUE, snowflake, valid_guild, write_loop, ws_config};

/// Options of `loadgen rpc`.
#[derive(clap::Args)]
pub(crate) struct RpcArgs {
    /// Measured seconds per implementation, per round and concurrency.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Unmeasured seconds before each measurement.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Rounds; each round measures every implementation back to back, in rotating order.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Requests in flight (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "64,1")]
    inflight: Vec<usize>,
}

pub(crate) const PASSWORD: &str = "bench";
const GUILD_ID: &str = "381870553235193857";

/// The server's answer, the same in every implementation.
fn guild_for(id: String) -> lc::Guild {
    lc::Guild {
        name: format!("Guild {id}"),
        owner_id: "80351110224678912".to_owned(),
        member_count: 1234,
        id,
    }
}

// ---------------------------------------------------------------- servers

/// `serve-rpc KIND`.
pub(crate) async fn serve(kind: &str) -> Result<()> {
    match kind {
        "protolink" => serve_protolink(true).await,
        "protolink-serde" => serve_protolink(false).await,
        "raw" => serve_plain(raw_connection).await,
        "echo" => serve_plain(echo_connection).await,
        #[cfg(feature = "jsonrpsee")]
        "jsonrpsee" => jsonrpsee_side::serve().await,
        other => Err(format!("unknown server {other}").into()),
    }
}

pub(crate) struct Gateway;

impl ServerHandler for Gateway {
    async fn get_guild(
        &self,
        request: lc::GetGuild,
    ) -> std::result::Result<lc::Guild, RemoteError> {
        Ok(guild_for(request.guild_id))
    }
}

pub(crate) fn litecord_session(hb_interval: u32) -> Session<lc::Server> {
    Session::new()
        .with(lc::Hello { hb_interval })
        .authenticate(|ack: lc::HelloAck| {
            let ok = ack.password == PASSWORD;
            async move {
                if ok {
                    Ok(())
                } else {
                    Err("wrong password".to_owned())
                }
            }
        })
}

/// The protolink server; `one_pass: false` reads every frame through the general path
/// (`LinkConfig::one_pass`), to measure what the generated scanner saves.
async fn serve_protolink(one_pass: bool) -> Result<()> {
    let server = WsServer::<lc::Server>::bind("127.0.0.1:0")
        .await?
        .path("/")
        .link_config(LinkConfig {
            one_pass,
            ..LinkConfig::default()
        });
    announce(&format!("ws://{}/", server.local_addr()?));
    let (shutdown, task) = server.serve(litecord_session(30_000), |_| Gateway);
    until_stdin_closes(async {
        task.await.map_err(io)?;
        Ok(())
    })
    .await?;
    shutdown.shutdown();
    Ok(())
}

/// A frame from the client, as the hand-written server reads it.
#[derive(Deserialize)]
struct RawIn<'a> {
    op: u8,
    #[serde(borrow, default)]
    w: Option<Cow<'a, str>>,
    #[serde(default)]
    a: Option<(String,)>,
    #[serde(default)]
    n: Option<i64>,
    #[serde(default)]
    password: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct RawReply<'a> {
    op: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    r: Option<&'a lc::Guild>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<&'a str>,
    n: i64,
}

/// A hand-written tokio-tungstenite server: accepts until stdin closes, running `connection`
/// in a task of its own for every upgraded WebSocket.
async fn serve_plain<F>(connection: fn(ServerWs) -> F) -> Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    announce(&format!("ws://{}/", listener.local_addr()?));
    until_stdin_closes(async {
        loop {
            let (tcp, _) = listener.accept().await?;
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                if let Ok(ws) =
                    tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config(None))).await
                {
                    connection(ws).await;
                }
            });
        }
    })
    .await
}

type ServerWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// The echo server of `loadgen lean`: every text frame goes back as it is, from the reading
/// task, flushed once per batch of frames that were ready together (no JSON, no second task).
async fn echo_connection(ws: ServerWs) {
    let _ = echo(ws).await;
}

async fn echo(mut ws: ServerWs) -> std::result::Result<(), tokio_tungstenite::tungstenite::Error> {
    while let Some(message) = ws.next().await {
        let mut next = Some(message);
        while let Some(message) = next {
            match message? {
                Message::Text(text) => ws.feed(Message::Text(text)).await?,
                Message::Close(_) => return Ok(()),
                _ => {}
            }
            next = ws.next().now_or_never().flatten();
        }
        ws.flush().await?;
    }
    Ok(())
}

/// One connection of the hand-written server: HELLO, HELLO_ACK, then GET_GUILD requests
/// answered in the reading task (no task per request), through a batching writer.
async fn raw_connection(ws: ServerWs) {
    let (sink, mut source) = ws.split();
    let (tx, rx) = mpsc::channel::<String>(SEND_QUEUE);
    tokio::spawn(write_loop(sink, rx));
    if tx
        .send(r#"{"op":0,"hb_interval":30000}"#.to_owned())
        .await
        .is_err()
    {
        return;
    }
    let mut ready = false;
    while let Some(Ok(message)) = source.next().await {
        let Message::Text(text) = message else {
            if message.is_close() {
                return;
            }
            continue;
        };
        let Ok(frame) = serde_json::from_str::<RawIn<'_>>(text.as_str()) else {
            continue;
        };
        let reply = match (frame.op, ready) {
            (1, false) => {
                ready = frame.password.as_deref() == Some(PASSWORD);
                if !ready {
                    return;
                }
                continue;
            }
            (2, true) => r#"{"op":3}"#.to_owned(),
            (4, true) if frame.w.as_deref() == Some("GET_GUILD") => {
                let (Some((id,)), Some(n)) = (frame.a, frame.n) else {
                    continue;
                };
                if snowflake(&id) {
                    let guild = guild_for(id);
                    serde_json::to_string(&RawReply {
                        op: 5,
                        r: Some(&guild),
                        e: None,
                        n,
                    })
                    .unwrap_or_default()
                } else {
                    serde_json::to_string(&RawReply {
                        op: 5,
                        r: None,
                        e: Some("invalid guild id"),
                        n,
                    })
                    .unwrap_or_default()
                }
            }
            _ => continue,
        };
        if tx.send(reply).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------- clients

struct NoRequests;

impl ClientHandler for NoRequests {
    async fn token_validate(
        &self,
        _: lc::TokenValidate,
    ) -> std::result::Result<lc::TokenValidity, RemoteError> {
        Err(RemoteError::new("not served by the benchmark"))
    }
}

/// The hand-written client: callers register a oneshot under the request id, a writer task
/// batches, a reader task resolves.
struct RawClient {
    out: mpsc::Sender<String>,
    pending: Arc<Mutex<HashMap<i64, oneshot::Sender<lc::Guild>>>>,
    next: AtomicI64,
}

#[derive(Serialize)]
struct RawRequest<'a> {
    op: u8,
    w: &'a str,
    a: (&'a str,),
    n: i64,
}

#[derive(Deserialize)]
struct RawResponse {
    op: u8,
    #[serde(default)]
    r: Option<lc::Guild>,
    #[serde(default)]
    n: Option<i64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RawClient {
    async fn connect(url: &str) -> Result<RawClient> {
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(ws_config(None)), true).await?;
        let (sink, mut source) = ws.split();
        // HELLO, then HELLO_ACK.
        match source.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains(r#""op":0"#) => {}
            other => return Err(format!("expected HELLO, got {other:?}").into()),
        }
        let (tx, rx) = mpsc::channel::<String>(SEND_QUEUE);
        tokio::spawn(write_loop(sink, rx));
        tx.send(format!(r#"{{"op":1,"password":"{PASSWORD}"}}"#))
            .await
            .map_err(io)?;
        let pending: Arc<Mutex<HashMap<i64, oneshot::Sender<lc::Guild>>>> = Arc::default();
        let waiting = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = source.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(reply) = serde_json::from_str::<RawResponse>(text.as_str()) else {
                    continue;
                };
                if reply.op != 5 {
                    continue;
                }
                let (Some(guild), Some(n)) = (reply.r, reply.n) else {
                    continue;
                };
                // The checks the definition declares on the reply.
                let valid = valid_guild(&guild);
                if let Some(tx) = lock(&waiting).remove(&n) {
                    if valid {
                        let _ = tx.send(guild);
                    }
                }
            }
            lock(&waiting).clear();
        });
        Ok(RawClient {
            out: tx,
            pending,
            next: AtomicI64::new(1),
        })
    }

    async fn get_guild(&self, guild_id: &str) -> Option<lc::Guild> {
        if !snowflake(guild_id) {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(n, tx);
        let text = serde_json::to_string(&RawRequest {
            op: 4,
            w: "GET_GUILD",
            a: (guild_id,),
            n,
        })
        .ok()?;
        self.out.send(text).await.ok()?;
        rx.await.ok()
    }
}

/// One client connection of any implementation.
enum Client {
    Protolink(Link<lc::Client>),
    Raw(RawClient),
    #[cfg(feature = "jsonrpsee")]
    Jsonrpsee(jsonrpsee_side::Client),
}

impl Client {
    async fn call(&self) -> bool {
        match self {
            Client::Protolink(link) => link.get_guild(GUILD_ID.to_owned()).await.is_ok(),
            Client::Raw(client) => client.get_guild(GUILD_ID).await.is_some(),
            #[cfg(feature = "jsonrpsee")]
            Client::Jsonrpsee(client) => jsonrpsee_side::call(client, GUILD_ID).await,
        }
    }
}

/// Calls in a loop from `inflight` tasks; replies per second over `seconds` after `warmup`.
async fn measure(client: &Arc<Client>, inflight: usize, warmup: f64, seconds: f64) -> Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::with_capacity(inflight);
    for _ in 0..inflight {
        let (client, done, failed, stop) =
            (client.clone(), done.clone(), failed.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if client.call().await {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    let (c0, t0) = (done.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (c1, t1) = (done.load(Ordering::Relaxed), Instant::now());
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let failures = failed.load(Ordering::Relaxed);
    if failures > 0 {
        return Err(format!("{failures} calls failed").into());
    }
    Ok((c1 - c0) as f64 / (t1 - t0).as_secs_f64())
}

/// `loadgen rpc`.
pub(crate) async fn run(args: RpcArgs) -> Result<()> {
    let mut kinds = vec!["protolink", "protolink-serde", "raw"];
    if cfg!(feature = "jsonrpsee") {
        kinds.push("jsonrpsee");
    } else {
        println!("(built without --features jsonrpsee: the jsonrpsee comparison is skipped)");
    }
    let mut servers = Vec::new();
    let mut clients: Vec<Arc<Client>> = Vec::new();
    for kind in &kinds {
        let mut server = Proc::spawn_self(&["serve-rpc", kind])?;
        let url = server.url().await?;
        let client = match *kind {
            "protolink" | "protolink-serde" => Client::Protolink(
                connect(&url)
                    .session(Session::new().with(lc::HelloAck {
                        password: PASSWORD.to_owned(),
                    }))
                    .handler(|_| NoRequests)
                    .await?,
            ),
            "raw" => Client::Raw(RawClient::connect(&url).await?),
            #[cfg(feature = "jsonrpsee")]
            "jsonrpsee" => Client::Jsonrpsee(jsonrpsee_side::connect(&url).await?),
            other => return Err(format!("unknown client {other}").into()),
        };
        servers.push(server);
        clients.push(Arc::new(client));
    }
    println!(
        "rpc: {} rounds, {} s measured (+{} s warm-up) per implementation and concurrency",
        args.rounds, args.seconds, args.warmup
    );
    // rates[inflight index][kind index] = one rate per round.
    let mut rates = vec![vec![Vec::new(); kinds.len()]; args.inflight.len()];
    // The server's CPU time per reply, in µs (warm-up included: the same load).
    let mut cpu = vec![vec![Vec::new(); kinds.len()]; args.inflight.len()];
    for round in 0..args.rounds {
        for (i, &inflight) in args.inflight.iter().enumerate() {
            let mut line = format!("round {} in flight {inflight:>3}:", round + 1);
            for k in 0..kinds.len() {
                // Rotate the order between rounds: load on the machine comes and goes.
                let k = (k + round) % kinds.len();
                let before = servers[k].cpu_seconds()?;
                let rate = measure(&clients[k], inflight, args.warmup, args.seconds).await?;
                let spent = servers[k].cpu_seconds()? - before;
                let replies = rate * (args.warmup + args.seconds);
                cpu[i][k].push(spent * 1e6 / replies.max(1.0));
                rates[i][k].push(rate);
                line.push_str(&format!("  {} {:.0}/s", kinds[k], rate));
            }
            println!("{line}");
        }
    }
    let labels: Vec<String> = args.inflight.iter().map(ToString::to_string).collect();
    print_side_by_side("in flight", &labels, &kinds, &rates, &cpu);
    for server in servers {
        server.stop().await;
    }
    Ok(())
}

#[cfg(feature = "jsonrpsee")]
mod jsonrpsee_side {
    //! jsonrpsee's WebSocket server and client, with the same method.

    use jsonrpsee::core::client::ClientT;
    use jsonrpsee::rpc_params;
    use jsonrpsee::server::{RpcModule, Server};
    use jsonrpsee::types::ErrorObjectOwned;
    use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
    use protolink_protocols::litecord_example as lc;

    use super::guild_for;
    use crate::proc::{Result, announce, until_stdin_closes};
    use crate::raw::{snowflake, valid_guild};

    pub(crate) type Client = WsClient;

    pub(crate) async fn serve() -> Result<()> {
        let server = Server::builder().build("127.0.0.1:0").await?;
        let mut module = RpcModule::new(());
        module.register_method("get_guild", |params, _, _| {
            let (id,): (String,) = params.parse()?;
            if !snowflake(&id) {
                return Err(ErrorObjectOwned::owned(
                    -32602,
                    "invalid guild id",
                    None::<()>,
                ));
            }
            Ok::<lc::Guild, ErrorObjectOwned>(guild_for(id))
        })?;
        announce(&format!("ws://{}", server.local_addr()?));
        let handle = server.start(module);
        until_stdin_closes(async {
            handle.clone().stopped().await;
            Ok(())
        })
        .await?;
        let _ = handle.stop();
        Ok(())
    }

    pub(crate) async fn connect(url: &str) -> Result<Client> {
        Ok(WsClientBuilder::default().build(url).await?)
    }

    pub(crate) async fn call(client: &Client, id: &str) -> bool {
        match client
            .request::<lc::Guild, _>("get_guild", rpc_params![id])
            .await
        {
            Ok(guild) => valid_guild(&guild),
            Err(_) => false,
        }
    }
}
