//! `loadgen fanout-redis`: the Skynet fan-out of `fanout` spread over two server processes
//! joined by Redis, against the same load on one process with its in-process broker.
//!
//! Three `protolink serve skynet` children: one alone, and two with `--broker redis://...` on a
//! `redis-server` of its own (free loopback port, persistence off). Each round measures both
//! set-ups back to back, in alternating order: the subscribers spread over the two servers
//! (the publisher on the first), or all on the one. Besides deliveries per second it reports
//! each process's CPU time per delivery (Redis included) and its memory.
//!
//! With `--protocol socketcluster` the same load in SocketCluster frames (`#subscribe`,
//! acknowledged `#publish`, the lean clients of `loadgen socketcluster`) over three set-ups: one
//! `protolink serve socketcluster`, two on Redis, and two socketcluster-server 20.x processes
//! (`interop/sc-server.js --scc-state`) joined by SCC: a state server and one scc-broker
//! (`interop/scc-cluster.js`), each a process of its own whose CPU and memory count too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::fanout::{Spread, measure};
use crate::proc::{Proc, Result, protolink_binary, ratio_spread, spread};
use crate::pubsub::RunArgs;
use crate::socketcluster::{Ping, fanout};

/// Options of `loadgen fanout-redis`.
#[derive(clap::Args)]
pub(crate) struct ClusterArgs {
    /// What every pub/sub load run takes.
    #[command(flatten)]
    run: RunArgs,
    /// The `redis-server` binary.
    #[arg(long, default_value = "redis-server")]
    redis_server: String,
    /// `skynet`, or `socketcluster` (which adds two socketcluster-server 20.x processes joined
    /// by SCC; run `npm ci --prefix interop` first).
    #[arg(long, default_value = "skynet", value_parser = ["skynet", "socketcluster"])]
    protocol: String,
    /// The Node.js executable (`--protocol socketcluster`).
    #[arg(long, default_value = "node")]
    node: PathBuf,
}

/// Starts `redis-server` on a free loopback port (trying new ports if one was taken meanwhile).
async fn start_redis(binary: &str) -> Result<(Proc, u16)> {
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut redis = Proc::spawn(Command::new(binary).args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]))?;
        redis.drain(|_| {});
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            if pings(port).await {
                return Ok((redis, port));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        redis.stop().await;
    }
    Err("redis-server did not start (is it installed? `apt-get install redis-server`)".into())
}

async fn pings(port: u16) -> bool {
    let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut answer = [0u8; 7];
    tcp.write_all(b"PING\r\n").await.is_ok()
        && tcp.read_exact(&mut answer).await.is_ok()
        && &answer == b"+PONG\r\n"
}

/// `loadgen fanout-redis`.
pub(crate) async fn run(args: ClusterArgs) -> Result<()> {
    if args.protocol == "socketcluster" {
        return run_socketcluster(args).await;
    }
    let protolink = protolink_binary(args.run.protolink.clone())?;
    let (redis, port) = start_redis(&args.redis_server).await?;
    let broker = format!("redis://127.0.0.1:{port}");
    let skynet = |broker: Option<&str>| {
        let mut command = Command::new(&protolink);
        command.args(["serve", "skynet", "--listen", "127.0.0.1:0"]);
        if let Some(url) = broker {
            command.args(["--broker", url]);
        }
        Proc::spawn(&mut command)
    };
    let mut alone = skynet(None)?;
    let mut first = skynet(Some(&broker))?;
    let mut second = skynet(Some(&broker))?;
    let alone_url = alone.url().await?;
    let first_url = first.url().await?;
    let second_url = second.url().await?;
    println!(
        "fanout-redis: 1 publisher, {} subscribers on one channel; one server alone against two on \
         Redis (subscribers spread over both, the publisher on the first); {} rounds of {} s (+{} s \
         warm-up), window {}",
        args.run.subscribers, args.run.rounds, args.run.seconds, args.run.warmup, args.run.window
    );
    let mut alone_runs: Vec<Spread> = Vec::new();
    let mut cluster_runs: Vec<Spread> = Vec::new();
    for round in 0..args.run.rounds {
        let mut line = format!("round {}:", round + 1);
        for which in 0..2 {
            if (which + round) % 2 == 0 {
                let result = measure(&[&alone_url], &alone_url, &[&alone], &args.run).await?;
                line.push_str(&format!("  alone {:.0} deliveries/s", result.rate));
                alone_runs.push(result);
            } else {
                let result = measure(
                    &[&first_url, &second_url],
                    &first_url,
                    &[&first, &second, &redis],
                    &args.run,
                )
                .await?;
                line.push_str(&format!("  on Redis {:.0} deliveries/s", result.rate));
                cluster_runs.push(result);
            }
        }
        println!("{line}");
    }
    let rates = |runs: &[Spread]| runs.iter().map(|r| r.rate).collect::<Vec<_>>();
    let median_of = |runs: &[Spread], f: &dyn Fn(&Spread) -> f64| {
        spread(&runs.iter().map(f).collect::<Vec<_>>()).0
    };
    println!();
    println!(
        "| set-up | process | deliveries/s (median, min–max) | CPU per delivery (µs, median) | RSS with {} subscribers (KiB) | RSS under load (KiB) | peak RSS (KiB) |",
        args.run.subscribers
    );
    println!("|---|---|---|---|---|---|---|");
    let per_delivery = |r: &Spread, i: usize| r.cpu[i] * 1e6 / r.deliveries.max(1) as f64;
    let (median, min, max) = spread(&rates(&alone_runs));
    println!(
        "| one process, in-process broker | protolink serve skynet | {median:.0} ({min:.0}–{max:.0}) | {:.2} | {:.0} | {:.0} | {} |",
        median_of(&alone_runs, &|r| per_delivery(r, 0)),
        median_of(&alone_runs, &|r| r.connected_rss[0] as f64),
        median_of(&alone_runs, &|r| r.loaded_rss[0] as f64),
        alone.hwm_kib()?
    );
    let (median, min, max) = spread(&rates(&cluster_runs));
    let names = ["server 1 (publisher's)", "server 2", "redis-server"];
    for (i, (name, proc)) in names.iter().zip([&first, &second, &redis]).enumerate() {
        let rate = if i == 0 {
            format!("{median:.0} ({min:.0}–{max:.0})")
        } else {
            "″".to_owned()
        };
        println!(
            "| two processes on Redis | {name} | {rate} | {:.2} | {:.0} | {:.0} | {} |",
            median_of(&cluster_runs, &|r| per_delivery(r, i)),
            median_of(&cluster_runs, &|r| r.connected_rss[i] as f64),
            median_of(&cluster_runs, &|r| r.loaded_rss[i] as f64),
            proc.hwm_kib()?
        );
    }
    let all = |r: &Spread| r.cpu.iter().sum::<f64>() * 1e6 / r.deliveries.max(1) as f64;
    println!(
        "| two processes on Redis | all three | | {:.2} | | | |",
        median_of(&cluster_runs, &all)
    );
    let (median, min, max) = ratio_spread(&rates(&cluster_runs), &rates(&alone_runs));
    println!();
    println!("| ratio | median | min–max (per round) |");
    println!("|---|---|---|");
    println!("| two on Redis ÷ one in-process | {median:.2}× | {min:.2}–{max:.2} |");
    for proc in [alone, first, second, redis] {
        proc.stop().await;
    }
    Ok(())
}

/// The three SocketCluster set-ups, in the order of the tables.
const SETUPS: [&str; 3] = [
    "one process, in-process broker",
    "two processes on Redis",
    "two socketcluster-server 20.x on SCC",
];

/// `loadgen fanout-redis --protocol socketcluster`.
async fn run_socketcluster(args: ClusterArgs) -> Result<()> {
    if args.run.subscribers < 2 {
        return Err("--subscribers must be at least 2".into());
    }
    let protolink = protolink_binary(args.run.protolink.clone())?;
    let interop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop");
    for package in ["socketcluster-server", "scc-broker", "scc-broker-client"] {
        if !interop.join("node_modules").join(package).is_dir() {
            return Err(format!(
                "{} has no node_modules/{package}: run `npm ci --prefix interop` first",
                interop.display()
            )
            .into());
        }
    }
    let (redis, port) = start_redis(&args.redis_server).await?;
    let broker = format!("redis://127.0.0.1:{port}");
    let ours = |broker: Option<&str>| {
        let mut command = Command::new(&protolink);
        command.args([
            "serve",
            "socketcluster",
            "--listen",
            "127.0.0.1:0",
            "--protocol-version",
            "2",
        ]);
        if let Some(url) = broker {
            command.args(["--broker", url]);
        }
        Proc::spawn(&mut command)
    };
    let node = |script: &str, script_args: &[&str]| {
        Proc::spawn(
            Command::new(&args.node)
                .arg(interop.join(script))
                .args(script_args),
        )
        .map_err(|e| format!("cannot start {}: {e}", args.node.display()))
    };
    let mut alone = ours(None)?;
    let mut first = ours(Some(&broker))?;
    let mut second = ours(Some(&broker))?;
    let urls = [alone.url().await?, first.url().await?, second.url().await?];
    let mut state = node("scc-cluster.js", &["state"])?;
    let state_url = state.url().await?;
    let state_address = state_url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| format!("unexpected state server URL {state_url}"))?
        .to_owned();
    let mut scc_broker = node("scc-cluster.js", &["broker", &state_address])?;
    scc_broker.url().await?;
    let sc = ["--port", "0", "--protocol-version", "2", "--scc-state"];
    let mut scc_first = node(
        "sc-server.js",
        &[&sc[..], &[state_address.as_str()]].concat(),
    )?;
    let mut scc_second = node(
        "sc-server.js",
        &[&sc[..], &[state_address.as_str()]].concat(),
    )?;
    let scc_urls = [scc_first.url().await?, scc_second.url().await?];
    for proc in [&mut state, &mut scc_broker, &mut scc_first, &mut scc_second] {
        // The Node servers log a JSON line per connection event; only errors are of interest.
        proc.drain(|line| {
            if line.contains("rror") {
                eprintln!("node: {line}");
            }
        });
    }
    println!(
        "fanout-redis --protocol socketcluster: 1 publisher, {} subscribers on one channel; one \
         protolink server alone, two on Redis, two socketcluster-server 20.x on SCC (subscribers \
         spread over both, the publisher on the first); {} rounds of {} s (+{} s warm-up), window {}",
        args.run.subscribers, args.run.rounds, args.run.seconds, args.run.warmup, args.run.window
    );
    let procs: [Vec<(&str, &Proc)>; 3] = [
        vec![("protolink serve socketcluster", &alone)],
        vec![
            ("protolink server 1 (publisher's)", &first),
            ("protolink server 2", &second),
            ("redis-server", &redis),
        ],
        vec![
            ("sc-server.js 1 (publisher's)", &scc_first),
            ("sc-server.js 2", &scc_second),
            ("scc-broker", &scc_broker),
            ("SCC state server", &state),
        ],
    ];
    let mut runs: [Vec<Spread>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..args.run.rounds {
        let mut line = format!("round {}:", round + 1);
        for k in 0..3 {
            let setup = (k + round) % 3;
            let procs: Vec<&Proc> = procs[setup].iter().map(|(_, p)| *p).collect();
            let result = match setup {
                0 => fanout(&[&urls[0]], &urls[0], &procs, Ping::V2, &args.run).await?,
                1 => fanout(&[&urls[1], &urls[2]], &urls[1], &procs, Ping::V2, &args.run).await?,
                _ => {
                    fanout(
                        &[&scc_urls[0], &scc_urls[1]],
                        &scc_urls[0],
                        &procs,
                        Ping::V2,
                        &args.run,
                    )
                    .await?
                }
            };
            line.push_str(&format!(
                "  {}: {:.0} deliveries/s;",
                SETUPS[setup], result.rate
            ));
            runs[setup].push(result);
        }
        println!("{}", line.trim_end_matches(';'));
    }
    let median_of = |runs: &[Spread], f: &dyn Fn(&Spread) -> f64| {
        spread(&runs.iter().map(f).collect::<Vec<_>>()).0
    };
    let per_delivery = |r: &Spread, i: usize| r.cpu[i] * 1e6 / r.deliveries.max(1) as f64;
    let all = |r: &Spread| r.cpu.iter().sum::<f64>() * 1e6 / r.deliveries.max(1) as f64;
    println!();
    println!(
        "| set-up | process | deliveries/s (median, min–max) | CPU per delivery (µs, median) | CPU (cores, median) | RSS with {} subscribers (KiB, median) | RSS under load (KiB, median) | peak RSS (KiB) |",
        args.run.subscribers
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (setup, members) in procs.iter().enumerate() {
        let rates: Vec<f64> = runs[setup].iter().map(|r| r.rate).collect();
        let (median, min, max) = spread(&rates);
        for (i, (name, proc)) in members.iter().enumerate() {
            let rate = if i == 0 {
                format!("{median:.0} ({min:.0}–{max:.0})")
            } else {
                "″".to_owned()
            };
            // VmHWM is only brought up to date now and then, so it can lag a reading of VmRSS.
            let peak = runs[setup]
                .iter()
                .map(|r| r.loaded_rss[i])
                .fold(proc.hwm_kib()?, u64::max);
            println!(
                "| {} | {name} | {rate} | {:.2} | {:.2} | {:.0} | {:.0} | {peak} |",
                SETUPS[setup],
                median_of(&runs[setup], &|r| per_delivery(r, i)),
                median_of(&runs[setup], &|r| r.cpu[i] / r.seconds),
                median_of(&runs[setup], &|r| r.connected_rss[i] as f64),
                median_of(&runs[setup], &|r| r.loaded_rss[i] as f64),
            );
        }
        if members.len() > 1 {
            println!(
                "| {} | all {} | | {:.2} | {:.2} | | | |",
                SETUPS[setup],
                members.len(),
                median_of(&runs[setup], &all),
                median_of(&runs[setup], &|r| r.cpu.iter().sum::<f64>() / r.seconds),
            );
        }
    }
    let rates = |setup: usize| runs[setup].iter().map(|r| r.rate).collect::<Vec<_>>();
    let cpu = |setup: usize| runs[setup].iter().map(all).collect::<Vec<_>>();
    println!();
    println!("| ratio | median | min–max (per round) | target |");
    println!("|---|---|---|---|");
    let rows = [
        (
            "deliveries/s: two on Redis ÷ one in-process",
            ratio_spread(&rates(1), &rates(0)),
            "≥ 0.7×",
        ),
        (
            "deliveries/s: two on Redis ÷ two on SCC",
            ratio_spread(&rates(1), &rates(2)),
            "≥ 5×",
        ),
        (
            "deliveries/s: one in-process ÷ two on SCC",
            ratio_spread(&rates(0), &rates(2)),
            "—",
        ),
        (
            "CPU per delivery, all processes: two on SCC ÷ two on Redis",
            ratio_spread(&cpu(2), &cpu(1)),
            "—",
        ),
    ];
    for (what, (median, min, max), target) in rows {
        println!("| {what} | {median:.2}× | {min:.2}–{max:.2} | {target} |");
    }
    drop(procs);
    for proc in [
        alone, first, second, redis, scc_first, scc_second, scc_broker, state,
    ] {
        proc.stop().await;
    }
    Ok(())
}
