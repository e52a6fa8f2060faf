//! Errors of the codec layer.

use thiserror::Error;

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
