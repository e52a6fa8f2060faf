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

/// The URL a server of protocol `P` listening on `addr` is reached at: the definition's `path`.
pub(crate) fn ws_url<P: protolink::Protocol>(addr: std::net::SocketAddr) -> String {
    format!("ws://{addr}{}", P::PATH.unwrap_or("/"))
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when it
/// is first awaited: a server calls it before it says it is listening, so a signal sent right
/// after that line stops it cleanly instead of killing it.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {}
                () = wait(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves until `stop` (a [`shutdown_signal`]) resolves, then shuts the server down gracefully
/// (requests in flight may finish) and waits for its accept loop.
pub(crate) async fn serve_until_signal(
    stop: impl std::future::Future<Output = ()>,
    shutdown: protolink::ws::ShutdownHandle,
    task: tokio::task::JoinHandle<()>,
) -> std::io::Result<()> {
    stop.await;
    tracing::info!("shutting down");
    shutdown.shutdown();
    let _ = task.await;
    Ok(())
}
