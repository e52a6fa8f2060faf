//! HEARTBEAT_ACK is the server's: a client link cannot send it.

use protolink::Sender;
use protolink_protocols::litecord_example::{Client, HeartbeatAck};

#[allow(dead_code)]
async fn acknowledge<S: Sender<Client>>(link: &S) {
    let _ = link.send(HeartbeatAck {}).await;
}

fn main() {}
