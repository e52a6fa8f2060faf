//! Printing JSON lines, and waiting for SIGINT or SIGTERM.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Writes whole lines to stdout, one writer at a time.
#[derive(Clone)]
pub(crate) struct Printer(Arc<Mutex<std::io::Stdout>>);

impl Printer {
    pub(crate) fn stdout() -> Self {
        Printer(Arc::new(Mutex::new(std::io::stdout())))
    }

    /// One JSON value per line.
    pub(crate) fn line(&self, value: serde_json::Value) {
        self.line_text(&value.to_string());
    }

    /// One line of text, flushed at once (tests and scripts read it as it comes).
    pub(crate) fn line_text(&self, text: &str) {
        let guard = self.0.lock();
        let mut out = match guard {
            Ok(out) => out,
            Err(poisoned) => poisoned.into_inner(),
        };
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Serves until Ctrl-C or SIGTERM, then shuts the server down gracefully (requests in flight
/// may finish) and waits for its accept loop.
pub(crate) async fn serve_until_signal(
    shutdown: protolink::ws::ShutdownHandle,
    task: tokio::task::JoinHandle<()>,
) -> std::io::Result<()> {
    shutdown_signal().await;
    tracing::info!("shutting down");
    shutdown.shutdown();
    let _ = task.await;
    Ok(())
}
