//! `tally`: a protocol of its own (`protocols/tally.protocol`), from its definition to a server
//! and two clients talking over real WebSockets: a request with its reply, an event from a
//! client, and a broadcast to every client.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::SeqCst};

use protolink::broker::{Broker, SubscriberId};
use protolink::prelude::*;
use protolink::{Message, SendableBy};
use tokio::sync::mpsc;

protolink::include_protocol!("tally");
use tally::{ClientHandler, ClientSender, ServerHandler};

/// What every connection shares: the tally, and the broker that fans out to every client.
#[derive(Default)]
struct Shared {
    total: AtomicI64,
    next_id: AtomicU64,
    clients: LocalBroker,
}

impl Shared {
    /// Encodes `message` once and sends it to every client but `except`.
    async fn tell<M: Message + SendableBy<tally::Server>>(&self, message: &M, except: Option<u64>) {
        let everyone = self
            .clients
            .publish_message::<tally::Server, _>(&["all"], message, except);
        let _ = everyone.await;
    }
}

/// The server's side of one connection.
struct Connection {
    shared: Arc<Shared>,
    id: SubscriberId,
}

impl ServerHandler for Connection {
    async fn add(&self, request: tally::Add) -> Result<tally::AddReply, RemoteError> {
        let total = self.shared.total.fetch_add(request.amount, SeqCst) + request.amount;
        self.shared.tell(&tally::Total { total }, None).await;
        Ok(tally::AddReply { total })
    }

    async fn note(&self, note: tally::Note) {
        let noted = tally::Noted { text: note.text };
        self.shared.tell(&noted, Some(self.id)).await;
    }
}

/// A client prints what the server tells it.
struct Printer {
    name: &'static str,
    lines: mpsc::UnboundedSender<String>,
}

impl ClientHandler for Printer {
    async fn total(&self, total: tally::Total) {
        let _ = self
            .lines
            .send(format!("{} hears the total is {}", self.name, total.total));
    }

    async fn noted(&self, noted: tally::Noted) {
        let _ = self
            .lines
            .send(format!("{} reads a note: {}", self.name, noted.text));
    }
}

/// Serves on a free port, connects two clients, and returns what they heard, in order.
async fn run() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let server = WsServer::<tally::Server>::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/", server.local_addr()?);
    let shared = Arc::new(Shared::default());
    let (_shutdown, _serving) = server.serve(Session::new(), move |link| {
        let id = shared.next_id.fetch_add(1, SeqCst);
        shared.clients.subscribe("all", id, Arc::new(link));
        Connection {
            shared: shared.clone(),
            id,
        }
    });

    let (lines, mut heard) = mpsc::unbounded_channel();
    let printer = |name| {
        let lines = lines.clone();
        move |_| Printer { name, lines }
    };
    let ann = connect::<tally::Client>(&url)
        .handler(printer("ann"))
        .await?;
    let bob = connect::<tally::Client>(&url)
        .handler(printer("bob"))
        .await?;

    let reply = ann.add(tally::Add { amount: 2 }).await?;
    let mut out = vec![format!("ann added 2, the total is {}", reply.total)];
    bob.note(tally::Note {
        text: "thanks, ann".into(),
    })
    .await?;
    // Both hear the total; only ann reads bob's note.
    for _ in 0..3 {
        out.push(heard.recv().await.ok_or("the clients stopped")?);
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    for line in run().await? {
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_example_runs() {
        let mut lines = super::run().await.expect("the example runs");
        assert_eq!(lines[0], "ann added 2, the total is 2");
        lines[1..].sort();
        assert_eq!(
            lines[1..],
            [
                "ann hears the total is 2",
                "ann reads a note: thanks, ann",
                "bob hears the total is 2",
            ]
        );
    }
}
