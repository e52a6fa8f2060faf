//! Wire profiles: where a message's name, id and payload sit in a frame.
//!
//! A [`WireProfile`] is a `static` the generator emits for each protocol. [`WireProfile::classify`]
//! reads a text frame once into borrowed slices ([`RawFrame`]), and the generated `Inbound::decode`
//! matches the name and deserialises the concrete payload straight from its slice: no
//! `#[serde(tag = ...)]` buffering, any key order, integer or string tags. Encoding writes the
//! envelope keys around the payload's own serialisation in one buffer.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{DecodeError, EncodeError};
use crate::message::RemoteError;
use crate::scan::Scan;

/// The JSON type of a protocol's tag key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagType {
    /// `{"type": "hello"}`
    Str,
    /// `{"op": 0}`
    Int,
}

/// A message's tag as declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    /// A string tag.
    Str(&'static str),
    /// An integer tag.
    Int(i64),
}

/// A tag as read from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagRef<'a> {
    /// A string tag (suffixes already stripped).
    Str(&'a str),
    /// An integer tag.
    Int(i64),
}

impl Tag {
    /// The tag as read from a frame would be.
    pub fn as_ref(self) -> TagRef<'static> {
        match self {
            Tag::Str(s) => TagRef::Str(s),
            Tag::Int(n) => TagRef::Int(n),
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt(f)
    }
}

impl fmt::Display for TagRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagRef::Str(s) => write!(f, "{s:?}"),
            TagRef::Int(n) => write!(f, "{n}"),
        }
    }
}

/// Where a message's payload sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadPlace {
    /// Beside the tag: `{"op": 0, "hb_interval": 500}`.
    Inline,
    /// Under a key: `{"type": "hello", "data": {...}}`.
    Under(&'static str),
}

/// A frame that carries every message of one kind, naming the message in a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carrier {
    /// The carrier frame's tag.
    pub tag: Tag,
    /// The key holding the message's name.
    pub method: &'static str,
    /// The key holding the message's payload.
    pub args: &'static str,
}

/// How events or requests are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Tagged with the message's own tag.
    Tagged,
    /// Tagged with the message's tag plus a suffix.
    Suffix(&'static str),
    /// Carried in a frame of their own.
    Carrier(Carrier),
}

/// Where a request's id sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestIdPlace {
    /// No ids: replies come back in order.
    Ordered,
    /// Under a top-level key; `optional` when a sender may leave it out to get no reply.
    Key {
        /// The key.
        key: &'static str,
        /// Whether the id may be left out.
        optional: bool,
        /// Whether the ids this side makes are strings of 8 hexadecimal digits (`"0000002a"`),
        /// as the real Litecord gateway's nonces are, rather than numbers.
        text: bool,
    },
    /// The frame's sequence counter is the id.
    Sequence,
}

/// Where a key sits: at the top of the frame or inside the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPath {
    /// A top-level key.
    Top(&'static str),
    /// A key of the payload object.
    InPayload(&'static str),
}

/// How replies are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMatch {
    /// The request's tag plus a suffix.
    Suffix(&'static str),
    /// A carrier frame with this tag.
    Carrier(Tag),
    /// No tag: a frame holding the reply id key is a reply.
    Untagged,
    /// A fixed tag, with the answered request's name under `for_key`.
    Tag {
        /// The tag of every reply.
        tag: &'static str,
        /// The key naming the request answered.
        for_key: &'static str,
    },
}

/// The JSON shape of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// A string.
    Text,
    /// An object with `message`, `name` and other keys.
    Object,
}

/// How a failed reply is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFraming {
    /// A reply holding an error under a key instead of a result.
    InReply {
        /// Where the error sits.
        path: KeyPath,
        /// Its shape.
        shape: ErrorShape,
    },
    /// A frame with its own tag, the error text under `message`.
    Tagged {
        /// The error frame's tag.
        tag: &'static str,
        /// The key holding the text.
        message: &'static str,
    },
    /// The protocol has no way to say a request failed.
    None,
}

/// How replies are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyFraming {
    /// How a reply is recognised.
    pub matched: ReplyMatch,
    /// Where the answered request's id sits (`None` for ordered protocols).
    pub id: Option<KeyPath>,
    /// The key holding the result; `None` means where [`WireProfile::payload`] says.
    pub result: Option<&'static str>,
    /// How failures are framed.
    pub error: ErrorFraming,
}

/// Everything about a protocol's framing, declared by its `wire` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireProfile {
    /// The key naming a frame.
    pub tag: &'static str,
    /// The JSON type of that key.
    pub tag_type: TagType,
    /// Where payloads sit.
    pub payload: PayloadPlace,
    /// The key of the per-side frame counter, if every frame carries one.
    pub sequence: Option<&'static str>,
    /// How events are framed.
    pub event: Framing,
    /// How requests are framed.
    pub request: Framing,
    /// Where request ids sit.
    pub request_id: RequestIdPlace,
    /// How replies are framed.
    pub reply: ReplyFraming,
    /// Whether payload objects reject keys they do not declare.
    pub strict: bool,
    /// Whether a frame may hold a JSON array of packets, each handled as a frame of its own.
    pub batch: bool,
    /// Whether binary frames are read as UTF-8 text (`binary text`); else they close the link.
    pub binary_text: bool,
}

/// The kind of a declared message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A frame of its own (handshake steps, heartbeats, `close`).
    Message,
    /// One-way.
    Event,
    /// Answered by a reply.
    Request,
}

/// Which framing a frame was recognised by, before its name is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameClass {
    /// Tagged with a message's own tag (plain messages, and events or requests framed `Tagged`).
    Plain,
    /// Recognised as an event by its suffix or carrier.
    Event,
    /// Recognised as a request by its suffix or carrier.
    Request,
}

/// A request id as read from or written to a frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestId {
    /// A number.
    Int(i64),
    /// A string (Litecord nonces).
    Str(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Int(n) => write!(f, "{n}"),
            RequestId::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RequestId::Int(n) => serializer.serialize_i64(*n),
            RequestId::Str(s) => serializer.serialize_str(s),
        }
    }
}

/// The top-level keys of a JSON object, each with its value as a borrowed slice.
#[derive(Debug, Default, Clone)]
pub struct Fields<'a> {
    entries: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Fields<'a> {
    /// Reads one JSON object; keys are kept in order, values are not parsed.
    pub fn parse(text: &'a str) -> Result<Self, DecodeError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let fields = Fields::deserialize(&mut de).map_err(DecodeError::json)?;
        de.end().map_err(DecodeError::json)?;
        Ok(fields)
    }

    /// The value of `key`, if present (the first one, if repeated).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|&(_, value)| value)
    }

    /// Every key not in `skip`, in place: an inline payload reuses the frame's own list.
    fn without(mut self, skip: &[&str]) -> Fields<'a> {
        self.entries.retain(|(k, _)| !skip.contains(&k.as_ref()));
        self
    }

    /// Whether the object has no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the fields back as a JSON object.
    fn write_json(&self, out: &mut String) {
        out.push('{');
        for (i, (key, value)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(out, key);
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(6));
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    entries.push((key.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(Fields { entries })
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A JSON object's key, borrowed from the input when it holds no escape. Generated
/// deserialisers of structs that keep every other key (`..rest`) read their keys as this.
#[derive(Debug)]
pub struct Key<'a>(pub(crate) Cow<'a, str>);

impl Key<'_> {
    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key, owned.
    pub fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A payload as found in a frame, not yet deserialised.
#[derive(Debug, Clone)]
pub enum Payload<'a> {
    /// A JSON value under a key.
    Raw(&'a RawValue),
    /// Keys beside the envelope's own (inline payloads).
    Inline(Fields<'a>),
    /// No payload in the frame.
    Absent,
}

impl<'a> Payload<'a> {
    /// Deserialises the payload as `T`; `name` says whose payload it is in errors.
    pub fn decode<T: Deserialize<'a>>(&self, name: &'static str) -> Result<T, DecodeError> {
        let result = match self {
            Payload::Raw(raw) => T::deserialize(*raw),
            Payload::Inline(fields) => T::deserialize(InlineDeserializer(fields)),
            Payload::Absent => T::deserialize(AbsentDeserializer),
        };
        result.map_err(|e| DecodeError::payload(name, e))
    }

    /// The payload as an owned JSON text (`null` when absent), to hand to another task.
    pub fn to_json(&self) -> Box<RawValue> {
        let text = match self {
            Payload::Raw(raw) => return (*raw).to_owned(),
            Payload::Inline(fields) => {
                let mut out = String::new();
                fields.write_json(&mut out);
                out
            }
            Payload::Absent => "null".to_owned(),
        };
        // The text was assembled from valid JSON pieces, so this cannot fail; fall back to null.
        RawValue::from_string(text).unwrap_or_else(|_| null_raw())
    }
}

fn null_raw() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_default()
}

/// Deserialises a type from the keys of an inline payload.
struct InlineDeserializer<'b, 'a>(&'b Fields<'a>);

impl<'de> Deserializer<'de> for InlineDeserializer<'_, 'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(InlineMap {
            entries: self.0.entries.iter(),
            value: None,
        })
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.0.is_empty() {
            visitor.visit_unit()
        } else {
            self.deserialize_any(visitor)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_unit(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

struct InlineMap<'b, 'a> {
    entries: std::slice::Iter<'b, (Cow<'a, str>, &'a RawValue)>,
    value: Option<&'a RawValue>,
}

impl<'de> MapAccess<'de> for InlineMap<'_, 'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        let key: &str = key;
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value.take() {
            Some(raw) => seed.deserialize(raw),
            None => Err(de::Error::custom("value requested before key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// Deserialises a type from a payload that is not there: an empty object, unit or `None`.
pub(crate) struct AbsentDeserializer;

impl<'de> Deserializer<'de> for AbsentDeserializer {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_none()
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(de::value::MapDeserializer::new(std::iter::empty::<(
            &str,
            &str,
        )>()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct enum identifier ignored_any
    }
}

/// A frame read by [`WireProfile::classify`].
#[derive(Debug, Clone)]
pub enum RawFrame<'a> {
    /// A message, event or request.
    Message(RawMessage<'a>),
    /// A reply to a request.
    Reply(RawReply<'a>),
}

/// A message, event or request, its payload not yet deserialised.
#[derive(Debug, Clone)]
pub struct RawMessage<'a> {
    /// How the frame was recognised.
    pub class: FrameClass,
    /// The message's tag (suffix stripped; for carriers, the method name).
    pub name: TagRef<'a>,
    /// The request id, when the frame carries one.
    pub id: Option<RequestId>,
    /// The frame's sequence number, for protocols that number frames.
    pub seq: Option<i64>,
    /// The payload.
    pub payload: Payload<'a>,
}

/// A reply, its result not yet deserialised.
#[derive(Debug, Clone)]
pub struct RawReply<'a> {
    /// The id of the request answered (`None` for ordered protocols).
    pub id: Option<RequestId>,
    /// The name of the request answered, where the reply says.
    pub name: Option<&'a str>,
    /// The frame's sequence number, for protocols that number frames.
    pub seq: Option<i64>,
    /// The result, or the error the peer sent.
    pub result: Result<Payload<'a>, RemoteError>,
}

impl<'a> RawMessage<'a> {
    /// Deserialises the payload as the message `M`.
    pub fn decode<M: crate::Message>(&self) -> Result<M, DecodeError> {
        self.payload.decode(M::NAME)
    }
}

impl WireProfile {
    /// Reads one text frame into its envelope parts.
    pub fn classify<'a>(&self, text: &'a str) -> Result<RawFrame<'a>, DecodeError> {
        let fields = Fields::parse(text)?;
        if self.strict {
            self.check_envelope(&fields)?;
        }
        let seq = match self.sequence {
            Some(key) => Some(read_int(&fields, key)?.ok_or(DecodeError::MissingKey(key))?),
            None => None,
        };
        if self.reply.matched == ReplyMatch::Untagged {
            if let Some(KeyPath::Top(id_key)) = self.reply.id {
                // As the real SocketCluster peers read a packet: a tag of its type makes it a
                // message, whatever else it holds; without one, the id makes it a reply.
                let tagged = fields
                    .get(self.tag)
                    .is_some_and(|raw| read_tag(raw, self.tag, self.tag_type).is_ok());
                if !tagged && fields.get(id_key).is_some() {
                    return self.classify_reply(fields, None, seq);
                }
            }
        }
        let raw_tag = fields
            .get(self.tag)
            .ok_or(DecodeError::MissingKey(self.tag))?;
        let tag = read_tag(raw_tag, self.tag, self.tag_type)?;

        // Replies first: their tags may share a suffix or carrier with nothing else.
        match (self.reply.matched, tag) {
            (
                ReplyMatch::Tag {
                    tag: reply_tag,
                    for_key,
                },
                TagRef::Str(t),
            ) if t == reply_tag => {
                let name = read_str(&fields, for_key)?;
                return self.classify_reply(fields, name, seq);
            }
            (ReplyMatch::Carrier(carrier), t) if tag_eq(carrier, t) => {
                return self.classify_reply(fields, None, seq);
            }
            (ReplyMatch::Suffix(suffix), TagRef::Str(t)) => {
                if let Some(name) = t.strip_suffix(suffix) {
                    return self.classify_reply(fields, Some(name), seq);
                }
            }
            _ => {}
        }
        if let (ErrorFraming::Tagged { tag: error_tag, .. }, TagRef::Str(t)) =
            (self.reply.error, tag)
        {
            if t == error_tag {
                return self.classify_reply(fields, None, seq);
            }
        }

        for (framing, class) in [
            (self.request, FrameClass::Request),
            (self.event, FrameClass::Event),
        ] {
            match (framing, tag) {
                (Framing::Carrier(carrier), t) if tag_eq(carrier.tag, t) => {
                    let name = read_str(&fields, carrier.method)?
                        .ok_or(DecodeError::MissingKey(carrier.method))?;
                    let payload = fields
                        .get(carrier.args)
                        .map_or(Payload::Absent, Payload::Raw);
                    let id = self.read_request_id(&fields, class, seq)?;
                    return Ok(RawFrame::Message(RawMessage {
                        class,
                        name: TagRef::Str(name),
                        id,
                        seq,
                        payload,
                    }));
                }
                (Framing::Suffix(suffix), TagRef::Str(t)) => {
                    if let Some(name) = t.strip_suffix(suffix) {
                        let id = self.read_request_id(&fields, class, seq)?;
                        return Ok(RawFrame::Message(RawMessage {
                            class,
                            name: TagRef::Str(name),
                            id,
                            seq,
                            payload: self.payload_of(fields),
                        }));
                    }
                }
                _ => {}
            }
        }
        let id = match self.request {
            Framing::Tagged => self.read_request_id(&fields, FrameClass::Plain, seq)?,
            _ => None,
        };
        Ok(RawFrame::Message(RawMessage {
            class: FrameClass::Plain,
            name: tag,
            id,
            seq,
            payload: self.payload_of(fields),
        }))
    }

    /// A `strict` envelope holds exactly its declared keys: the tag, the sequence number, the
    /// payload key and the request-id key, with the payload key always present (Clusterio:
    /// exactly `seq`, `type`, `data`).
    fn check_envelope(&self, fields: &Fields<'_>) -> Result<(), DecodeError> {
        let PayloadPlace::Under(payload) = self.payload else {
            return Ok(());
        };
        let allowed = |key: &str| {
            key == self.tag
                || Some(key) == self.sequence
                || key == payload
                || matches!(self.request_id, RequestIdPlace::Key { key: id, .. } if id == key)
        };
        if let Some((key, _)) = fields.entries.iter().find(|(key, _)| !allowed(key)) {
            return Err(DecodeError::UnexpectedKey(key.to_string()));
        }
        if fields.get(payload).is_none() {
            return Err(DecodeError::MissingKey(payload));
        }
        Ok(())
    }

    /// The keys that belong to the envelope rather than to an inline payload.
    fn envelope_keys(&self) -> [&'static str; 4] {
        let id_key = match self.request_id {
            RequestIdPlace::Key { key, .. } => key,
            _ => self.tag,
        };
        let reply_key = match self.reply.id {
            Some(KeyPath::Top(key)) => key,
            _ => self.tag,
        };
        [
            self.tag,
            self.sequence.unwrap_or(self.tag),
            id_key,
            reply_key,
        ]
    }

    fn payload_of<'a>(&self, fields: Fields<'a>) -> Payload<'a> {
        match self.payload {
            PayloadPlace::Inline => Payload::Inline(fields.without(&self.envelope_keys())),
            PayloadPlace::Under(key) => fields.get(key).map_or(Payload::Absent, Payload::Raw),
        }
    }

    fn read_request_id(
        &self,
        fields: &Fields<'_>,
        class: FrameClass,
        seq: Option<i64>,
    ) -> Result<Option<RequestId>, DecodeError> {
        match self.request_id {
            RequestIdPlace::Ordered => Ok(None),
            RequestIdPlace::Sequence if class == FrameClass::Request => Ok(seq.map(RequestId::Int)),
            RequestIdPlace::Sequence => Ok(None),
            RequestIdPlace::Key { key, .. } => {
                fields.get(key).map(|raw| read_id(raw, key)).transpose()
            }
        }
    }

    fn classify_reply<'a>(
        &self,
        fields: Fields<'a>,
        name: Option<&'a str>,
        seq: Option<i64>,
    ) -> Result<RawFrame<'a>, DecodeError> {
        if let ErrorFraming::Tagged { tag, message } = self.reply.error {
            if let Ok(Some(TagRef::Str(t))) = fields
                .get(self.tag)
                .map(|raw| read_tag(raw, self.tag, TagType::Str))
                .transpose()
            {
                if t == tag {
                    // Free text: read it owned, as it may hold escapes (`\"not json\"`).
                    let error = match fields.get(message) {
                        Some(raw) => RemoteError::from_json(raw, ErrorShape::Text)?,
                        None => RemoteError::new(""),
                    };
                    return Ok(RawFrame::Reply(RawReply {
                        id: None,
                        name,
                        seq,
                        result: Err(error),
                    }));
                }
            }
        }
        // The reply's own object: the frame for inline profiles, else the payload object.
        let (object, payload_keys) = match (self.reply.id, self.payload) {
            (Some(KeyPath::InPayload(_)), PayloadPlace::Under(key)) => {
                let raw = fields.get(key).ok_or(DecodeError::MissingKey(key))?;
                (Fields::parse(raw.get())?, true)
            }
            _ => (fields, false),
        };
        let id = match self.reply.id {
            Some(KeyPath::Top(key) | KeyPath::InPayload(key)) => Some(
                object
                    .get(key)
                    .map(|raw| read_id(raw, key))
                    .transpose()?
                    .ok_or(DecodeError::MissingKey(key))?,
            ),
            None => None,
        };
        if let ErrorFraming::InReply { path, shape } = self.reply.error {
            let key = match path {
                KeyPath::Top(key) | KeyPath::InPayload(key) => key,
            };
            // `"error": null` is no error (the PyPI SocketCluster client writes it beside its data).
            if let Some(raw) = object.get(key).filter(|raw| raw.get().trim() != "null") {
                let error = RemoteError::from_json(raw, shape)?;
                return Ok(RawFrame::Reply(RawReply {
                    id,
                    name,
                    seq,
                    result: Err(error),
                }));
            }
        }
        let result = match (self.reply.result, payload_keys) {
            (Some(key), _) => object.get(key).map_or(Payload::Absent, Payload::Raw),
            (None, true) => {
                let id_key = match self.reply.id {
                    Some(KeyPath::InPayload(key)) => Some(key),
                    _ => None,
                };
                Payload::Inline(object.without(id_key.as_slice()))
            }
            (None, false) => match self.payload {
                PayloadPlace::Under(key) => object.get(key).map_or(Payload::Absent, Payload::Raw),
                PayloadPlace::Inline => {
                    let [tag, sequence, id, reply_id] = self.envelope_keys();
                    let for_key = match self.reply.matched {
                        ReplyMatch::Tag { for_key, .. } => for_key,
                        _ => self.tag,
                    };
                    Payload::Inline(object.without(&[tag, sequence, id, reply_id, for_key]))
                }
            },
        };
        Ok(RawFrame::Reply(RawReply {
            id,
            name,
            seq,
            result: Ok(result),
        }))
    }

    /// Writes a message, event or request frame.
    ///
    /// `payload` is `None` for messages declared without one. `id` is the request id for
    /// requests framed with an id key; `seq` the frame's number for protocols that number frames.
    pub fn encode_message<P: Serialize + ?Sized>(
        &self,
        out: &mut Vec<u8>,
        kind: Kind,
        tag: Tag,
        payload: Option<&P>,
        id: Option<&RequestId>,
        seq: Option<i64>,
    ) -> Result<(), EncodeError> {
        let framing = match kind {
            Kind::Message => Framing::Tagged,
            Kind::Event => self.event,
            Kind::Request => self.request,
        };
        out.push(b'{');
        let mut first = true;
        if let (Some(key), Some(seq)) = (self.sequence, seq) {
            write_key(out, &mut first, key);
            write_json(out, &seq)?;
        }
        write_key(out, &mut first, self.tag);
        match framing {
            Framing::Tagged => write_tag(out, tag)?,
            Framing::Suffix(suffix) => write_suffixed(out, tag, suffix)?,
            Framing::Carrier(carrier) => {
                write_tag(out, carrier.tag)?;
                write_key(out, &mut first, carrier.method);
                write_tag(out, tag)?;
                if let Some(payload) = payload {
                    write_key(out, &mut first, carrier.args);
                    write_json(out, payload)?;
                }
            }
        }
        if !matches!(framing, Framing::Carrier(_)) {
            if let Some(payload) = payload {
                self.write_payload(out, &mut first, payload)?;
            }
        }
        if let (RequestIdPlace::Key { key, .. }, Some(id)) = (self.request_id, id) {
            write_key(out, &mut first, key);
            write_json(out, id)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// Writes a reply to the request `tag` with id `id`: `Ok` holds the result, serialised
    /// straight into the frame (a `RawValue` is written as it is). A result that serialises to
    /// `null` (`Empty`) writes no result key, or an empty object where one is required.
    pub fn encode_reply<T: Serialize + ?Sized>(
        &self,
        out: &mut Vec<u8>,
        tag: Tag,
        id: Option<&RequestId>,
        seq: Option<i64>,
        result: Result<&T, &RemoteError>,
    ) -> Result<(), EncodeError> {
        if let (
            ErrorFraming::Tagged {
                tag: error_tag,
                message,
            },
            Err(error),
        ) = (self.reply.error, result)
        {
            out.push(b'{');
            let mut first = true;
            write_key(out, &mut first, self.tag);
            write_json(out, error_tag)?;
            write_key(out, &mut first, message);
            write_json(out, &error.message)?;
            out.push(b'}');
            return Ok(());
        }
        out.push(b'{');
        let mut first = true;
        if let (Some(key), Some(seq)) = (self.sequence, seq) {
            write_key(out, &mut first, key);
            write_json(out, &seq)?;
        }
        match self.reply.matched {
            ReplyMatch::Suffix(suffix) => {
                write_key(out, &mut first, self.tag);
                write_suffixed(out, tag, suffix)?;
            }
            ReplyMatch::Carrier(carrier) => {
                write_key(out, &mut first, self.tag);
                write_tag(out, carrier)?;
            }
            ReplyMatch::Tag { tag: reply_tag, .. } => {
                write_key(out, &mut first, self.tag);
                write_json(out, reply_tag)?;
            }
            ReplyMatch::Untagged => {}
        }
        if let (Some(KeyPath::Top(key)), Some(id)) = (self.reply.id, id) {
            write_key(out, &mut first, key);
            write_json(out, id)?;
        }
        let in_payload_id = match (self.reply.id, id) {
            (Some(KeyPath::InPayload(key)), Some(id)) => Some((key, id)),
            _ => None,
        };
        match result {
            Ok(value) => match (self.reply.result, self.payload) {
                (Some(key), _) => {
                    // The result key is the frame's last: a `null` result drops it again.
                    let before = out.len();
                    write_key(out, &mut first, key);
                    let start = out.len();
                    write_json(out, value)?;
                    if out[start..] == *b"null" {
                        out.truncate(before);
                    }
                }
                (None, PayloadPlace::Under(key)) => {
                    write_key(out, &mut first, key);
                    let start = out.len();
                    match in_payload_id {
                        Some((id_key, id)) => {
                            let mut inner_first = true;
                            out.push(b'{');
                            write_json(out, value)?;
                            splice_written(out, start + 1, &mut inner_first)?;
                            write_key(out, &mut inner_first, id_key);
                            write_json(out, id)?;
                            out.push(b'}');
                        }
                        None => {
                            write_json(out, value)?;
                            if out[start..] == *b"null" {
                                out.truncate(start);
                                out.extend_from_slice(b"{}");
                            }
                        }
                    }
                }
                (None, PayloadPlace::Inline) => {
                    let mut for_key = None;
                    if let ReplyMatch::Tag { for_key: key, .. } = self.reply.matched {
                        write_key(out, &mut first, key);
                        write_tag(out, tag)?;
                        for_key = Some(key);
                    }
                    let tag_key = match self.reply.matched {
                        ReplyMatch::Untagged => None,
                        _ => Some(self.tag),
                    };
                    let id_key = match (self.reply.id, id) {
                        (Some(KeyPath::Top(key)), Some(_)) => Some(key),
                        _ => None,
                    };
                    let start = out.len();
                    write_json(out, value)?;
                    drop_written_keys(out, start, &[self.sequence, tag_key, id_key, for_key]);
                    splice_written(out, start, &mut first)?;
                }
            },
            Err(error) => {
                let (key, shape) = match self.reply.error {
                    ErrorFraming::InReply { path, shape } => match path {
                        KeyPath::Top(key) | KeyPath::InPayload(key) => (key, shape),
                    },
                    // No way to say "failed": send an empty result (the requester times out or
                    // sees no data, as the protocol allows).
                    ErrorFraming::None | ErrorFraming::Tagged { .. } => {
                        out.push(b'}');
                        return Ok(());
                    }
                };
                let under = match (in_payload_id, self.payload) {
                    (Some(_), PayloadPlace::Under(data)) => Some(data),
                    _ => None,
                };
                if let Some(data) = under {
                    write_key(out, &mut first, data);
                    out.push(b'{');
                    let mut inner_first = true;
                    if let Some((id_key, id)) = in_payload_id {
                        write_key(out, &mut inner_first, id_key);
                        write_json(out, id)?;
                    }
                    write_key(out, &mut inner_first, key);
                    error.write_json(out, shape)?;
                    out.push(b'}');
                } else {
                    write_key(out, &mut first, key);
                    error.write_json(out, shape)?;
                }
            }
        }
        out.push(b'}');
        Ok(())
    }

    fn write_payload<P: Serialize + ?Sized>(
        &self,
        out: &mut Vec<u8>,
        first: &mut bool,
        payload: &P,
    ) -> Result<(), EncodeError> {
        match self.payload {
            PayloadPlace::Under(key) => {
                write_key(out, first, key);
                write_json(out, payload)
            }
            PayloadPlace::Inline => {
                let start = out.len();
                write_json(out, payload)?;
                drop_written_keys(out, start, &[self.sequence, Some(self.tag)]);
                splice_written(out, start, first)
            }
        }
    }
}

/// Leaves out of the object just written at `out[start..]` every member whose key the envelope
/// wrote already: an inline payload's rest field may hold a peer's `type` or `for`, and the
/// envelope's value wins, once (as Skynet's server spreads `{...command, type: "result"}`). The
/// object is read again only when its text holds one of the keys in quotes.
fn drop_written_keys(out: &mut Vec<u8>, start: usize, written: &[Option<&str>]) {
    let written = written.iter().flatten();
    let bytes = &out[start..];
    let quoted = |key: &str| {
        let key = key.as_bytes();
        bytes
            .windows(key.len() + 2)
            .any(|w| w[0] == b'"' && w[w.len() - 1] == b'"' && &w[1..w.len() - 1] == key)
    };
    if !written.clone().any(|key| quoted(key)) {
        return;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Some(mut scan) = Scan::object(text) else {
        return;
    };
    let at = |scan: &Scan<'_>| text.len() - scan.rest().len();
    let mut kept = Vec::with_capacity(text.len());
    kept.push(b'{');
    let mut first = true;
    loop {
        let key = match scan.key() {
            Some(Some(key)) => key,
            Some(None) => break,
            // Not what serde_json writes: leave it as it is.
            None => return,
        };
        let value_start = at(&scan);
        if scan.skip().is_none() {
            return;
        }
        if !written.clone().any(|w| *w == key) {
            write_key(&mut kept, &mut first, &key);
            kept.extend_from_slice(text[value_start..at(&scan)].trim_start().as_bytes());
        }
    }
    kept.push(b'}');
    out.truncate(start);
    out.extend_from_slice(&kept);
}

/// Appends the members of the JSON object just written at `out[start..]` to the object being
/// written, in place: its braces are dropped (the opening one becomes the separating comma);
/// `null` or an empty object adds none, anything else is not an object.
fn splice_written(out: &mut Vec<u8>, start: usize, first: &mut bool) -> Result<(), EncodeError> {
    let members = match &out[start..] {
        b"null" => Ok(false),
        [b'{', inner @ .., b'}'] => Ok(inner.iter().any(|b| !b.is_ascii_whitespace())),
        _ => Err(EncodeError::NotAnObject),
    };
    match members {
        Ok(true) => {
            out.pop();
            if *first {
                out.remove(start);
            } else {
                out[start] = b',';
            }
            *first = false;
            Ok(())
        }
        other => {
            out.truncate(start);
            other.map(|_| ())
        }
    }
}

fn write_key(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    write_str(out, key);
    out.push(b':');
}

/// Writes `s` as a JSON string.
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_str_content(out, s);
    out.push(b'"');
}

/// Writes what goes between the quotes of `s` as a JSON string: `s` itself when it needs no
/// escape (as envelope keys and tags do), else as serde_json escapes it.
fn write_str_content(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(crate::scan::plain_byte) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let at = out.len();
    // serde_json's escaping into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, s).is_ok() {
        out.pop();
        out.remove(at);
    }
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), EncodeError> {
    serde_json::to_writer(out, value).map_err(EncodeError::Json)
}

fn write_tag(out: &mut Vec<u8>, tag: Tag) -> Result<(), EncodeError> {
    match tag {
        Tag::Str(s) => {
            write_str(out, s);
            Ok(())
        }
        Tag::Int(n) => write_json(out, &n),
    }
}

fn write_suffixed(out: &mut Vec<u8>, tag: Tag, suffix: &str) -> Result<(), EncodeError> {
    match tag {
        Tag::Str(s) => {
            // Escaping works character by character, so the name and the suffix escaped one
            // after the other are `"namesuffix"` escaped, without building the name.
            out.push(b'"');
            write_str_content(out, s);
            write_str_content(out, suffix);
            out.push(b'"');
            Ok(())
        }
        Tag::Int(_) => Err(EncodeError::NotAnObject),
    }
}

fn push_json_str(out: &mut String, s: &str) {
    // serde_json's escaping into a String cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()));
}

pub(crate) fn tag_eq(declared: Tag, read: TagRef<'_>) -> bool {
    match (declared, read) {
        (Tag::Str(a), TagRef::Str(b)) => a == b,
        (Tag::Int(a), TagRef::Int(b)) => a == b,
        _ => false,
    }
}

fn read_tag<'a>(
    raw: &'a RawValue,
    key: &'static str,
    ty: TagType,
) -> Result<TagRef<'a>, DecodeError> {
    let text = raw.get();
    match ty {
        TagType::Int => {
            text.parse::<i64>()
                .map(TagRef::Int)
                .map_err(|_| DecodeError::WrongKeyType {
                    key,
                    expected: "an integer",
                })
        }
        TagType::Str => {
            <&str>::deserialize(raw)
                .map(TagRef::Str)
                .map_err(|_| DecodeError::WrongKeyType {
                    key,
                    expected: "a string without escapes",
                })
        }
    }
}

fn read_str<'a>(fields: &Fields<'a>, key: &'static str) -> Result<Option<&'a str>, DecodeError> {
    fields
        .get(key)
        .map(|raw| {
            <&str>::deserialize(raw).map_err(|_| DecodeError::WrongKeyType {
                key,
                expected: "a string without escapes",
            })
        })
        .transpose()
}

fn read_int(fields: &Fields<'_>, key: &'static str) -> Result<Option<i64>, DecodeError> {
    fields
        .get(key)
        .map(|raw| {
            raw.get()
                .parse::<i64>()
                .map_err(|_| DecodeError::WrongKeyType {
                    key,
                    expected: "an integer",
                })
        })
        .transpose()
}

fn read_id(raw: &RawValue, key: &'static str) -> Result<RequestId, DecodeError> {
    if let Ok(n) = raw.get().parse::<i64>() {
        return Ok(RequestId::Int(n));
    }
    String::deserialize(raw)
        .map(RequestId::Str)
        .map_err(|_| DecodeError::WrongKeyType {
            key,
            expected: "an integer or a string",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "op",
            "list_slaves",
            "a\"b",
            "back\\slash",
            "tab\tnew\nline",
            "é\u{1}",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            let expected = serde_json::to_string(s).expect("a string serialises");
            assert_eq!(String::from_utf8(out).expect("UTF-8"), expected);
            let mut out = Vec::new();
            write_suffixed(&mut out, Tag::Str(s), "_re\"quest").expect("a string tag");
            let expected = serde_json::to_string(&format!("{s}_re\"quest")).expect("a string");
            assert_eq!(String::from_utf8(out).expect("UTF-8"), expected);
        }
    }
}
