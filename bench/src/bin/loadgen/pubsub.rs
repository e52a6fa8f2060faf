//! Fan-out measurements: deliveries counted per subscriber, and a publisher that never runs more
//! than a window of messages ahead of the slowest subscriber (so no server queue overflows and
//! every server gets the same closed-loop load).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::proc::{Result, io};

/// The deliveries to a set of subscribers.
#[derive(Default)]
pub(crate) struct Deliveries {
    total: Arc<AtomicU64>,
    progress: Arc<Notify>,
    counts: Vec<Arc<AtomicU64>>,
}

/// One subscriber's counter.
pub(crate) struct Received {
    count: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
    progress: Arc<Notify>,
}

impl Received {
    /// Counts one delivery (and wakes a publisher waiting for room).
    pub(crate) fn one(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        self.progress.notify_one();
    }
}

impl Deliveries {
    /// A counter for one more subscriber.
    pub(crate) fn subscriber(&mut self) -> Received {
        let count = Arc::new(AtomicU64::new(0));
        self.counts.push(count.clone());
        Received {
            count,
            total: self.total.clone(),
            progress: self.progress.clone(),
        }
    }

    /// Deliveries so far, to all subscribers.
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// A publisher over these subscribers that stays at most `window` messages ahead of the
    /// slowest and stops once `stop` is set.
    pub(crate) fn pacer(&self, window: u64, stop: Arc<AtomicBool>) -> Pacer {
        Pacer {
            counts: self.counts.clone(),
            progress: self.progress.clone(),
            window,
            stop,
        }
    }
}

/// See [`Deliveries::pacer`].
pub(crate) struct Pacer {
    counts: Vec<Arc<AtomicU64>>,
    progress: Arc<Notify>,
    window: u64,
    stop: Arc<AtomicBool>,
}

impl Pacer {
    /// Queues `frame(n)` for the n-th message (from 0) on `out` (a batching writer), in batches
    /// of up to 64, whenever there is room; returns how many it sent.
    pub(crate) async fn run(
        self,
        out: mpsc::Sender<String>,
        mut frame: impl FnMut(u64) -> String,
    ) -> Result<u64> {
        let mut sent = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let slowest = self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .min()
                .unwrap_or(sent);
            let room = (slowest + self.window).saturating_sub(sent);
            if room == 0 {
                // Woken by deliveries; the timeout only guards against a lost wake-up.
                let _ =
                    tokio::time::timeout(Duration::from_millis(5), self.progress.notified()).await;
                continue;
            }
            for _ in 0..room.min(64) {
                out.send(frame(sent)).await.map_err(io)?;
                sent += 1;
            }
            // Let the writer take the batch before looking again.
            tokio::task::yield_now().await;
        }
        Ok(sent)
    }
}

/// The options every pub/sub load run takes (`fanout`, `socketcluster`).
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// Subscribers on the channel.
    #[arg(long, default_value_t = 100)]
    pub(crate) subscribers: usize,
    /// Measured seconds per server and round.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) seconds: f64,
    /// Unmeasured seconds before each measurement.
    #[arg(long, default_value_t = 0.5)]
    pub(crate) warmup: f64,
    /// Rounds, each measuring both servers back to back in alternating order.
    #[arg(long, default_value_t = 5)]
    pub(crate) rounds: usize,
    /// Messages the publisher may be ahead of the slowest subscriber.
    #[arg(long, default_value_t = 256)]
    pub(crate) window: u64,
    /// The `protolink` binary (build it with `cargo build --release -p protolink-cli`); by
    /// default the one beside this binary.
    #[arg(long)]
    pub(crate) protolink: Option<PathBuf>,
}
