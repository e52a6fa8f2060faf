//! TOKEN_VALIDATE is a request the gateway (server) sends to its clients: a client link cannot
//! send it.

use protolink::Sender;
use protolink_protocols::litecord_example::{Client, TokenValidate};

#[allow(dead_code)]
async fn validate<S: Sender<Client>>(link: &S) {
    let _ = link
        .request(TokenValidate {
            token: "dXNlcg.x.y".into(),
        })
        .await;
}

fn main() {}
