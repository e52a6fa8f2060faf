//! The AsyncAPI emitter: an AsyncAPI 3.0 document of a protocol, from the server's side of each
//! link.
//!
//! One channel per link (`client-server`, `control-master`, ...) at the server's URL path, holding
//! every message valid on the link and every request's reply. One operation per message and
//! direction: the server `receive`s what the client sends and `send`s what it sends itself;
//! a request's operation has a `reply` naming its reply message. Message payloads reference the
//! frame schemas of [`crate::emit::schema`], held in `components.schemas` with the named types.

use serde_json::{Map, Value, json};

use crate::emit::schema;
use crate::model::*;

/// Where the protocol is served: what the document's server says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `host[:port]`.
    pub host: String,
    /// The URL path, such as `/connect`; by default the definition's `path`, or `/`.
    pub path: Option<String>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            host: "localhost".to_owned(),
            path: None,
        }
    }
}

/// The AsyncAPI document of one protocol, as pretty-printed JSON ending with a newline (AsyncAPI
/// tools read JSON as well as YAML).
pub fn render(protocol: &Protocol, server: &Server) -> String {
    let mut text = serde_json::to_string_pretty(&document(protocol, server)).unwrap_or_default();
    text.push('\n');
    text
}

/// The AsyncAPI document of one protocol.
pub fn document(p: &Protocol, server: &Server) -> Value {
    let path = server
        .path
        .clone()
        .or_else(|| p.path.clone())
        .unwrap_or_else(|| "/".to_owned());
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for m in &p.messages {
        messages.insert(m.name.clone(), message(m, false));
        if m.kind == Kind::Request {
            messages.insert(format!("{}.reply", m.name), message(m, true));
        }
    }
    for &(client, server_end) in &p.links {
        let channel = format!("{}-{}", p.endpoints[client], p.endpoints[server_end]);
        let channel_ref = json!({ "$ref": format!("#/channels/{channel}") });
        let mut own = Map::new();
        for m in &p.messages {
            let inbound = m.directions.contains(&(client, server_end));
            let outbound = m.directions.contains(&(server_end, client));
            if !inbound && !outbound {
                continue;
            }
            own.insert(
                m.name.clone(),
                json!({ "$ref": format!("#/components/messages/{}", m.name) }),
            );
            if m.kind == Kind::Request {
                own.insert(
                    format!("{}.reply", m.name),
                    json!({ "$ref": format!("#/components/messages/{}.reply", m.name) }),
                );
            }
            for (applies, action, word) in [(inbound, "receive", "from"), (outbound, "send", "to")]
            {
                if !applies {
                    continue;
                }
                let id = format!(
                    "{}_{action}s_{}_{word}_{}",
                    p.endpoints[server_end], m.name, p.endpoints[client]
                );
                let mut operation = Map::new();
                operation.insert("action".to_owned(), json!(action));
                operation.insert("channel".to_owned(), channel_ref.clone());
                operation.insert(
                    "messages".to_owned(),
                    json!([{ "$ref": format!("#/channels/{channel}/messages/{}", m.name) }]),
                );
                let summary = match action {
                    "receive" => format!(
                        "The {} receives `{}` from the {}.",
                        p.endpoints[server_end], m.name, p.endpoints[client]
                    ),
                    _ => format!(
                        "The {} sends `{}` to the {}.",
                        p.endpoints[server_end], m.name, p.endpoints[client]
                    ),
                };
                operation.insert("summary".to_owned(), json!(summary));
                if m.kind == Kind::Request {
                    operation.insert(
                        "reply".to_owned(),
                        json!({
                            "channel": channel_ref,
                            "messages": [{
                                "$ref": format!("#/channels/{channel}/messages/{}.reply", m.name)
                            }]
                        }),
                    );
                }
                operations.insert(id, Value::Object(operation));
            }
        }
        channels.insert(
            channel.clone(),
            json!({
                "address": path,
                "title": format!("{} → {}", p.endpoints[client], p.endpoints[server_end]),
                "description": format!(
                    "A WebSocket from a {} (which connects) to the {} (which accepts); text frames, one JSON value each.",
                    p.endpoints[client], p.endpoints[server_end]
                ),
                "servers": [{ "$ref": "#/servers/reference" }],
                "messages": own,
            }),
        );
    }
    let mut info = Map::new();
    info.insert("title".to_owned(), json!(p.name));
    info.insert("version".to_owned(), json!(p.version));
    if let Some(first) = first_paragraph(&p.docs) {
        info.insert("description".to_owned(), json!(first));
    }
    json!({
        "asyncapi": "3.0.0",
        "info": info,
        "defaultContentType": "application/json",
        "servers": {
            "reference": {
                "host": server.host,
                "protocol": "ws",
                "pathname": path,
                "description": "Where the protocol is served.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schema::components(p, "#/components/schemas/"),
        }
    })
}

/// A message of the document: a message's frame, or with `reply` a request's reply frame.
fn message(m: &Message, reply: bool) -> Value {
    let (name, schema) = if reply {
        (format!("{}.reply", m.name), format!("reply.{}", m.name))
    } else {
        (m.name.clone(), format!("frame.{}", m.name))
    };
    let mut out = Map::new();
    out.insert("name".to_owned(), json!(name));
    out.insert(
        "title".to_owned(),
        json!(if reply {
            format!("The reply to {}", m.name)
        } else {
            m.name.clone()
        }),
    );
    if !reply {
        if let Some(summary) = first_paragraph(&m.docs) {
            out.insert("summary".to_owned(), json!(summary));
        }
    }
    out.insert(
        "payload".to_owned(),
        json!({ "$ref": format!("#/components/schemas/{schema}") }),
    );
    Value::Object(out)
}

/// The first paragraph of docs, on one line.
fn first_paragraph(docs: &[String]) -> Option<String> {
    let text: Vec<&str> = docs
        .iter()
        .map(|l| l.trim())
        .take_while(|l| !l.is_empty())
        .collect();
    (!text.is_empty()).then(|| text.join(" "))
}
