//! Single-pass decoding for frames whose keys come in the usual order.
//!
//! Real peers write the envelope first: `{"op": 4, "w": ..., "a": ..., "n": ...}`,
//! `{"event": ..., "data": ..., "cid": ...}`, `{"seq": ..., "type": ..., "data": ...}`,
//! `{"type": "open", "channel": 42}`. For those, [`WireProfile::decode_fast`] reads the tag and
//! deserialises the concrete payload from the same pass over the text, with no intermediate
//! buffering. Anything else (a reply, the tag after the payload, a payload missing, any error)
//! returns `None`, and the caller falls back to [`WireProfile::classify`], which handles every
//! key order and words every error precisely.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::message::{FromDeserializer, Inbound, PayloadSource};
use crate::scan::Scan;
use crate::wire::{
    AbsentDeserializer, ErrorFraming, FrameClass, Framing, Key, KeyPath, PayloadPlace, ReplyMatch,
    RequestId, RequestIdPlace, TagRef, TagType, WireProfile, tag_eq,
};

/// A message decoded in one pass.
#[derive(Debug)]
pub struct FastFrame<I> {
    /// The message.
    pub message: I,
    /// Its request id, if the frame carries one.
    pub id: Option<RequestId>,
    /// The frame's sequence number, for protocols that number frames.
    pub seq: Option<i64>,
    /// How the frame was recognised.
    pub class: FrameClass,
}

impl WireProfile {
    /// Decodes a message frame in one pass, or returns `None` to ask for the general path.
    pub fn decode_fast<I: Inbound>(&self, text: &str) -> Option<FastFrame<I>> {
        let mut scan = Scan::object(text)?;
        let mut envelope = Envelope::default();
        // Envelope keys may come before the tag (Clusterio's `seq`); anything else means the
        // payload comes first, which the general path handles.
        self.seek(&mut scan, &mut envelope, self.tag)?;
        let tag = match self.tag_type {
            TagType::Int => TagRef::Int(scan.int()?),
            // Escaped names are refused by the general path too (it borrows them).
            TagType::Str => TagRef::Str(scan.string()?),
        };
        if is_reply(self, tag) {
            return None;
        }
        let (class, name, payload_key) = self.frame_name(tag, &mut scan, &mut envelope)?;
        let message = match payload_key {
            Some(key) => self.under_key::<I>(&mut scan, &mut envelope, class, name, key)?,
            None => self.inline::<I>(scan.rest(), &mut envelope, class, name)?,
        };
        // A numbered protocol's frame without its number is malformed: the general path says so.
        if self.sequence.is_some() && envelope.seq.is_none() {
            return None;
        }
        Some(finish(self, message, class, envelope))
    }

    /// Reads keys up to `wanted`, whose value is next; envelope keys on the way are read into
    /// `envelope`. `None` at any other key (or the object's end).
    fn seek(&self, scan: &mut Scan<'_>, envelope: &mut Envelope, wanted: &str) -> Option<()> {
        loop {
            let key = scan.key()??;
            if key == wanted {
                return Some(());
            }
            if !envelope.scan(self, key, scan)? {
                return None;
            }
        }
    }

    fn id_key(&self) -> Option<&'static str> {
        match self.request_id {
            RequestIdPlace::Key { key, .. } => Some(key),
            _ => None,
        }
    }

    /// How the frame tagged `tag` is recognised, the name of its message, and the key its
    /// payload sits under (`None` for inline payloads). A carried message's method name is read
    /// from the frame.
    fn frame_name<'a>(
        &self,
        tag: TagRef<'a>,
        scan: &mut Scan<'a>,
        envelope: &mut Envelope,
    ) -> Option<(FrameClass, TagRef<'a>, Option<&'static str>)> {
        let carried = |framing: &Framing| match framing {
            Framing::Carrier(carrier) if tag_eq(carrier.tag, tag) => Some(*carrier),
            _ => None,
        };
        let carrier = match carried(&self.request) {
            Some(carrier) => Some((carrier, FrameClass::Request)),
            None => carried(&self.event).map(|carrier| (carrier, FrameClass::Event)),
        };
        if let Some((carrier, class)) = carrier {
            self.seek(scan, envelope, carrier.method)?;
            return Some((class, TagRef::Str(scan.string()?), Some(carrier.args)));
        }
        let suffixed = |framing: &Framing| match (framing, tag) {
            (Framing::Suffix(s), TagRef::Str(t)) => t.strip_suffix(s).map(TagRef::Str),
            _ => None,
        };
        let (class, name) = if let Some(name) = suffixed(&self.request) {
            (FrameClass::Request, name)
        } else if let Some(name) = suffixed(&self.event) {
            (FrameClass::Event, name)
        } else {
            (FrameClass::Plain, tag)
        };
        let payload_key = match self.payload {
            PayloadPlace::Under(key) => Some(key),
            PayloadPlace::Inline => None,
        };
        Some((class, name, payload_key))
    }

    /// The rest of a frame whose payload sits under `payload_key`.
    fn under_key<'a, I: Inbound>(
        &self,
        scan: &mut Scan<'a>,
        envelope: &mut Envelope,
        class: FrameClass,
        name: TagRef<'_>,
        payload_key: &str,
    ) -> Option<I> {
        let mut message = None;
        while let Some(key) = scan.key()? {
            if key == payload_key && message.is_none() {
                message = Some(I::decode_from(class, name, &mut *scan).ok()?);
            } else if !envelope.scan(self, key, scan)? {
                // Strict protocols refuse other keys; the general path words the error.
                if self.strict || key == payload_key {
                    return None;
                }
                scan.skip()?;
            }
        }
        if !scan.at_end() {
            return None;
        }
        match message {
            Some(message) => Some(message),
            // A missing payload is "absent" (SocketCluster's `#removeAuthToken` has no `data`).
            None if self.strict => None,
            None => I::decode_from(class, name, FromDeserializer(AbsentDeserializer)).ok(),
        }
    }

    /// The rest of a frame whose payload's keys sit beside the envelope's: `rest` follows the
    /// tag (or the last envelope key read), starting with `,` or `}`.
    fn inline<I: Inbound>(
        &self,
        rest: &str,
        envelope: &mut Envelope,
        class: FrameClass,
        name: TagRef<'_>,
    ) -> Option<I> {
        // The payload is the rest of the object. serde_json reads it as an object of its own, so
        // it gets the opening brace back: a copy of a few bytes, into a buffer kept per thread.
        let rest = rest.trim_start_matches(JSON_WS);
        let fields = match rest.as_bytes().first()? {
            b'}' => rest,
            b',' if rest[1..].trim_start_matches(JSON_WS).starts_with('"') => &rest[1..],
            _ => return None,
        };
        let mut decode = |object: &mut String| {
            object.clear();
            object.push('{');
            object.push_str(fields);
            let mut de = serde_json::Deserializer::from_str(object);
            let message = de
                .deserialize_map(InlineVisitor::<I> {
                    profile: self,
                    envelope,
                    class,
                    name,
                    _inbound: PhantomData,
                })
                .ok()?;
            de.end().ok()?;
            Some(message)
        };
        INLINE_BUFFER.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut buffer) => decode(&mut buffer),
            Err(_) => decode(&mut String::new()),
        })
    }
}

thread_local! {
    /// The buffer [`WireProfile::decode_fast`] copies an inline payload into.
    static INLINE_BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
}

/// JSON's whitespace.
const JSON_WS: [char; 4] = [' ', '\t', '\n', '\r'];

/// An inline payload: the frame's keys after the tag, minus the envelope's.
struct InlineVisitor<'p, 'e, 'n, I> {
    profile: &'p WireProfile,
    envelope: &'e mut Envelope,
    class: FrameClass,
    name: TagRef<'n>,
    _inbound: PhantomData<fn() -> I>,
}

impl<'de, I: Inbound> Visitor<'de> for InlineVisitor<'_, '_, '_, I> {
    type Value = I;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a payload")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<I, A::Error> {
        let (profile, envelope) = (self.profile, self.envelope);
        let mut fields = KeyFilter::new(None, &mut map, |key: &str, map: &mut A| {
            envelope.take(profile, key, map)
        });
        let payload = de::value::MapAccessDeserializer::new(&mut fields);
        let message = I::decode_from(self.class, self.name, FromDeserializer(payload));
        fields.finish(message)
    }
}

/// Envelope values read so far.
#[derive(Default)]
struct Envelope {
    id: Option<RequestId>,
    seq: Option<i64>,
}

impl Envelope {
    /// Reads `key`'s value if it is an envelope key: `Some(true)` when it was, `Some(false)` when
    /// `key` is not an envelope key, `None` (ask the general path) when it is repeated or its
    /// value is not what the envelope holds.
    fn scan(&mut self, profile: &WireProfile, key: &str, scan: &mut Scan<'_>) -> Option<bool> {
        if Some(key) == profile.sequence {
            if self.seq.replace(scan.int()?).is_some() {
                return None;
            }
        } else if Some(key) == profile.id_key() {
            let id = match scan.int() {
                Some(n) => RequestId::Int(n),
                // A string, escaped or not.
                None => scan.value::<IdValue>().ok()?.0,
            };
            if self.id.replace(id).is_some() {
                return None;
            }
        } else {
            return Some(false);
        }
        Some(true)
    }

    /// Reads `key`'s value if it is an envelope key (`Taken`); `Pass` when it is not, `Stop`
    /// when it is repeated.
    fn take<'de, A: MapAccess<'de>>(
        &mut self,
        profile: &WireProfile,
        key: &str,
        map: &mut A,
    ) -> Result<Filtered, A::Error> {
        let repeated = if Some(key) == profile.sequence {
            self.seq.replace(map.next_value()?).is_some()
        } else if Some(key) == profile.id_key() {
            self.id.replace(map.next_value::<IdValue>()?.0).is_some()
        } else {
            return Ok(Filtered::Pass);
        };
        Ok(if repeated {
            Filtered::Stop
        } else {
            Filtered::Taken
        })
    }
}

impl<'de> PayloadSource<'de> for &mut Scan<'de> {
    type Error = serde_json::Error;

    fn decode<T: de::Deserialize<'de>>(self) -> Result<T, serde_json::Error> {
        self.value()
    }
}

fn finish<I>(p: &WireProfile, message: I, class: FrameClass, envelope: Envelope) -> FastFrame<I> {
    let id = match p.request_id {
        RequestIdPlace::Sequence if class == FrameClass::Request => {
            envelope.seq.map(RequestId::Int)
        }
        RequestIdPlace::Key { .. } => envelope.id,
        _ => None,
    };
    FastFrame {
        message,
        id,
        seq: envelope.seq,
        class,
    }
}

fn is_reply(p: &WireProfile, tag: TagRef<'_>) -> bool {
    let matched = match (p.reply.matched, tag) {
        (ReplyMatch::Tag { tag: reply, .. }, TagRef::Str(t)) => t == reply,
        (ReplyMatch::Carrier(carrier), t) => tag_eq(carrier, t),
        (ReplyMatch::Suffix(s), TagRef::Str(t)) => t.ends_with(s),
        _ => false,
    };
    let error = matches!((p.reply.error, tag), (ErrorFraming::Tagged { tag: e, .. }, TagRef::Str(t)) if t == e);
    matched || error
}

/// What a [`KeyFilter`] does with one key of an object.
enum Filtered {
    /// The key is the payload's: hand it on.
    Pass,
    /// The filter read the key's value for itself.
    Taken,
    /// The object is not one the one-pass path reads: stop with an error.
    Stop,
}

/// An object's keys handed to a payload's deserialiser, minus the keys `take` reads for itself
/// (envelope keys among an inline payload's, a reply's id inside its result). A key `take` stops
/// at ends the read with an error, and `stopped` says so; the caller then asks the general path.
struct KeyFilter<'a, 'de, A, F> {
    /// A key already read, handed on first.
    first: Option<Cow<'de, str>>,
    map: &'a mut A,
    take: F,
    stopped: bool,
}

impl<'a, 'de, A, F> KeyFilter<'a, 'de, A, F> {
    fn new(first: Option<Cow<'de, str>>, map: &'a mut A, take: F) -> Self {
        KeyFilter {
            first,
            map,
            take,
            stopped: false,
        }
    }

    /// What the payload's deserialiser made of the keys; an error if `take` stopped the read,
    /// whatever the deserialiser made of that.
    fn finish<T, E: de::Error>(&self, read: Result<T, E>) -> Result<T, E> {
        if self.stopped {
            return Err(de::Error::custom(STOPPED));
        }
        read
    }
}

/// The error a [`KeyFilter`] stops with.
const STOPPED: &str = "not read in one pass";

impl<'de, A, F> MapAccess<'de> for &mut KeyFilter<'_, 'de, A, F>
where
    A: MapAccess<'de>,
    F: FnMut(&str, &mut A) -> Result<Filtered, A::Error>,
{
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let key = match self.first.take() {
            Some(first) => first,
            None => loop {
                let Some(key) = self.map.next_key::<Key<'de>>()? else {
                    return Ok(None);
                };
                match (self.take)(&key.0, self.map)? {
                    Filtered::Pass => break key.0,
                    Filtered::Taken => continue,
                    Filtered::Stop => {
                        self.stopped = true;
                        return Err(de::Error::custom(STOPPED));
                    }
                }
            },
        };
        seed_key(seed, key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// Hands a key already read to the payload's deserialiser, borrowed when it can be.
fn seed_key<'de, K: DeserializeSeed<'de>, E: de::Error>(
    seed: K,
    key: Cow<'de, str>,
) -> Result<K::Value, E> {
    match key {
        Cow::Borrowed(k) => seed.deserialize(de::value::BorrowedStrDeserializer::new(k)),
        Cow::Owned(k) => seed.deserialize(de::value::StringDeserializer::new(k)),
    }
}

/// A request id: an integer or a string.
struct IdValue(RequestId);

impl<'de> de::Deserialize<'de> for IdValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = IdValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IdValue, E> {
                Ok(IdValue(RequestId::Int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IdValue, E> {
                i64::try_from(v)
                    .map(|v| IdValue(RequestId::Int(v)))
                    .map_err(|_| E::custom("id out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IdValue, E> {
                Ok(IdValue(RequestId::Str(v.to_owned())))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// A successful reply decoded in one pass.
#[derive(Debug)]
pub struct FastReply<T> {
    /// The result.
    pub reply: T,
    /// The id of the request answered (`None` for ordered protocols).
    pub id: Option<RequestId>,
    /// The frame's sequence number, for protocols that number frames.
    pub seq: Option<i64>,
}

impl WireProfile {
    /// Tells a reply frame from its first keys, without reading its result: `Some(id)` when the
    /// envelope (the reply's tag, and its id for protocols with ids) comes before anything else,
    /// as every protolink peer and the real SocketCluster and Litecord peers write it. `None`
    /// asks for the general path: not a reply, a failure frame, the id inside the payload, or
    /// keys in another order.
    pub fn peek_reply(&self, text: &str) -> Option<Option<RequestId>> {
        let id_key = self.reply_id_key()?;
        // A frame whose first key cannot start a reply's envelope needs no parser at all (the
        // parser's early stop costs an error value).
        let for_key = match self.reply.matched {
            ReplyMatch::Tag { for_key, .. } => Some(for_key),
            _ => None,
        };
        if let Some(first) = first_key(text) {
            if ![Some(self.tag), id_key, self.sequence, for_key].contains(&Some(first)) {
                return None;
            }
        }
        let mut found = None;
        let mut de = serde_json::Deserializer::from_str(text);
        // The visitor stops reading with an error once it knows; the answer is in `found`.
        let _ = de.deserialize_map(PeekVisitor {
            profile: self,
            found: &mut found,
        });
        found
    }

    /// The name of the request a reply answers, read from the reply's tag among its first
    /// keys (Clusterio's `list_slaves_response` answers `list_slaves`): how the reader picks the
    /// reply type when the reply's id sits inside the payload. `None` when the tag does not name
    /// a request or does not come before the payload.
    pub fn peek_reply_name<'a>(&self, text: &'a str) -> Option<&'a str> {
        let ReplyMatch::Suffix(suffix) = self.reply.matched else {
            return None;
        };
        let mut scan = Scan::object(text)?;
        self.seek(&mut scan, &mut Envelope::default(), self.tag)?;
        scan.string()?.strip_suffix(suffix)
    }

    /// Decodes a successful reply as `T` in one pass, or returns `None` to ask for the general
    /// path ([`WireProfile::classify`], which also reads failures and words every error).
    pub fn decode_reply_fast<'de, T: de::Deserialize<'de>>(
        &self,
        text: &'de str,
    ) -> Option<FastReply<T>> {
        // Ids inside the payload are read from there; a payload must then be an object of its
        // own, under a key.
        match (self.request_id, self.reply.id) {
            (RequestIdPlace::Ordered, _) | (_, Some(KeyPath::Top(_))) => {}
            (_, Some(KeyPath::InPayload(_))) if self.result_key().is_some() => {}
            _ => return None,
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let reply = de
            .deserialize_map(ReplyVisitor::<T> {
                profile: self,
                _reply: PhantomData,
            })
            .ok()??;
        de.end().ok()?;
        Some(reply)
    }

    /// The top-level key of a reply's id (`Some(None)` for ordered protocols); `None` when the
    /// id sits inside the payload, which the one-pass paths leave to the general one.
    fn reply_id_key(&self) -> Option<Option<&'static str>> {
        match (self.request_id, self.reply.id) {
            (RequestIdPlace::Ordered, _) => Some(None),
            (_, Some(KeyPath::Top(key))) => Some(Some(key)),
            _ => None,
        }
    }

    /// The key holding a reply's result; `None` when its fields sit inline.
    fn result_key(&self) -> Option<&'static str> {
        match (self.reply.result, self.payload) {
            (Some(key), _) | (None, PayloadPlace::Under(key)) => Some(key),
            (None, PayloadPlace::Inline) => None,
        }
    }
}

/// What a reply frame's envelope keys said so far.
#[derive(Default)]
struct ReplyEnvelope {
    /// Whether the frame is a successful reply, once a key told.
    reply: Option<bool>,
    id: Option<RequestId>,
    seq: Option<i64>,
    /// Whether the key naming the answered request was read.
    named: bool,
}

/// One key of a frame read on a reply path.
enum ReplyKey {
    /// An envelope key, read.
    Envelope,
    /// The result's key; its value is next.
    Result,
    /// Any other key; its value is next.
    Other,
    /// Not a successful reply, or not one the one-pass paths read.
    GiveUp,
}

impl ReplyEnvelope {
    fn key<'de, A: MapAccess<'de>>(
        &mut self,
        p: &WireProfile,
        key: &str,
        map: &mut A,
    ) -> Result<ReplyKey, A::Error> {
        if key == p.tag {
            // A repeated envelope key: the general path keeps the first, and says so.
            if self.reply.is_some() && !matches!(p.reply.matched, ReplyMatch::Untagged) {
                return Ok(ReplyKey::GiveUp);
            }
            let reply = match p.tag_type {
                TagType::Int => TagRef::Int(map.next_value()?),
                TagType::Str => match map.next_value::<Key<'de>>()?.0 {
                    Cow::Borrowed(tag) => TagRef::Str(tag),
                    Cow::Owned(_) => return Ok(ReplyKey::GiveUp),
                },
            };
            let failure = matches!((p.reply.error, reply), (ErrorFraming::Tagged { tag, .. }, TagRef::Str(t)) if t == tag);
            // Untagged replies are told by their id: a tagged frame is a message.
            if failure || matches!(p.reply.matched, ReplyMatch::Untagged) || !is_reply(p, reply) {
                return Ok(ReplyKey::GiveUp);
            }
            self.reply = Some(true);
            return Ok(ReplyKey::Envelope);
        }
        if Some(key) == p.reply_id_key().flatten() {
            if self.id.is_some() {
                return Ok(ReplyKey::GiveUp);
            }
            self.id = Some(map.next_value::<IdValue>()?.0);
            if matches!(p.reply.matched, ReplyMatch::Untagged) {
                self.reply = Some(true);
            }
            return Ok(ReplyKey::Envelope);
        }
        if Some(key) == p.sequence {
            if self.seq.is_some() {
                return Ok(ReplyKey::GiveUp);
            }
            self.seq = Some(map.next_value()?);
            return Ok(ReplyKey::Envelope);
        }
        if matches!(p.reply.matched, ReplyMatch::Tag { for_key, .. } if for_key == key) {
            // The request's name: a string without escapes, as the general path reads it.
            let name = map.next_value::<Key<'de>>()?;
            if self.named || matches!(name.0, Cow::Owned(_)) {
                return Ok(ReplyKey::GiveUp);
            }
            self.named = true;
            return Ok(ReplyKey::Envelope);
        }
        if matches!(p.reply.error, ErrorFraming::InReply { path: KeyPath::Top(error), .. } if error == key)
        {
            return Ok(ReplyKey::GiveUp);
        }
        if Some(key) == p.result_key() {
            return Ok(ReplyKey::Result);
        }
        Ok(ReplyKey::Other)
    }

    /// Whether this is a reply with everything the link needs to route it.
    fn known(&self, p: &WireProfile) -> bool {
        self.reply == Some(true) && (self.id.is_some() || p.request_id == RequestIdPlace::Ordered)
    }
}

struct PeekVisitor<'p, 'f> {
    profile: &'p WireProfile,
    found: &'f mut Option<Option<RequestId>>,
}

impl<'de> Visitor<'de> for PeekVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a frame")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut envelope = ReplyEnvelope::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match envelope.key(self.profile, &key.0, &mut map)? {
                ReplyKey::Envelope if envelope.known(self.profile) => {
                    *self.found = Some(envelope.id);
                    // Done: stop reading here.
                    return Err(de::Error::custom("peeked"));
                }
                ReplyKey::Envelope => {}
                ReplyKey::Result | ReplyKey::Other | ReplyKey::GiveUp => return Ok(()),
            }
        }
        Ok(())
    }
}

struct ReplyVisitor<'p, T> {
    profile: &'p WireProfile,
    _reply: PhantomData<fn() -> T>,
}

impl<'de, T: de::Deserialize<'de>> Visitor<'de> for ReplyVisitor<'_, T> {
    type Value = Option<FastReply<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a reply")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let p = self.profile;
        let mut envelope = ReplyEnvelope::default();
        let mut reply = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match envelope.key(p, &key.0, &mut map)? {
                ReplyKey::Envelope => {}
                ReplyKey::GiveUp => return Ok(None),
                ReplyKey::Result if reply.is_none() => match p.reply.id {
                    Some(KeyPath::InPayload(id_key)) => {
                        let (result, id) = map.next_value_seed(IdInPayload::<T> {
                            id_key,
                            error_key: match p.reply.error {
                                ErrorFraming::InReply {
                                    path: KeyPath::InPayload(key),
                                    ..
                                } => Some(key),
                                _ => None,
                            },
                            _reply: PhantomData,
                        })?;
                        if envelope.id.is_some() {
                            return Ok(None);
                        }
                        envelope.id = id;
                        reply = Some(result);
                    }
                    _ => reply = Some(map.next_value::<T>()?),
                },
                // A second result key: the general path words it.
                ReplyKey::Result => return Ok(None),
                ReplyKey::Other if p.result_key().is_none() => {
                    // Inline fields: this key and every other non-envelope key are the result.
                    let envelope = &mut envelope;
                    let mut fields =
                        KeyFilter::new(Some(key.0), &mut map, |key: &str, map: &mut A| {
                            Ok(match envelope.key(p, key, map)? {
                                ReplyKey::Envelope => Filtered::Taken,
                                ReplyKey::GiveUp => Filtered::Stop,
                                ReplyKey::Result | ReplyKey::Other => Filtered::Pass,
                            })
                        });
                    let value = T::deserialize(de::value::MapAccessDeserializer::new(&mut fields));
                    reply = Some(fields.finish(value)?);
                    break;
                }
                ReplyKey::Other if p.strict => return Ok(None),
                ReplyKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !envelope.known(p) {
            return Ok(None);
        }
        let reply = match reply {
            Some(reply) => reply,
            // No result: "absent" (SocketCluster's `{"rid": 5}`).
            None => T::deserialize(AbsentDeserializer).map_err(de::Error::custom)?,
        };
        Ok(Some(FastReply {
            reply,
            id: envelope.id,
            seq: envelope.seq,
        }))
    }
}

/// A reply's result whose object also holds the reply's id (Clusterio's `data.seq`): the id is
/// taken out on the way, and an error key (a failure) or a repeated id stops the read.
struct IdInPayload<T> {
    id_key: &'static str,
    error_key: Option<&'static str>,
    _reply: PhantomData<fn() -> T>,
}

impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for IdInPayload<T> {
    type Value = (T, Option<RequestId>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: de::Deserialize<'de>> Visitor<'de> for IdInPayload<T> {
    type Value = (T, Option<RequestId>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a reply's result object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        let mut fields = KeyFilter::new(None, &mut map, |key: &str, map: &mut A| {
            if key == self.id_key {
                let repeated = id.replace(map.next_value::<IdValue>()?.0).is_some();
                return Ok(if repeated {
                    Filtered::Stop
                } else {
                    Filtered::Taken
                });
            }
            Ok(if Some(key) == self.error_key {
                Filtered::Stop
            } else {
                Filtered::Pass
            })
        });
        let result = T::deserialize(de::value::MapAccessDeserializer::new(&mut fields));
        let result = fields.finish(result)?;
        Ok((result, id))
    }
}

/// The first key of a JSON object, when it holds no escape; `None` when it cannot be told this
/// cheaply (the caller then reads the frame properly).
fn first_key(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes().get(end) == Some(&b'"')).then(|| &rest[..end])
}
