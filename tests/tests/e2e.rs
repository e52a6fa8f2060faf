//! End-to-end: generated protocols over the runtime, on real sockets at 127.0.0.1:0 and over the
//! virtual pair. Waits are on events with timeouts, never bare sleeps.

#![allow(clippy::unwrap_used)]

mod e2e {
    mod hostile;
    mod litecord;
    mod machine;
    mod routes;
    mod runtime;
    mod tls;
}
