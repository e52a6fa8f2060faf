//! The traits generated code implements, and the values that cross between it and the runtime.
//!
//! For each protocol the generator emits a marker type implementing [`Protocol`], one marker per
//! side of each link implementing [`Side`], one struct per message implementing [`Message`] (and
//! [`Request`] with its reply type, or [`Event`]), [`SendableBy`] for every side allowed to send
//! it, an enum per link direction implementing [`Inbound`], and a handler trait per side whose
//! blanket [`Dispatch`] impl routes decoded messages to the user's methods.

pub use crate::error::RemoteError;
use std::fmt;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{DecodeError, EncodeError};
use crate::scan::ScanDecode;
use crate::validate::Validate;
use crate::wire::{ErrorShape, Kind, RawMessage, RequestId, Tag, WireProfile};

/// A protocol: its wire profile, session rules and close codes.
pub trait Protocol: Send + Sync + 'static {
    /// The protocol's name as declared.
    const NAME: &'static str;
    /// The declared version.
    const VERSION: &'static str;
    /// The HTTP path a server takes the protocol's WebSocket at (the definition's `path`);
    /// [`WsServer`](crate::ws::WsServer) serves it unless told otherwise.
    const PATH: Option<&'static str> = None;
    /// How frames look.
    const WIRE: &'static WireProfile;
    /// Handshake, heartbeat and close rules.
    const SESSION: &'static crate::session::SessionRules;
    /// Every message: name, tag, kind, and whether it has a payload.
    const MESSAGES: &'static [MessageInfo];
    /// The protocol's close codes.
    type CloseCode: CloseCode;
}

/// What the runtime knows of a message without its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageInfo {
    /// The name as declared.
    pub name: &'static str,
    /// Its tag.
    pub tag: Tag,
    /// Its kind.
    pub kind: Kind,
    /// Whether it was declared with a payload.
    pub has_payload: bool,
}

/// The declared message with this tag and kind class, if any.
pub fn message_info<P: Protocol>(tag: Tag) -> Option<&'static MessageInfo> {
    P::MESSAGES.iter().find(|m| m.tag == tag)
}

/// A protocol's close codes, as a generated enum.
pub trait CloseCode: Copy + fmt::Debug + Send + Sync + 'static {
    /// The numeric code sent in the WebSocket close frame.
    fn code(self) -> u16;
    /// The declared reason text.
    fn reason(self) -> &'static str;
    /// The declared code with this number, if any.
    fn from_code(code: u16) -> Option<Self>;
    /// The declared reason of a code number, if the protocol declares it.
    fn reason_for(code: u16) -> Option<&'static str> {
        Self::from_code(code).map(Self::reason)
    }
}

/// One side of one kind of link (`Client`, `Server`, or `MasterWithSlave` for named endpoints).
pub trait Side: Send + Sync + 'static {
    /// The protocol.
    type Protocol: Protocol;
    /// The other side of the link.
    type Peer: Side<Protocol = Self::Protocol, Peer = Self>;
    /// Everything this side may receive.
    type Inbound: Inbound;
    /// The side's name, for logs.
    const NAME: &'static str;
    /// Whether this side accepts connections (the WebSocket server) on its link.
    const ACCEPTS: bool;
    /// Whether this side sends any request (so that a frame may be a reply to it).
    const SENDS_REQUESTS: bool;
    /// Whether this side receives any request (so that a frame may need an answer).
    const TAKES_REQUESTS: bool;
}

/// A message struct of a protocol.
pub trait Message: Serialize + DeserializeOwned + Validate + Send + Sync + 'static {
    /// The protocol it belongs to.
    type Protocol: Protocol;
    /// The name as declared.
    const NAME: &'static str;
    /// The tag (or method name, for carried messages).
    const TAG: Tag;
    /// Message, event or request.
    const KIND: Kind;
    /// Whether the message was declared with a payload; one without writes no payload key.
    const HAS_PAYLOAD: bool;
}

/// A request, which knows the type of its reply.
pub trait Request: Message {
    /// What a successful reply carries.
    type Reply: Serialize
        + DeserializeOwned
        + for<'de> ScanDecode<'de>
        + Validate
        + Send
        + Sync
        + 'static;
}

/// A one-way event.
pub trait Event: Message {}

/// Marks that side `S` may send this message. Sending anything else on a link does not compile.
pub trait SendableBy<S: Side>: Message {}

/// What one side may receive, decoded from a classified frame.
pub trait Inbound: Sized + Send + 'static {
    /// Picks the message by its name and frame class and deserialises its payload.
    fn decode(frame: &RawMessage<'_>) -> Result<Self, DecodeError>;
    /// Deserialises the message named `name` (recognised as `class`) from `payload`; the
    /// single-pass decoder calls it with the payload's part of the frame.
    fn decode_from<'de, S: PayloadSource<'de>>(
        class: crate::wire::FrameClass,
        name: crate::wire::TagRef<'_>,
        payload: S,
    ) -> Result<Self, S::Error>;
    /// Whether a message with this tag may arrive in this direction.
    fn accepts(tag: Tag) -> bool;
    /// The kind of the decoded message (a request needs a reply).
    fn kind(&self) -> Kind;
    /// The tag of the decoded message.
    fn tag(&self) -> Tag;
    /// Checks the constraints of the decoded payload.
    fn validate(&self) -> Result<(), crate::validate::ValidationErrors>;
}

/// Where the single-pass decoder reads a payload from: [`Inbound::decode_from`] picks the
/// payload's type by the message's name and asks the source for a value of it.
pub trait PayloadSource<'de> {
    /// What goes wrong.
    type Error: serde::de::Error;
    /// Reads the payload as `T`.
    fn decode<T: ScanDecode<'de>>(self) -> Result<T, Self::Error>;
}

/// A serde deserializer as a [`PayloadSource`].
#[derive(Debug)]
pub struct FromDeserializer<D>(pub D);

impl<'de, D: serde::Deserializer<'de>> PayloadSource<'de> for FromDeserializer<D> {
    type Error = D::Error;

    fn decode<T: ScanDecode<'de>>(self) -> Result<T, D::Error> {
        T::deserialize(self.0)
    }
}

/// What the handler made of one inbound message.
#[derive(Debug)]
pub enum Outcome {
    /// Handled; nothing to send back.
    Done,
    /// A request was handled: the reply, or the error to send.
    Reply(Result<Reply, RemoteError>),
    /// A message the session driver handles (handshake steps, heartbeats, close).
    Session,
}

impl Outcome {
    /// Turns a handler's result into a reply.
    pub fn reply<R: Serialize + Send + 'static>(result: Result<R, RemoteError>) -> Self {
        Outcome::Reply(result.map(|reply| Reply(Box::new(reply))))
    }
}

/// A handler's successful reply, kept typed until its frame is written: it is serialised once,
/// straight into the frame.
pub struct Reply(Box<dyn WriteReply>);

impl Reply {
    /// Writes the reply frame answering the request `tag` with id `id`
    /// ([`WireProfile::encode_reply`]).
    pub fn encode(
        &self,
        profile: &WireProfile,
        out: &mut Vec<u8>,
        tag: Tag,
        id: Option<&RequestId>,
        seq: Option<i64>,
    ) -> Result<(), EncodeError> {
        self.0.write(profile, out, tag, id, seq)
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply(..)")
    }
}

/// A reply value of any type, written into its frame.
trait WriteReply: Send {
    fn write(
        &self,
        profile: &WireProfile,
        out: &mut Vec<u8>,
        tag: Tag,
        id: Option<&RequestId>,
        seq: Option<i64>,
    ) -> Result<(), EncodeError>;
}

impl<T: Serialize + Send> WriteReply for T {
    fn write(
        &self,
        profile: &WireProfile,
        out: &mut Vec<u8>,
        tag: Tag,
        id: Option<&RequestId>,
        seq: Option<i64>,
    ) -> Result<(), EncodeError> {
        profile.encode_reply(out, tag, id, seq, Ok(self))
    }
}

/// Routes what side `Self` receives to a handler of type `H`; generated per side for every type
/// that implements the side's handler trait.
pub trait Dispatch<H>: Side {
    /// Handles one message.
    fn dispatch(handler: &H, message: Self::Inbound) -> impl Future<Output = Outcome> + Send;
}

/// Typed sending on a link; implemented by the runtime's link handles.
pub trait Sender<S: Side>: Send + Sync {
    /// Sends a request and waits for its typed reply.
    fn request<R: Request + SendableBy<S>>(
        &self,
        request: R,
    ) -> impl Future<Output = Result<R::Reply, crate::RequestError>> + Send;

    /// Sends an event or a plain message.
    fn send<M: Message + SendableBy<S>>(
        &self,
        message: M,
    ) -> impl Future<Output = Result<(), crate::SendError>> + Send;
}

impl RemoteError {
    pub(crate) fn from_json(raw: &RawValue, shape: ErrorShape) -> Result<Self, DecodeError> {
        match shape {
            ErrorShape::Text => String::deserialize(raw)
                .map(RemoteError::new)
                .map_err(|_| DecodeError::MalformedError),
            ErrorShape::Object => {
                // Real peers send strings or odd objects too; keep whatever they sent.
                let value =
                    serde_json::Value::deserialize(raw).map_err(|_| DecodeError::MalformedError)?;
                Ok(match value {
                    serde_json::Value::Object(mut map) => {
                        let message = match map.remove("message") {
                            Some(serde_json::Value::String(s)) => s,
                            Some(other) => other.to_string(),
                            None => String::new(),
                        };
                        let name = match map.remove("name") {
                            Some(serde_json::Value::String(s)) => Some(s),
                            Some(other) => Some(other.to_string()),
                            None => None,
                        };
                        RemoteError {
                            message,
                            name,
                            extra: map,
                        }
                    }
                    serde_json::Value::String(s) => RemoteError::new(s),
                    other => RemoteError::new(other.to_string()),
                })
            }
        }
    }

    pub(crate) fn write_json(
        &self,
        out: &mut Vec<u8>,
        shape: ErrorShape,
    ) -> Result<(), crate::error::EncodeError> {
        let result = match shape {
            ErrorShape::Text => serde_json::to_writer(out, &self.message),
            ErrorShape::Object => serde_json::to_writer(out, self),
        };
        result.map_err(crate::error::EncodeError::Json)
    }
}

/// The reply of a request declared without one: no data (`{}` where an object is required).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct Empty;

impl<'de> ScanDecode<'de> for Empty {
    /// An object with no keys but the envelope's: a reply whose only key is its id (Clusterio's
    /// `{"seq": 1}`).
    fn scan_fields<F>(scan: &mut crate::scan::Scan<'de>, mut envelope: F) -> Option<Self>
    where
        F: FnMut(&str, &mut crate::scan::Scan<'de>) -> Option<bool>,
    {
        while let Some(key) = scan.key()? {
            if !envelope(&key, scan)? {
                return None;
            }
        }
        Some(Empty)
    }
}

impl Serialize for Empty {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EmptyVisitor;
        impl<'de> serde::de::Visitor<'de> for EmptyVisitor {
            type Value = Empty;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("nothing, null or an empty object")
            }
            fn visit_unit<E>(self) -> Result<Empty, E> {
                Ok(Empty)
            }
            fn visit_none<E>(self) -> Result<Empty, E> {
                Ok(Empty)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Empty, A::Error> {
                match map.next_key::<String>()? {
                    None => Ok(Empty),
                    Some(key) => Err(serde::de::Error::unknown_field(&key, &[])),
                }
            }
        }
        deserializer.deserialize_any(EmptyVisitor)
    }
}

/// Reads the payload of a message declared without one: nothing, `null` (14.x SocketCluster's
/// `"data": null`), or an object whose keys are ignored (refused when `strict`).
pub fn deserialize_nothing<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    strict: bool,
) -> Result<(), D::Error> {
    struct Nothing(bool);
    impl<'de> serde::de::Visitor<'de> for Nothing {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("no payload, null or an object")
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_none<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                if self.0 {
                    return Err(serde::de::Error::unknown_field(&key, &[]));
                }
                map.next_value::<serde::de::IgnoredAny>()?;
            }
            Ok(())
        }
    }
    deserializer.deserialize_any(Nothing(strict))
}

/// The keys a struct with a rest field writes itself (its fields): a rest key of the same name is
/// left out when it is written, so the struct's values win and every key comes out once. (The
/// envelope's keys beside an inline payload are left out when the frame is written.)
/// Implemented by generated code.
pub trait RestKeys {
    /// The keys the struct's fields write.
    const WRITTEN: &'static [&'static str];
}

/// Writes a rest field (`#[serde(flatten, serialize_with = ...)]`) without the keys `T` writes
/// itself.
pub fn serialize_rest<T: RestKeys, S: serde::Serializer>(
    rest: &std::collections::BTreeMap<String, serde_json::Value>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(
        rest.iter()
            .filter(|(key, _)| !T::WRITTEN.contains(&key.as_str())),
    )
}
