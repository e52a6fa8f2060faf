//! Every error type of the runtime, in one place: decoding and encoding frames, requests and
//! sends, a peer's error replies, the transport, and connecting.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::validate::ValidationErrors;

/// A frame could not be read as a message of the protocol.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The frame is not JSON.
    #[error("frame is not JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The frame is JSON but not an object.
    #[error("frame is not a JSON object")]
    NotAnObject,
    /// An envelope key the protocol requires is missing.
    #[error("frame has no `{0}` key")]
    MissingKey(&'static str),
    /// A `strict` protocol's frame has a key its envelope does not declare.
    #[error("frame has an unexpected key `{0}`")]
    UnexpectedKey(String),
    /// An envelope key holds the wrong JSON type.
    #[error("`{key}` must be {expected}")]
    WrongKeyType {
        /// The key.
        key: &'static str,
        /// What it must hold.
        expected: &'static str,
    },
    /// No message of the protocol has this name, in this direction.
    #[error("unknown message {name}")]
    UnknownMessage {
        /// The name or op code as read.
        name: String,
    },
    /// The payload does not match the message's type.
    #[error("invalid payload for `{message}`: {source}")]
    Payload {
        /// The message whose payload it is.
        message: &'static str,
        /// What serde_json found.
        #[source]
        source: serde_json::Error,
    },
    /// The error object of a failed reply is malformed.
    #[error("malformed error in reply")]
    MalformedError,
    /// A frame handed over as a reply reads as a message.
    #[error("expected a reply, read a message")]
    NotAReply,
    /// The reply to a request names another request.
    #[error("the reply answers another request")]
    ReplyMismatch,
}

impl DecodeError {
    pub(crate) fn json(error: serde_json::Error) -> Self {
        if error.is_data() {
            DecodeError::NotAnObject
        } else {
            DecodeError::Json(error)
        }
    }

    pub(crate) fn payload(message: &'static str, source: serde_json::Error) -> Self {
        DecodeError::Payload { message, source }
    }

    /// A message that the receiving side does not know.
    pub fn unknown(name: crate::wire::TagRef<'_>) -> Self {
        DecodeError::UnknownMessage {
            name: name.to_string(),
        }
    }
}

/// A message could not be written.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// serde_json failed (a map with non-string keys, a float that is not finite, ...).
    #[error("cannot serialise: {0}")]
    Json(#[source] serde_json::Error),
    /// The protocol numbers its frames per link, so one frame cannot go to many links.
    #[error("this protocol numbers frames per link; encode for each link")]
    Sequenced,
    /// An inline payload or a reply merged into an object did not serialise to an object.
    #[error("payload must serialise to a JSON object here")]
    NotAnObject,
}

/// A request did not get a successful reply.
#[derive(Debug, Error)]
pub enum RequestError {
    /// The peer answered with an error.
    #[error("the peer answered with an error: {0}")]
    Remote(#[from] RemoteError),
    /// No reply within the timeout.
    #[error("no reply within {0:?}")]
    Timeout(std::time::Duration),
    /// The link closed before the reply came.
    #[error("the link closed before the reply came")]
    Disconnected,
    /// The reply did not decode as the request's reply type.
    #[error("the reply is malformed: {0}")]
    BadReply(#[source] DecodeError),
    /// The reply decoded but breaks the definition's constraints.
    #[error("the reply is invalid: {0}")]
    InvalidReply(#[source] ValidationErrors),
    /// The request could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// Too many requests are waiting for replies on this link.
    #[error("{0} requests are already waiting for replies")]
    TooManyPending(usize),
}

/// Forwarding: a handler that hands a request on to another link answers its own requester
/// with whatever went wrong on the way (`Ok(next_hop.request(r).await?)`). The peer's own error
/// passes through unchanged; timeouts and disconnects become their description.
impl From<RequestError> for RemoteError {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::Remote(remote) => remote,
            other => RemoteError::new(other.to_string()),
        }
    }
}

/// A message could not be sent.
#[derive(Debug, Error)]
pub enum SendError {
    /// The message could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(#[from] EncodeError),
    /// The message breaks the definition's constraints.
    #[error("invalid message: {0}")]
    Invalid(#[from] ValidationErrors),
    /// The link is closed.
    #[error("the link is closed")]
    Closed,
}

/// An error a request's handler returns, or a peer sent back instead of a result.
///
/// Protocols with text errors carry only `message`; SocketCluster's error objects also carry
/// `name` and any other keys in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteError {
    /// The human-readable text.
    pub message: String,
    /// The error's class, such as `AuthTokenInvalidError`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Every other key of an error object, kept as sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl RemoteError {
    /// An error with only a message.
    pub fn new(message: impl Into<String>) -> Self {
        RemoteError {
            message: message.into(),
            name: None,
            extra: serde_json::Map::new(),
        }
    }

    /// Sets the error's class name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for RemoteError {}

/// Why a transport stopped.
#[derive(Debug, Error)]
pub enum TransportError {
    /// A frame exceeded the configured size limit.
    #[error("frame too large")]
    TooLarge,
    /// The peer broke the WebSocket protocol (a reserved opcode or bit, an unmasked client
    /// frame, an oversized or fragmented control frame, ...): close 1002.
    #[error("WebSocket protocol error: {0}")]
    Protocol(String),
    /// A text frame (or a close reason) that is not UTF-8: close 1007.
    #[error("a text frame is not UTF-8")]
    NotUtf8,
    /// The connection broke.
    #[error("connection lost: {0}")]
    Lost(String),
}

/// Why a connection could not be made.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// TCP, TLS or the WebSocket handshake failed.
    #[error("cannot connect: {0}")]
    WebSocket(WsFailure),
    /// The link closed before its protocol handshake finished.
    #[error("closed during the handshake with {code}: {reason}")]
    Handshake {
        /// The close code.
        code: u16,
        /// The reason.
        reason: String,
    },
}

/// What failed in TCP, TLS or the WebSocket handshake (an I/O error, a URL that cannot be
/// used, an HTTP answer other than the upgrade).
#[derive(Debug)]
pub struct WsFailure(pub(crate) tokio_tungstenite::tungstenite::Error);

impl std::fmt::Display for WsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for WsFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
