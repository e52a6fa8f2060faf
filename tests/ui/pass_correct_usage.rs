//! Each side sends what it may, and handlers answer requests with their reply types.

use protolink::{Dispatch, RemoteError, RequestError, Sender};
use protolink_protocols::litecord_example::{
    Client, ClientHandler, ClientSender, GetGuild, Guild, Heartbeat, HeartbeatAck, Hello, HelloAck,
    PresenceStatus, Server, ServerHandler, ServerSender, TokenValidate, TokenValidity,
    UserPresence,
};

struct ClientApp;

impl ClientHandler for ClientApp {
    async fn token_validate(
        &self,
        request: TokenValidate,
    ) -> Result<TokenValidity, RemoteError> {
        Ok(TokenValidity::Bool(!request.token.is_empty()))
    }
}

struct Gateway;

impl ServerHandler for Gateway {
    async fn get_guild(&self, request: GetGuild) -> Result<Guild, RemoteError> {
        if request.guild_id == "1" {
            Ok(Guild {
                id: request.guild_id,
                name: "Guild".into(),
                owner_id: "2".into(),
                member_count: 3,
            })
        } else {
            Err(RemoteError::new("no such guild"))
        }
    }

    async fn user_presence(&self, _message: UserPresence) {}
}

#[allow(dead_code)]
async fn client_side<S: Sender<Client>>(link: &S) -> Result<Guild, RequestError> {
    link.send(HelloAck {
        password: "123".into(),
    })
    .await?;
    link.send(Heartbeat { s: Some(0) }).await?;
    link.user_presence("1".into(), PresenceStatus::Online, None)
        .await?;
    let _ = link
        .request(GetGuild {
            guild_id: "1".into(),
        })
        .await?;
    link.get_guild("1".into()).await
}

#[allow(dead_code)]
async fn server_side<S: Sender<Server>>(link: &S) -> Result<TokenValidity, RequestError> {
    link.send(Hello { hb_interval: 500 }).await?;
    link.send(HeartbeatAck {}).await?;
    let _ = link
        .request(TokenValidate {
            token: "dXNlcg.x.y".into(),
        })
        .await?;
    link.token_validate("dXNlcg.x.y".into()).await
}

fn dispatches<S: Dispatch<H>, H>() {}

fn main() {
    dispatches::<Client, ClientApp>();
    dispatches::<Server, Gateway>();
}
