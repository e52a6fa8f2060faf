//! The serde baseline: what a hand-written client would use without protolink.
//!
//! One enum per link direction, internally tagged with `#[serde(tag = "...")]`, over payload
//! structs written out to match the generated ones field for field (same types, renames,
//! defaults, `flatten` and `deny_unknown_fields`). Envelope keys that are not the tag (`cid`,
//! `seq`, `data`) are fields of struct variants. Decoding is `serde_json::from_str` of the enum;
//! encoding is `serde_json::to_writer` of the enum value.
//!
//! Litecord's tag `op` is an integer, which serde's tagged enums cannot match (a tag must be a
//! string). Its baseline reads the frame into a [`serde_json::Value`] (the same buffering serde's
//! internal tagging does into its private `Content`), matches `op` (and, for requests, the method
//! `w`), then deserialises the payload struct from the value; it encodes with a struct holding
//! `op` and the payload under `#[serde(flatten)]`. [`litecord::decode_two_pass_server`] is a
//! second, leaner workaround that the benchmark reports beside it.

use serde::Serialize;

use crate::BenchError;

/// Writes `value` as JSON.
fn write<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), BenchError> {
    serde_json::to_writer(out, value)?;
    Ok(())
}

/// Litecord (`litecord_example`): integer tag `op`, payload beside it.
pub mod litecord {
    use serde::de::IgnoredAny;
    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use crate::BenchError;

    /// OP 0 HELLO.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Hello {
        /// Heartbeat interval, in milliseconds.
        pub hb_interval: u32,
    }

    /// OP 1 HELLO_ACK.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct HelloAck {
        /// The shared secret.
        pub password: String,
    }

    /// OP 2 HEARTBEAT.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Heartbeat {
        /// The real clients' counter.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub s: Option<u64>,
    }

    /// TOKEN_VALIDATE's arguments, written as a JSON array.
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    pub struct TokenValidate {
        /// The token to check.
        pub token: String,
    }

    impl Serialize for TokenValidate {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            (&self.token,).serialize(serializer)
        }
    }

    /// A request nonce: a string on the real gateway, a number in the seed.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    #[serde(untagged)]
    pub enum Nonce {
        /// A number.
        Int(i64),
        /// A string.
        Str(String),
    }

    /// Read by JSON type, not `untagged` (which would build an error for every string nonce).
    impl<'de> Deserialize<'de> for Nonce {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct NonceVisitor;
            impl serde::de::Visitor<'_> for NonceVisitor {
                type Value = Nonce;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a nonce: an integer or a string")
                }
                fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Nonce, E> {
                    Ok(Nonce::Int(n))
                }
                fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Nonce, E> {
                    i64::try_from(n)
                        .map(Nonce::Int)
                        .map_err(|_| E::custom("nonce out of range"))
                }
                fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Nonce, E> {
                    Ok(Nonce::Str(s.to_owned()))
                }
            }
            deserializer.deserialize_any(NonceVisitor)
        }
    }

    /// A method carried by OP 4 REQUEST.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ServerCall {
        /// TOKEN_VALIDATE.
        TokenValidate(TokenValidate),
    }

    /// Everything the server sends.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ServerFrame {
        /// OP 0.
        Hello(Hello),
        /// OP 3.
        HeartbeatAck,
        /// OP 4 with its nonce.
        Request {
            /// The nonce.
            n: Nonce,
            /// The method and its arguments.
            call: ServerCall,
        },
    }

    /// Everything the client sends (the benchmark's frames).
    #[derive(Debug, Clone, PartialEq)]
    pub enum ClientFrame {
        /// OP 1.
        HelloAck(HelloAck),
        /// OP 2.
        Heartbeat(Heartbeat),
    }

    fn op(value: &Value) -> Result<u64, BenchError> {
        value
            .get("op")
            .and_then(Value::as_u64)
            .ok_or_else(|| "no integer `op`".into())
    }

    fn nonce(value: Option<Value>) -> Result<Nonce, BenchError> {
        match value {
            Some(Value::String(s)) => Ok(Nonce::Str(s)),
            Some(Value::Number(n)) => n.as_i64().map(Nonce::Int).ok_or_else(|| "bad `n`".into()),
            _ => Err("no `n`".into()),
        }
    }

    /// Decodes a server frame: `Value`, then a match on `op` (and `w`).
    pub fn decode_server(text: &str) -> Result<ServerFrame, BenchError> {
        let mut value: Value = serde_json::from_str(text)?;
        Ok(match op(&value)? {
            0 => ServerFrame::Hello(Hello::deserialize(value)?),
            3 => ServerFrame::HeartbeatAck,
            4 => {
                let object = value.as_object_mut().ok_or("not an object")?;
                let n = nonce(object.remove("n"))?;
                let args = object.remove("a").unwrap_or(Value::Null);
                let call = match object.get("w").and_then(Value::as_str) {
                    Some("TOKEN_VALIDATE") => {
                        ServerCall::TokenValidate(TokenValidate::deserialize(args)?)
                    }
                    _ => return Err("unknown method".into()),
                };
                ServerFrame::Request { n, call }
            }
            _ => return Err("unknown op".into()),
        })
    }

    /// Decodes a client frame: `Value`, then a match on `op`.
    pub fn decode_client(text: &str) -> Result<ClientFrame, BenchError> {
        let value: Value = serde_json::from_str(text)?;
        Ok(match op(&value)? {
            1 => ClientFrame::HelloAck(HelloAck::deserialize(value)?),
            2 => ClientFrame::Heartbeat(Heartbeat::deserialize(value)?),
            _ => return Err("unknown op".into()),
        })
    }

    /// Only the keys a two-pass decode looks at first.
    #[derive(Deserialize)]
    struct Envelope<'a> {
        op: u64,
        #[serde(borrow, default)]
        w: Option<&'a str>,
    }

    /// An OP 4 frame read in the second pass, with the method's arguments `A`.
    #[derive(Deserialize)]
    struct RequestFrame<A> {
        a: A,
        n: Nonce,
    }

    /// The other workaround: read `op` (and `w`) in a first pass that skips every other value,
    /// then parse the whole text again as the payload struct. No buffering, two parses.
    pub fn decode_two_pass_server(text: &str) -> Result<ServerFrame, BenchError> {
        let envelope: Envelope<'_> = serde_json::from_str(text)?;
        Ok(match (envelope.op, envelope.w) {
            (0, _) => ServerFrame::Hello(serde_json::from_str(text)?),
            (3, _) => {
                let _: IgnoredAny = serde_json::from_str(text)?;
                ServerFrame::HeartbeatAck
            }
            (4, Some("TOKEN_VALIDATE")) => {
                let frame: RequestFrame<TokenValidate> = serde_json::from_str(text)?;
                ServerFrame::Request {
                    n: frame.n,
                    call: ServerCall::TokenValidate(frame.a),
                }
            }
            _ => return Err("unknown op".into()),
        })
    }

    /// The two-pass workaround for client frames.
    pub fn decode_two_pass_client(text: &str) -> Result<ClientFrame, BenchError> {
        let envelope: Envelope<'_> = serde_json::from_str(text)?;
        Ok(match envelope.op {
            1 => ClientFrame::HelloAck(serde_json::from_str(text)?),
            2 => ClientFrame::Heartbeat(serde_json::from_str(text)?),
            _ => return Err("unknown op".into()),
        })
    }

    /// `op` followed by a payload's own keys.
    #[derive(Serialize)]
    struct WithOp<'a, T> {
        op: u8,
        #[serde(flatten)]
        payload: &'a T,
    }

    #[derive(Serialize)]
    struct OpOnly {
        op: u8,
    }

    #[derive(Serialize)]
    struct RequestOut<'a, A> {
        op: u8,
        w: &'static str,
        a: &'a A,
        n: &'a Nonce,
    }

    /// Writes a server frame.
    pub fn encode_server(out: &mut Vec<u8>, frame: &ServerFrame) -> Result<(), BenchError> {
        match frame {
            ServerFrame::Hello(payload) => super::write(out, &WithOp { op: 0, payload }),
            ServerFrame::HeartbeatAck => super::write(out, &OpOnly { op: 3 }),
            ServerFrame::Request {
                n,
                call: ServerCall::TokenValidate(a),
            } => super::write(
                out,
                &RequestOut {
                    op: 4,
                    w: "TOKEN_VALIDATE",
                    a,
                    n,
                },
            ),
        }
    }

    /// Writes a client frame.
    pub fn encode_client(out: &mut Vec<u8>, frame: &ClientFrame) -> Result<(), BenchError> {
        match frame {
            ClientFrame::HelloAck(payload) => super::write(out, &WithOp { op: 1, payload }),
            ClientFrame::Heartbeat(payload) => super::write(out, &WithOp { op: 2, payload }),
        }
    }
}

/// Skynet: string tag `type`, payload beside it; results tagged `result` and named by `for`.
pub mod skynet {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use crate::BenchError;

    /// A channel: a string or a number.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Channel {
        /// A string.
        String(String),
        /// A number.
        Int(i64),
    }

    /// `open`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Open {
        /// The channel.
        pub channel: Channel,
    }

    /// `close`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Close {
        /// The channel.
        pub channel: Channel,
    }

    /// `message`, extra keys kept.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Message {
        /// The channel.
        pub channel: Channel,
        /// The contents.
        pub message: Value,
        /// Every other key.
        #[serde(flatten)]
        pub extra: BTreeMap<String, Value>,
    }

    /// `log`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Log {
        /// First entry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub start: Option<i64>,
        /// Past the last entry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub end: Option<i64>,
    }

    /// A message as delivered.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SentMessage {
        /// The channel.
        pub channel: Channel,
        /// The contents.
        pub message: Value,
        /// The server's id.
        #[serde(rename = "ID")]
        pub id: String,
        /// Milliseconds since the epoch.
        pub time: i64,
        /// Every other key.
        #[serde(flatten)]
        pub extra: BTreeMap<String, Value>,
    }

    /// The result of `open` (and `close`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct OpenReply {
        /// The channels now open.
        pub channels: Vec<Channel>,
    }

    /// Everything a client sends.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum ClientFrame {
        /// `open`.
        #[serde(rename = "open")]
        Open(Open),
        /// `close`.
        #[serde(rename = "close")]
        Close(Close),
        /// `message`.
        #[serde(rename = "message")]
        Message(Message),
        /// `log`.
        #[serde(rename = "log")]
        Log(Log),
    }

    /// A result, tagged by the command it answers.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "for")]
    pub enum Result {
        /// For `open`.
        #[serde(rename = "open")]
        Open(OpenReply),
        /// For `close`.
        #[serde(rename = "close")]
        Close(OpenReply),
        /// For `message`.
        #[serde(rename = "message")]
        Message(SentMessage),
    }

    /// Everything the server sends.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum ServerFrame {
        /// A message event.
        #[serde(rename = "message")]
        Message(SentMessage),
        /// A command's result.
        #[serde(rename = "result")]
        Result(Result),
        /// A command's failure.
        #[serde(rename = "error")]
        Error {
            /// The text.
            error: String,
        },
    }

    /// Decodes a client frame.
    pub fn decode_client(text: &str) -> std::result::Result<ClientFrame, BenchError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Decodes a server frame.
    pub fn decode_server(text: &str) -> std::result::Result<ServerFrame, BenchError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Writes a client frame.
    pub fn encode_client(
        out: &mut Vec<u8>,
        frame: &ClientFrame,
    ) -> std::result::Result<(), BenchError> {
        super::write(out, frame)
    }

    /// Writes a server frame.
    pub fn encode_server(
        out: &mut Vec<u8>,
        frame: &ServerFrame,
    ) -> std::result::Result<(), BenchError> {
        super::write(out, frame)
    }
}

/// SocketCluster (`chat`): string tag `event`, payload under `data`, optional `cid`.
pub mod socketcluster {
    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use crate::BenchError;

    /// `typing`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Typing {
        /// The room.
        pub room: String,
    }

    /// `sendMessage`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SendMessage {
        /// The room.
        pub room: String,
        /// The text.
        pub text: String,
    }

    /// `#publish`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Publish {
        /// The channel.
        pub channel: String,
        /// The data.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub data: Option<Value>,
    }

    /// `join`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Join {
        /// The room.
        pub room: String,
    }

    /// `#subscribe`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Subscribe {
        /// The channel.
        pub channel: String,
        /// Whether to wait for authentication.
        #[serde(
            rename = "waitForAuth",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        pub wait_for_auth: Option<bool>,
        /// Extra data.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub data: Option<Value>,
    }

    /// Everything a client sends (the benchmark's frames and their neighbours).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "event")]
    pub enum ClientFrame {
        /// `#subscribe`.
        #[serde(rename = "#subscribe")]
        Subscribe {
            /// The payload.
            data: Subscribe,
            /// The call id.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            cid: Option<i64>,
        },
        /// `#unsubscribe`.
        #[serde(rename = "#unsubscribe")]
        Unsubscribe {
            /// The channel.
            data: String,
            /// The call id.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            cid: Option<i64>,
        },
        /// `#publish`.
        #[serde(rename = "#publish")]
        Publish {
            /// The payload.
            data: Publish,
            /// The call id.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            cid: Option<i64>,
        },
        /// `join`.
        #[serde(rename = "join")]
        Join {
            /// The payload.
            data: Join,
            /// The call id.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            cid: Option<i64>,
        },
        /// `sendMessage`.
        #[serde(rename = "sendMessage")]
        SendMessage {
            /// The payload.
            data: SendMessage,
            /// The call id.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            cid: Option<i64>,
        },
        /// `typing`.
        #[serde(rename = "typing")]
        Typing {
            /// The payload.
            data: Typing,
            /// The call id.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            cid: Option<i64>,
        },
    }

    /// Decodes a client frame.
    pub fn decode_client(text: &str) -> Result<ClientFrame, BenchError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Writes a client frame.
    pub fn encode_client(out: &mut Vec<u8>, frame: &ClientFrame) -> Result<(), BenchError> {
        super::write(out, frame)
    }
}

/// Clusterio: string tag `type` with `_request` / `_response` / `_event` suffixes, `seq` in
/// every frame, payload under `data`, unknown keys rejected.
pub mod clusterio {
    use serde::{Deserialize, Serialize};

    use crate::BenchError;

    /// `list_slaves` request data.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ListSlaves {}

    /// `list_instances` request data.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ListInstances {}

    /// `close` data.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Close {
        /// Why.
        pub reason: String,
    }

    /// `hello` data.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Hello {
        /// The master's version.
        pub version: String,
    }

    /// A slave, as `list_slaves` returns it.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SlaveInfo {
        /// Software name.
        pub agent: String,
        /// Protocol version.
        pub version: String,
        /// Name.
        pub name: String,
        /// Id.
        pub id: i64,
        /// Connected now.
        pub connected: bool,
    }

    /// `list_slaves_response` data: the answered request's `seq` and the list.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ListSlavesResponse {
        /// The slaves.
        pub list: Vec<SlaveInfo>,
        /// The request's `seq`.
        pub seq: i64,
    }

    /// One parsed line of an instance's output.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct OutputLine {
        /// Where it came from.
        pub source: String,
        /// How it was formatted.
        pub format: String,
        /// What kind of line.
        pub r#type: String,
        /// The text.
        pub message: String,
        /// When it was received.
        pub received: f64,
        /// The time the line states.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub time: Option<String>,
        /// Log level.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub level: Option<String>,
        /// Source file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub file: Option<String>,
        /// Reported action.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub action: Option<String>,
    }

    /// `instance_output` event data.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct InstanceOutput {
        /// The instance.
        pub instance_id: i64,
        /// The line.
        pub output: OutputLine,
    }

    /// Everything a control sends (the benchmark's frames and their neighbours).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", deny_unknown_fields)]
    pub enum ControlFrame {
        /// `close`.
        #[serde(rename = "close")]
        Close {
            /// The frame number.
            seq: i64,
            /// The payload.
            data: Close,
        },
        /// `list_slaves_request`.
        #[serde(rename = "list_slaves_request")]
        ListSlavesRequest {
            /// The frame number.
            seq: i64,
            /// The payload.
            data: ListSlaves,
        },
        /// `list_instances_request`.
        #[serde(rename = "list_instances_request")]
        ListInstancesRequest {
            /// The frame number.
            seq: i64,
            /// The payload.
            data: ListInstances,
        },
    }

    /// Everything the master sends to a control (the benchmark's frames and their neighbours).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", deny_unknown_fields)]
    pub enum MasterFrame {
        /// `hello`.
        #[serde(rename = "hello")]
        Hello {
            /// The frame number.
            seq: i64,
            /// The payload.
            data: Hello,
        },
        /// `close`.
        #[serde(rename = "close")]
        Close {
            /// The frame number.
            seq: i64,
            /// The payload.
            data: Close,
        },
        /// `list_slaves_response`.
        #[serde(rename = "list_slaves_response")]
        ListSlavesResponse {
            /// The frame number.
            seq: i64,
            /// The payload.
            data: ListSlavesResponse,
        },
        /// `instance_output_event`.
        #[serde(rename = "instance_output_event")]
        InstanceOutputEvent {
            /// The frame number.
            seq: i64,
            /// The payload.
            data: InstanceOutput,
        },
    }

    /// Decodes a control frame.
    pub fn decode_control(text: &str) -> Result<ControlFrame, BenchError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Decodes a master frame.
    pub fn decode_master(text: &str) -> Result<MasterFrame, BenchError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Writes a control frame.
    pub fn encode_control(out: &mut Vec<u8>, frame: &ControlFrame) -> Result<(), BenchError> {
        super::write(out, frame)
    }

    /// Writes a master frame.
    pub fn encode_master(out: &mut Vec<u8>, frame: &MasterFrame) -> Result<(), BenchError> {
        super::write(out, frame)
    }
}
