//! Child processes, resident memory, and small statistics.

use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// A server (or client) in its own process. Dropping it kills the process.
pub(crate) struct Proc {
    child: Child,
    /// Closing stdin tells this binary's own children to exit.
    stdin: Option<ChildStdin>,
    /// `None` once [`Proc::drain`] took it.
    lines: Option<Lines<BufReader<ChildStdout>>>,
    pub(crate) pid: u32,
}

impl Proc {
    /// Starts this binary with `args`.
    pub(crate) fn spawn_self(args: &[&str]) -> Result<Proc> {
        let exe = std::env::current_exe()?;
        Proc::spawn(Command::new(exe).args(args))
    }

    /// Starts a command with piped stdin and stdout; stderr is inherited.
    pub(crate) fn spawn(command: &mut Command) -> Result<Proc> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let pid = child.id().ok_or("the child exited at once")?;
        Ok(Proc {
            stdin: child.stdin.take(),
            child,
            lines: Some(BufReader::new(stdout).lines()),
            pid,
        })
    }

    /// The next line on the child's stdout, waiting at most `wait`.
    pub(crate) async fn line(&mut self, wait: Duration) -> Result<String> {
        let lines = self
            .lines
            .as_mut()
            .ok_or("the child's stdout is being drained")?;
        match tokio::time::timeout(wait, lines.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => Err("the child closed its stdout".into()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(format!("no line from the child within {wait:?}").into()),
        }
    }

    /// Reads the first line, `listening on URL`, and returns the URL.
    pub(crate) async fn url(&mut self) -> Result<String> {
        let line = self.line(Duration::from_secs(30)).await?;
        line.strip_prefix("listening on ")
            .map(str::to_owned)
            .ok_or_else(|| format!("unexpected first line {line:?}").into())
    }

    /// From now on, reads every line the child prints (so its stdout pipe never fills) and hands
    /// it to `each`, in a task of its own.
    pub(crate) fn drain(&mut self, mut each: impl FnMut(String) + Send + 'static) {
        if let Some(mut lines) = self.lines.take() {
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    each(line);
                }
            });
        }
    }

    /// Writes a line to the child's stdin.
    pub(crate) async fn say(&mut self, text: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin.write_all(format!("{text}\n").as_bytes()).await?;
        stdin.flush().await?;
        Ok(())
    }

    /// Resident memory now, in KiB.
    pub(crate) fn rss_kib(&self) -> Result<u64> {
        status_kib(self.pid, "VmRSS:")
    }

    /// Peak resident memory, in KiB.
    pub(crate) fn hwm_kib(&self) -> Result<u64> {
        status_kib(self.pid, "VmHWM:")
    }

    /// CPU time the process used so far (user and system, all threads), in seconds.
    pub(crate) fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // The fields after the command name (which may hold spaces) start with field 3; utime
        // and stime are fields 14 and 15, in ticks of USER_HZ (100 on Linux).
        let rest = stat.rsplit_once(')').ok_or("bad /proc/PID/stat")?.1;
        let mut fields = rest.split_whitespace().skip(11);
        let mut ticks = 0u64;
        for _ in 0..2 {
            ticks += fields
                .next()
                .ok_or("short /proc/PID/stat")?
                .parse::<u64>()?;
        }
        Ok(ticks as f64 / 100.0)
    }

    /// Stops the process: closes stdin, then kills it.
    pub(crate) async fn stop(mut self) {
        self.stdin = None;
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// A `kB` line of `/proc/PID/status`.
pub(crate) fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .ok_or_else(|| format!("no {key} in /proc/{pid}/status"))?;
    Ok(line
        .trim_start_matches(key)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?)
}

/// The `protolink` binary: `given`, else the one beside this binary.
pub(crate) fn protolink_binary(given: Option<PathBuf>) -> Result<PathBuf> {
    let path = match given {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .ok_or("no directory")?
            .join("protolink"),
    };
    if !path.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release -p protolink-cli` first",
            path.display()
        )
        .into());
    }
    Ok(path)
}

/// Runs a server until its stdin closes (the parent went away) or `serve` ends.
pub(crate) async fn until_stdin_closes(serve: impl Future<Output = Result<()>>) -> Result<()> {
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 256];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        r = serve => r,
        () = stdin_closed => Ok(()),
    }
}

/// Prints the line a parent waits for.
pub(crate) fn announce(url: &str) {
    println!("listening on {url}");
}

/// Median, minimum and maximum.
pub(crate) fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    (median, v[0], v[v.len() - 1])
}

/// Median, minimum and maximum of the per-round ratios `ours[i] / theirs[i]`.
pub(crate) fn ratio_spread(ours: &[f64], theirs: &[f64]) -> (f64, f64, f64) {
    let ratios: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
    spread(&ratios)
}

/// Prints a side-by-side run as two Markdown tables: for each load (labelled in `loads`, the
/// column named `column`) each server's replies a second (median and range over the rounds) and
/// its CPU per reply; then the first server's rate over each other's, round by round.
/// `rates[load][server]` and `cpu[load][server]` hold one value per round.
pub(crate) fn print_side_by_side(
    column: &str,
    loads: &[String],
    servers: &[&str],
    rates: &[Vec<Vec<f64>>],
    cpu: &[Vec<Vec<f64>>],
) {
    println!();
    println!(
        "| {column} | server | replies/s (median) | min–max | server CPU per reply (µs, median) |"
    );
    println!("|---|---|---|---|---|");
    for (l, load) in loads.iter().enumerate() {
        for (k, server) in servers.iter().enumerate() {
            let (median, min, max) = spread(&rates[l][k]);
            let (cpu_median, _, _) = spread(&cpu[l][k]);
            println!("| {load} | {server} | {median:.0} | {min:.0}–{max:.0} | {cpu_median:.2} |");
        }
    }
    println!();
    println!("| {column} | ratio | median | min–max (per round) |");
    println!("|---|---|---|---|");
    for (l, load) in loads.iter().enumerate() {
        for (k, server) in servers.iter().enumerate().skip(1) {
            let (median, min, max) = ratio_spread(&rates[l][0], &rates[l][k]);
            let first = servers[0];
            println!("| {load} | {first} ÷ {server} | {median:.2}× | {min:.2}–{max:.2} |");
        }
    }
}

/// Takes `sample` after `warmup` unmeasured seconds and again `seconds` later; returns both
/// samples and the seconds between them.
pub(crate) async fn window<T>(warmup: f64, seconds: f64, sample: impl Fn() -> T) -> (T, T, f64) {
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    let (first, t0) = (sample(), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (last, t1) = (sample(), Instant::now());
    (first, last, (t1 - t0).as_secs_f64())
}

/// The errors a bench can hit on I/O, as our error type.
pub(crate) fn io(e: impl std::fmt::Display) -> Error {
    io::Error::other(e.to_string()).into()
}
