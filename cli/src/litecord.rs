//! The Litecord reference server and client, built only on the generated `litecord_example`
//! bindings (Litecord's common protocol with example methods).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use protolink::ws::{Backoff, WsServer};
use protolink::{Link, RemoteError, Session};
use protolink_protocols::litecord_example::{
    self as lc, Client, ClientHandler, ClientSender, Server, ServerHandler, ServerSender,
};

use crate::output::{Printer, serve_until_signal, shutdown_signal};

/// What the server knows: guilds are made up from their ids.
struct Gateway {
    out: Printer,
}

impl ServerHandler for Gateway {
    async fn get_guild(&self, request: lc::GetGuild) -> Result<lc::Guild, RemoteError> {
        self.out
            .line(serde_json::json!({"received": "GET_GUILD", "guild_id": request.guild_id}));
        Ok(lc::Guild {
            name: format!("Guild {}", request.guild_id),
            owner_id: "1".to_owned(),
            member_count: 1,
            id: request.guild_id,
        })
    }

    async fn user_presence(&self, message: lc::UserPresence) {
        self.out
            .line(serde_json::json!({"received": "USER_PRESENCE", "payload": message}));
    }
}

/// `protolink serve litecord`.
pub(crate) async fn serve(
    listen: &str,
    password: String,
    hb_interval: u32,
    validate: Option<String>,
) -> std::io::Result<()> {
    let server = WsServer::<Server>::bind(listen).await?.path("/");
    let out = Printer::stdout();
    let stop = shutdown_signal();
    out.line_text(&format!("listening on ws://{}/", server.local_addr()?));
    let session =
        Session::new()
            .with(lc::Hello { hb_interval })
            .authenticate(move |ack: lc::HelloAck| {
                let ok = ack.password == password;
                async move {
                    if ok {
                        Ok(())
                    } else {
                        Err("wrong password".to_owned())
                    }
                }
            });
    let printer = out.clone();
    let (shutdown, task) = server.serve(session, move |link: Link<Server>| {
        if let Some(token) = validate.clone() {
            // Ask every client about a token once it is authenticated, as the real gateway does.
            let out = printer.clone();
            tokio::spawn(async move {
                if link.ready().await.is_ok() {
                    match link.token_validate(token).await {
                        Ok(reply) => out.line(serde_json::json!({"token_validate": reply})),
                        Err(e) => {
                            out.line(serde_json::json!({"token_validate_error": e.to_string()}))
                        }
                    }
                }
            });
        }
        Gateway {
            out: printer.clone(),
        }
    });
    serve_until_signal(stop, shutdown, task).await
}

/// Answers TOKEN_VALIDATE from a list of valid tokens.
struct Component {
    valid: Arc<BTreeSet<String>>,
    out: Printer,
}

impl ClientHandler for Component {
    async fn token_validate(
        &self,
        request: lc::TokenValidate,
    ) -> Result<lc::TokenValidity, RemoteError> {
        self.out
            .line(serde_json::json!({"received": "TOKEN_VALIDATE", "token": request.token}));
        // As rest-py answers: a bare `true`, or `[false, reason]`.
        Ok(if self.valid.contains(&request.token) {
            lc::TokenValidity::Bool(true)
        } else {
            lc::TokenValidity::TokenVerdict(lc::TokenVerdict {
                valid: false,
                reason: Some("user not found".to_owned()),
            })
        })
    }
}

/// `protolink litecord connect`: stays connected (reconnecting after a random wait of at least
/// 1 s), keeps the heartbeat, answers the server's requests, and optionally asks for guilds.
pub(crate) async fn connect(
    url: String,
    password: String,
    valid_tokens: Vec<String>,
    guilds: Vec<String>,
) {
    let out = Printer::stdout();
    let valid = Arc::new(valid_tokens.into_iter().collect::<BTreeSet<_>>());
    let session = Session::new().with(lc::HelloAck { password });
    let printer = out.clone();
    let component = move |_| Component {
        valid: valid.clone(),
        out: printer.clone(),
    };
    let backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(30),
    };
    let client = protolink::ws::connect::<Client>(&url)
        .session(session)
        .handler(component)
        .reconnecting(backoff, move |link: Link<Client>| {
            let guilds = guilds.clone();
            let out = out.clone();
            async move {
                out.line(serde_json::json!({"connected": true}));
                for id in guilds {
                    match link.get_guild(id).await {
                        Ok(guild) => out.line(serde_json::json!({"guild": guild})),
                        Err(e) => out.line(serde_json::json!({"error": e.to_string()})),
                    }
                }
            }
        });
    shutdown_signal().await;
    client.stop_and_wait(Duration::from_secs(2)).await;
}
