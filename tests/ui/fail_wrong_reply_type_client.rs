//! The client answers TOKEN_VALIDATE with a `TokenValidity`, not with another request's
//! reply.

use protolink::RemoteError;
use protolink_protocols::litecord_example::{ClientHandler, Guild, TokenValidate};

struct Validator;

impl ClientHandler for Validator {
    async fn token_validate(&self, request: TokenValidate) -> Result<Guild, RemoteError> {
        Ok(Guild {
            id: "1".into(),
            name: request.token,
            owner_id: "2".into(),
            member_count: 1,
        })
    }
}

fn main() {
    let _ = Validator;
}
