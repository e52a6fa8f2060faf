//! Single-pass decoding for frames whose keys come in the usual order.
//!
//! Real peers write the envelope first: `{"op": 4, "w": ..., "a": ..., "n": ...}`,
//! `{"event": ..., "data": ..., "cid": ...}`, `{"seq": ..., "type": ..., "data": ...}`,
//! `{"type": "open", "channel": 42}`. For those, [`WireProfile::decode_fast`] reads the tag and
//! deserialises the concrete payload from the same pass over the text, with no intermediate
//! buffering. Anything else (a reply, the tag after the payload, a payload missing, any error)
//! returns `None`, and the caller falls back to [`WireProfile::classify`], which handles every
//! key order and words every error precisely.
//!
//! The entry points are `#[inline(always)]` and their helpers `#[inline]`: callers pass a
//! protocol's `WIRE`, a constant, so once inlined the compiler folds the profile's choices (where
//! the tag sits, which keys are the envelope's, how replies are told) into code specialised per
//! protocol, as if the envelope reader were generated.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

use crate::message::{FromDeserializer, Inbound, PayloadSource};
use crate::scan::{Scan, ScanDecode};
use crate::wire::{
    AbsentDeserializer, ErrorFraming, FrameClass, Framing, KeyPath, PayloadPlace, ReplyMatch,
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

/// What one pass over a frame made of it.
#[derive(Debug)]
pub enum Fast<'a, I> {
    /// A message, decoded.
    Message(FastFrame<I>),
    /// A successful reply whose envelope comes first, with the id of the request it answers
    /// (`None` where replies come in order). Its result is left to the requester, which knows
    /// its type ([`WireProfile::decode_reply_fast`]).
    Reply(Option<RequestId>),
    /// A reply whose id sits inside its payload (Clusterio's `data.seq`), and the name of the
    /// request it answers, read from its tag (`list_slaves_response` answers `list_slaves`):
    /// the reader decodes it as that request's reply type.
    ReplyTo(&'a str),
}

impl WireProfile {
    /// Reads a frame in one pass: a message (decoded), or a reply (routed by its envelope), or
    /// `None` to ask for the general path ([`WireProfile::classify`]): the payload before the
    /// tag, a failure, keys in an order or a form the scanner leaves to serde, any error.
    #[inline(always)]
    pub fn read_fast<'a, I: Inbound>(&self, text: &'a str) -> Option<Fast<'a, I>> {
        let mut scan = Scan::object(text)?;
        let mut envelope = Envelope::default();
        // Envelope keys may come before the tag (Clusterio's `seq`); anything else means the
        // payload comes first, which the general path handles.
        loop {
            let key = scan.key()??;
            if key == self.tag {
                break;
            }
            if untagged_reply_id(self) == Some(&*key) {
                // A reply told by its id alone (SocketCluster's `rid`).
                return self.peek_reply(text).map(Fast::Reply);
            }
            if !envelope.scan(self, &key, &mut scan)? {
                return None;
            }
        }
        let tag = match self.tag_type {
            TagType::Int => TagRef::Int(scan.int()?),
            // Escaped names are refused by the general path too (it borrows them).
            TagType::Str => TagRef::Str(scan.string()?),
        };
        if is_reply(self, tag) {
            // The envelope read again from the start, as a reply's (a few keys).
            if let Some(id) = self.peek_reply(text) {
                return Some(Fast::Reply(id));
            }
            return match (self.reply.matched, tag) {
                (ReplyMatch::Suffix(suffix), TagRef::Str(t)) => {
                    t.strip_suffix(suffix).map(Fast::ReplyTo)
                }
                _ => None,
            };
        }
        let (class, name, payload_key) = self.frame_name(tag, &mut scan, &mut envelope)?;
        let message = match payload_key {
            Some(key) => self.under_key::<I>(&mut scan, &mut envelope, class, name, key)?,
            None => self.inline::<I>(&mut scan, &mut envelope, class, name)?,
        };
        // A numbered protocol's frame without its number is malformed: the general path says so.
        if self.sequence.is_some() && envelope.seq.is_none() {
            return None;
        }
        Some(Fast::Message(finish(self, message, class, envelope)))
    }

    /// Decodes a message frame in one pass ([`WireProfile::read_fast`]'s message), or returns
    /// `None` to ask for the general path.
    #[inline(always)]
    pub fn decode_fast<I: Inbound>(&self, text: &str) -> Option<FastFrame<I>> {
        match self.read_fast(text)? {
            Fast::Message(frame) => Some(frame),
            Fast::Reply(_) | Fast::ReplyTo(_) => None,
        }
    }

    /// Reads keys up to `wanted`, whose value is next; envelope keys on the way are read into
    /// `envelope`. `None` at any other key (or the object's end).
    #[inline]
    fn seek(&self, scan: &mut Scan<'_>, envelope: &mut Envelope, wanted: &str) -> Option<()> {
        loop {
            let key = scan.key()??;
            if key == wanted {
                return Some(());
            }
            if !envelope.scan(self, &key, scan)? {
                return None;
            }
        }
    }

    #[inline]
    fn id_key(&self) -> Option<&'static str> {
        match self.request_id {
            RequestIdPlace::Key { key, .. } => Some(key),
            _ => None,
        }
    }

    /// How the frame tagged `tag` is recognised, the name of its message, and the key its
    /// payload sits under (`None` for inline payloads). A carried message's method name is read
    /// from the frame.
    #[inline]
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
    #[inline(always)]
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
            } else if !envelope.scan(self, &key, scan)? {
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

    /// The rest of a frame whose payload's keys sit beside the envelope's, after the tag (or
    /// the last envelope key read).
    #[inline(always)]
    fn inline<I: Inbound>(
        &self,
        scan: &mut Scan<'_>,
        envelope: &mut Envelope,
        class: FrameClass,
        name: TagRef<'_>,
    ) -> Option<I> {
        let fields = InlineFields {
            profile: self,
            scan: &mut *scan,
            envelope,
        };
        let message = I::decode_from(class, name, fields).ok()?;
        scan.at_end().then_some(message)
    }
}

/// An inline payload as a [`PayloadSource`]: the keys left in the frame's object, minus the
/// envelope's.
struct InlineFields<'p, 's, 'e, 'de> {
    profile: &'p WireProfile,
    scan: &'s mut Scan<'de>,
    envelope: &'e mut Envelope,
}

impl<'de> PayloadSource<'de> for InlineFields<'_, '_, '_, 'de> {
    type Error = serde_json::Error;

    fn decode<T: ScanDecode<'de>>(self) -> Result<T, serde_json::Error> {
        let (profile, envelope) = (self.profile, self.envelope);
        T::scan_fields(self.scan, |key, scan| envelope.scan(profile, key, scan))
            .ok_or_else(|| de::Error::custom(STOPPED))
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
    #[inline]
    fn scan(&mut self, profile: &WireProfile, key: &str, scan: &mut Scan<'_>) -> Option<bool> {
        if key == profile.tag {
            // The tag again (`seek` stops at the first): the general path keeps the first and
            // leaves every copy out of an inline payload.
            return None;
        } else if untagged_reply_id(profile) == Some(key) {
            // A reply's id (SocketCluster's `rid`) makes the frame a reply to the general path,
            // whatever else it holds.
            return None;
        } else if Some(key) == profile.sequence {
            if self.seq.replace(scan.int()?).is_some() {
                return None;
            }
        } else if Some(key) == profile.id_key() {
            if self.id.replace(scan_id(scan)?).is_some() {
                return None;
            }
        } else {
            return Some(false);
        }
        Some(true)
    }
}

/// The top-level id key of replies told by their id alone, if the profile has such replies.
#[inline]
fn untagged_reply_id(profile: &WireProfile) -> Option<&'static str> {
    match (profile.reply.matched, profile.reply.id) {
        (ReplyMatch::Untagged, Some(KeyPath::Top(key))) => Some(key),
        _ => None,
    }
}

impl<'de> PayloadSource<'de> for &mut Scan<'de> {
    type Error = serde_json::Error;

    fn decode<T: ScanDecode<'de>>(self) -> Result<T, serde_json::Error> {
        T::scan(self).ok_or_else(|| de::Error::custom(STOPPED))
    }
}

#[inline]
fn finish<I>(p: &WireProfile, message: I, class: FrameClass, envelope: Envelope) -> FastFrame<I> {
    let id = match p.request_id {
        RequestIdPlace::Sequence if class == FrameClass::Request => {
            envelope.seq.map(RequestId::Int)
        }
        // A plain message carries an id only where requests are plain tagged frames too, as
        // the general path reads it (Litecord's heartbeat has none, whatever its `n`).
        RequestIdPlace::Key { .. }
            if class != FrameClass::Plain || matches!(p.request, Framing::Tagged) =>
        {
            envelope.id
        }
        _ => None,
    };
    FastFrame {
        message,
        id,
        seq: envelope.seq,
        class,
    }
}

#[inline]
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

/// The error a payload source returns when the scanner leaves the payload to the general path.
const STOPPED: &str = "not read in one pass";

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
    ///
    /// A reply told by its id alone (SocketCluster's `rid`) is one only if no other key makes
    /// the frame something else (a tag makes it a message, an error key a failure), so the rest
    /// of such a frame is skipped through to its end.
    #[inline]
    pub fn peek_reply(&self, text: &str) -> Option<Option<RequestId>> {
        self.reply_id_key()?;
        let untagged = matches!(self.reply.matched, ReplyMatch::Untagged);
        let mut scan = Scan::object(text)?;
        let mut envelope = ReplyEnvelope::default();
        while let Some(key) = scan.key()? {
            match envelope.scan(self, &key, &mut scan)? {
                ReplyKey::Envelope if envelope.known(self) && !untagged => {
                    return Some(envelope.id);
                }
                ReplyKey::Envelope => {}
                ReplyKey::Result | ReplyKey::Other if untagged && envelope.known(self) => {
                    scan.skip()?;
                }
                ReplyKey::Result | ReplyKey::Other => return None,
            }
        }
        (untagged && envelope.known(self) && scan.at_end()).then_some(envelope.id)
    }

    /// Decodes a successful reply as `T` in one pass, or returns `None` to ask for the general
    /// path ([`WireProfile::classify`], which also reads failures and words every error).
    #[inline(always)]
    pub fn decode_reply_fast<'de, T: ScanDecode<'de>>(
        &self,
        text: &'de str,
    ) -> Option<FastReply<T>> {
        // Ids inside the payload are read from there; a payload must then be an object of its
        // own, under a key.
        let id_in_payload = match (self.request_id, self.reply.id) {
            (RequestIdPlace::Ordered, _) | (_, Some(KeyPath::Top(_))) => None,
            (_, Some(KeyPath::InPayload(key))) if self.result_key().is_some() => Some(key),
            _ => return None,
        };
        let mut scan = Scan::object(text)?;
        let mut envelope = ReplyEnvelope::default();
        let mut reply = None;
        loop {
            let before = scan.clone();
            let Some(key) = scan.key()? else {
                break;
            };
            match envelope.scan(self, &key, &mut scan)? {
                ReplyKey::Envelope => {}
                ReplyKey::Result if reply.is_none() => match id_in_payload {
                    Some(id_key) => {
                        let (result, id) = self.result_with_id(&mut scan, id_key)?;
                        envelope.id = id;
                        reply = Some(result);
                    }
                    None => reply = Some(T::scan(&mut scan)?),
                },
                // A second result key: the general path words it.
                ReplyKey::Result => return None,
                ReplyKey::Other if self.result_key().is_none() => {
                    // Inline fields: this key and every other non-envelope key are the result.
                    scan = before;
                    let envelope = &mut envelope;
                    let result = T::scan_fields(&mut scan, |key, scan| {
                        Some(matches!(
                            envelope.scan(self, key, scan)?,
                            ReplyKey::Envelope
                        ))
                    })?;
                    reply = Some(result);
                    break;
                }
                ReplyKey::Other if self.strict => return None,
                ReplyKey::Other => scan.skip()?,
            }
        }
        if !scan.at_end() || !envelope.known(self) {
            return None;
        }
        // A numbered protocol's reply without its number is malformed, as a message is.
        if self.sequence.is_some() && envelope.seq.is_none() {
            return None;
        }
        let reply = match reply {
            Some(reply) => reply,
            // Inline fields, none of them there: an empty result, not an absent one (Skynet's
            // `{"type":"result"}`); rare, so the general path reads it.
            None if self.result_key().is_none() => return None,
            // No result: "absent" (SocketCluster's `{"rid": 5}`).
            None => T::deserialize(AbsentDeserializer).ok()?,
        };
        Some(FastReply {
            reply,
            id: envelope.id,
            seq: envelope.seq,
        })
    }

    /// A reply's result whose object also holds the reply's id (Clusterio's `data.seq`): the id
    /// is taken out on the way; an error key (a failure) or a repeated id stops the read.
    #[inline]
    fn result_with_id<'de, T: ScanDecode<'de>>(
        &self,
        scan: &mut Scan<'de>,
        id_key: &str,
    ) -> Option<(T, Option<RequestId>)> {
        let error_key = match self.reply.error {
            ErrorFraming::InReply {
                path: KeyPath::InPayload(key),
                ..
            } => Some(key),
            _ => None,
        };
        let mut id = None;
        scan.open()?;
        let result = T::scan_fields(scan, |key, scan| {
            if key == id_key {
                return id.replace(scan_id(scan)?).is_none().then_some(true);
            }
            (Some(key) != error_key).then_some(false)
        })?;
        Some((result, id))
    }

    /// The top-level key of a reply's id (`Some(None)` for ordered protocols); `None` when the
    /// id sits inside the payload, which the one-pass paths leave to the general one.
    #[inline]
    fn reply_id_key(&self) -> Option<Option<&'static str>> {
        match (self.request_id, self.reply.id) {
            (RequestIdPlace::Ordered, _) => Some(None),
            (_, Some(KeyPath::Top(key))) => Some(Some(key)),
            _ => None,
        }
    }

    /// The key holding a reply's result; `None` when its fields sit inline.
    #[inline]
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
}

impl ReplyEnvelope {
    /// Reads `key`'s value if it is one of a reply's envelope keys; `None` when the frame is not
    /// a successful reply, or not one the one-pass paths read (a repeated envelope key, an
    /// escaped tag or name: the general path keeps the first, and says so).
    #[inline]
    fn scan(&mut self, p: &WireProfile, key: &str, scan: &mut Scan<'_>) -> Option<ReplyKey> {
        let untagged = matches!(p.reply.matched, ReplyMatch::Untagged);
        if key == p.tag {
            // Untagged replies are told by their id alone: a tagged frame is left to the general
            // path (which reads it as a reply when it holds the id).
            if self.reply.is_some() || untagged {
                return None;
            }
            let reply = match p.tag_type {
                TagType::Int => TagRef::Int(scan.int()?),
                TagType::Str => TagRef::Str(scan.string()?),
            };
            let failure = matches!((p.reply.error, reply), (ErrorFraming::Tagged { tag, .. }, TagRef::Str(t)) if t == tag);
            if failure || !is_reply(p, reply) {
                return None;
            }
            self.reply = Some(true);
            return Some(ReplyKey::Envelope);
        }
        if Some(key) == p.reply_id_key().flatten() {
            if self.id.replace(scan_id(scan)?).is_some() {
                return None;
            }
            if untagged {
                self.reply = Some(true);
            }
            return Some(ReplyKey::Envelope);
        }
        if Some(key) == p.sequence {
            return self
                .seq
                .replace(scan.int()?)
                .is_none()
                .then_some(ReplyKey::Envelope);
        }
        if matches!(p.reply.matched, ReplyMatch::Tag { for_key, .. } if for_key == key) {
            // The request's name: a string without escapes, as the general path reads it.
            scan.string()?;
            if std::mem::replace(&mut self.named, true) {
                return None;
            }
            return Some(ReplyKey::Envelope);
        }
        if matches!(p.reply.error, ErrorFraming::InReply { path: KeyPath::Top(error), .. } if error == key)
        {
            return None;
        }
        if Some(key) == p.result_key() {
            return Some(ReplyKey::Result);
        }
        Some(ReplyKey::Other)
    }

    /// Whether this is a reply with everything the link needs to route it.
    #[inline]
    fn known(&self, p: &WireProfile) -> bool {
        self.reply == Some(true) && (self.id.is_some() || p.request_id == RequestIdPlace::Ordered)
    }
}

/// A request id at the scanner's position: an integer, or a string (escaped or not).
#[inline]
fn scan_id(scan: &mut Scan<'_>) -> Option<RequestId> {
    match scan.int() {
        Some(n) => Some(RequestId::Int(n)),
        None => scan.value::<IdValue>().ok().map(|id| id.0),
    }
}
