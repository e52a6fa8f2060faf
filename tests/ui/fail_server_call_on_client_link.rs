//! The typed call for TOKEN_VALIDATE belongs to `ServerSender`: a client link does not have it.

use protolink_protocols::litecord_example::{Client, ServerSender};

#[allow(dead_code)]
async fn validate<S: protolink::Sender<Client>>(link: &S) {
    let _ = link.token_validate("dXNlcg.x.y".into()).await;
}

fn main() {}
