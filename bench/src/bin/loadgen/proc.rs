//! Child processes, resident memory, and small statistics.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// A server (or client) in its own process. Dropping it kills the process.
pub(crate) struct Proc {
    child: Child,
    /// Closing stdin tells this binary's own children to exit.
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
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
            lines: BufReader::new(stdout).lines(),
            pid,
        })
    }

    /// The next line on the child's stdout, waiting at most `wait`.
    pub(crate) async fn line(&mut self, wait: Duration) -> Result<String> {
        match tokio::time::timeout(wait, self.lines.next_line()).await {
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

/// The errors a bench can hit on I/O, as our error type.
pub(crate) fn io(e: impl std::fmt::Display) -> Error {
    io::Error::other(e.to_string()).into()
}
