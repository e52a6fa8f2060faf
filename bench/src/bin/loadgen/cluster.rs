//! `loadgen fanout-redis`: the Skynet fan-out of `fanout` spread over two server processes
//! joined by Redis, against the same load on one process with its in-process broker.
//!
//! Three `protolink serve skynet` children: one alone, and two with `--broker redis://...` on a
//! `redis-server` of its own (free loopback port, persistence off). Each round measures both
//! set-ups back to back, in alternating order: the subscribers spread over the two servers
//! (the publisher on the first), or all on the one. Besides deliveries per second it reports
//! each process's CPU time per delivery (Redis included) and its memory.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::fanout::{Spread, measure};
use crate::proc::{Proc, Result, protolink_binary, ratio_spread, spread};
use crate::pubsub::RunArgs;

/// Options of `loadgen fanout-redis`.
#[derive(clap::Args)]
pub(crate) struct ClusterArgs {
    /// What every pub/sub load run takes.
    #[command(flatten)]
    run: RunArgs,
    /// The `redis-server` binary.
    #[arg(long, default_value = "redis-server")]
    redis_server: String,
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
