//! Loopback load generator for protolink: request/reply throughput against a hand-written
//! tokio-tungstenite server (and jsonrpsee with `--features jsonrpsee`), idle memory per
//! connection with heartbeats running, Skynet fan-out against a plain broadcast server (and over
//! two server processes joined by Redis against one process; SocketCluster's also against
//! two socketcluster-server processes joined by SCC), and
//! SocketCluster invokes and pub/sub against the real socketcluster-server.
//!
//! Every server runs in a child process (this binary spawned with a hidden `serve-*` command,
//! `protolink serve skynet|socketcluster`, or Node); the parent is the client and prints the
//! ratio tables. Every run is bounded in time and only talks to 127.0.0.1. See BENCHMARKS.md for
//! the method.

mod cluster;
mod fanout;
mod idle;
mod lean;
mod proc;
mod pubsub;
mod raw;
mod rpc;
mod soak;
mod socketcluster;

use clap::{Parser, Subcommand};

/// Loopback load tests of the protolink runtime (see BENCHMARKS.md).
#[derive(Parser)]
#[command(name = "loadgen")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Request/reply throughput over one connection: protolink (litecord_example GET_GUILD)
    /// against a hand-written tokio-tungstenite + serde_json client and server, and against
    /// jsonrpsee when built with `--features jsonrpsee`.
    Rpc(rpc::RpcArgs),
    /// Request/reply servers through one lean client (one task per connection keeping W
    /// requests in flight): a raw echo (the WebSocket limit), the hand-written server,
    /// protolink, and jsonrpsee with `--features jsonrpsee`; one connection and many.
    Lean(lean::LeanArgs),
    /// Server memory with many idle connections that heartbeat.
    Idle(idle::IdleArgs),
    /// Skynet fan-out: one publisher, many subscribers on one channel, against the reference
    /// server and a plain tokio-tungstenite broadcast server.
    Fanout(fanout::FanoutArgs),
    /// Skynet fan-out over two `protolink serve skynet --broker redis://...` processes on a
    /// `redis-server` of its own, against the same load on one process (in-process broker);
    /// with `--protocol socketcluster`, SocketCluster fan-out over one `protolink serve
    /// socketcluster`, two on Redis, and two socketcluster-server 20.x processes joined by SCC.
    FanoutRedis(cluster::ClusterArgs),
    /// SocketCluster: invoke round trips and pub/sub deliveries, `protolink serve
    /// socketcluster` against the real socketcluster-server 20.x (`interop/sc-server.js`; run
    /// `npm ci --prefix interop` first).
    Socketcluster(socketcluster::SocketclusterArgs),
    /// A soak: `protolink serve socketcluster` holding 10,000 heartbeating connections for ten
    /// minutes, with a churn of connects and disconnects and a publisher fanning out, its
    /// memory sampled every second.
    Soak(soak::SoakArgs),
    /// (internal) An RPC server for `rpc`.
    #[command(hide = true)]
    ServeRpc {
        /// `protolink`, `protolink-serde`, `raw`, `echo` or `jsonrpsee`.
        kind: String,
    },
    /// (internal) A Litecord server for `idle`.
    #[command(hide = true)]
    ServeIdle {
        /// `runtime`, `runtime-4k` or `raw-4k`.
        kind: String,
        /// Heartbeat interval announced in HELLO, in ms.
        #[arg(long)]
        hb_ms: u32,
    },
    /// (internal) The idle clients for `idle`.
    #[command(hide = true)]
    IdleClients {
        /// Server URL.
        #[arg(long)]
        url: String,
        /// How many connections.
        #[arg(long)]
        conns: usize,
    },
    /// (internal) The plain broadcast server for `fanout`.
    #[command(hide = true)]
    ServeBroadcast,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Rpc(args) => rpc::run(args).await,
            Command::Lean(args) => lean::run(args).await,
            Command::Idle(args) => idle::run(args).await,
            Command::Fanout(args) => fanout::run(args).await,
            Command::FanoutRedis(args) => cluster::run(args).await,
            Command::Socketcluster(args) => socketcluster::run(args).await,
            Command::Soak(args) => soak::run(args).await,
            Command::ServeRpc { kind } => rpc::serve(&kind).await,
            Command::ServeIdle { kind, hb_ms } => idle::serve(&kind, hb_ms).await,
            Command::IdleClients { url, conns } => idle::clients(&url, conns).await,
            Command::ServeBroadcast => fanout::serve_broadcast().await,
        }
    });
    // Connection tasks may still be running; do not wait for them.
    runtime.shutdown_background();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
