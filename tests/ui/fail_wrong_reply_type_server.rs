//! The server answers GET_GUILD with a `Guild`, not with TOKEN_VALIDATE's reply.

use protolink::RemoteError;
use protolink_protocols::litecord_example::{GetGuild, ServerHandler, TokenValidity};

struct Gateway;

impl ServerHandler for Gateway {
    async fn get_guild(&self, _request: GetGuild) -> Result<TokenValidity, RemoteError> {
        Ok(TokenValidity::Bool(true))
    }
}

fn main() {
    let _ = Gateway;
}
