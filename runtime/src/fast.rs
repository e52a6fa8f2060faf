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
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::message::Inbound;
use crate::wire::{
    AbsentDeserializer, ErrorFraming, FrameClass, Framing, Key, PayloadPlace, ReplyMatch,
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
        let mut de = serde_json::Deserializer::from_str(text);
        let frame = de
            .deserialize_map(FrameVisitor::<I> {
                profile: self,
                _inbound: PhantomData,
            })
            .ok()??;
        de.end().ok()?;
        // A numbered protocol's frame without its number is malformed: the general path says so.
        if self.sequence.is_some() && frame.seq.is_none() {
            return None;
        }
        Some(frame)
    }

    fn id_key(&self) -> Option<&'static str> {
        match self.request_id {
            RequestIdPlace::Key { key, .. } => Some(key),
            _ => None,
        }
    }
}

struct FrameVisitor<'p, I> {
    profile: &'p WireProfile,
    _inbound: PhantomData<fn() -> I>,
}

/// Envelope values read so far.
#[derive(Default)]
struct Envelope {
    id: Option<RequestId>,
    seq: Option<i64>,
}

impl Envelope {
    /// Reads `key`'s value if it is an envelope key; `Ok(false)` when it is not.
    fn take<'de, A: MapAccess<'de>>(
        &mut self,
        profile: &WireProfile,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        if Some(key) == profile.sequence {
            self.seq = Some(map.next_value()?);
            Ok(true)
        } else if Some(key) == profile.id_key() {
            self.id = Some(map.next_value::<IdValue>()?.0);
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

impl<'de, I: Inbound> Visitor<'de> for FrameVisitor<'_, I> {
    type Value = Option<FastFrame<I>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a frame")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let p = self.profile;
        let mut envelope = Envelope::default();
        // Envelope keys may come before the tag (Clusterio's `seq`); anything else means the
        // payload comes first, which the general path handles.
        let tag = loop {
            let Some(key) = map.next_key::<Key<'de>>()? else {
                return Ok(None);
            };
            if key.0 == p.tag {
                break match p.tag_type {
                    TagType::Int => OwnedTag::Int(map.next_value()?),
                    // Escaped names are refused by the general path too (it borrows them).
                    TagType::Str => match map.next_value::<Key<'de>>()?.0 {
                        Cow::Borrowed(tag) => OwnedTag::Str(Cow::Borrowed(tag)),
                        Cow::Owned(_) => return Ok(None),
                    },
                };
            }
            if !envelope.take(p, &key.0, &mut map)? {
                return Ok(None);
            }
        };
        let tag_ref = tag.as_ref();
        if is_reply(p, tag_ref) {
            return Ok(None);
        }
        // Carried messages: the method name, then the arguments.
        for (framing, class) in [
            (p.request, FrameClass::Request),
            (p.event, FrameClass::Event),
        ] {
            if let Framing::Carrier(carrier) = framing {
                if tag_eq(carrier.tag, tag_ref) {
                    let name = loop {
                        let Some(key) = map.next_key::<Key<'de>>()? else {
                            return Ok(None);
                        };
                        if key.0 == carrier.method {
                            match map.next_value::<Key<'de>>()?.0 {
                                Cow::Borrowed(name) => break name,
                                Cow::Owned(_) => return Ok(None),
                            }
                        }
                        if !envelope.take(p, &key.0, &mut map)? {
                            return Ok(None);
                        }
                    };
                    return under_key::<I, A>(
                        p,
                        map,
                        envelope,
                        class,
                        TagRef::Str(name),
                        carrier.args,
                    );
                }
            }
        }
        let (class, name) = match tag_ref {
            TagRef::Str(t) => match (p.request, p.event) {
                (Framing::Suffix(s), _) if t.ends_with(s) => {
                    (FrameClass::Request, TagRef::Str(&t[..t.len() - s.len()]))
                }
                (_, Framing::Suffix(s)) if t.ends_with(s) => {
                    (FrameClass::Event, TagRef::Str(&t[..t.len() - s.len()]))
                }
                _ => (FrameClass::Plain, tag_ref),
            },
            TagRef::Int(_) => (FrameClass::Plain, tag_ref),
        };
        match p.payload {
            PayloadPlace::Under(key) => under_key::<I, A>(p, map, envelope, class, name, key),
            PayloadPlace::Inline => {
                let message = {
                    let filtered = EnvelopeFilter {
                        map: &mut map,
                        profile: p,
                        envelope: &mut envelope,
                    };
                    I::decode_from(class, name, de::value::MapAccessDeserializer::new(filtered))?
                };
                Ok(Some(finish(p, message, class, &envelope)))
            }
        }
    }
}

/// The rest of a frame whose payload sits under `payload_key`.
fn under_key<'de, I: Inbound, A: MapAccess<'de>>(
    p: &WireProfile,
    mut map: A,
    mut envelope: Envelope,
    class: FrameClass,
    name: TagRef<'_>,
    payload_key: &str,
) -> Result<Option<FastFrame<I>>, A::Error> {
    let mut message = None;
    while let Some(key) = map.next_key::<Key<'de>>()? {
        if key.0 == payload_key && message.is_none() {
            message = Some(map.next_value_seed(DecodeSeed::<I> {
                class,
                name,
                _inbound: PhantomData,
            })?);
        } else if !envelope.take(p, &key.0, &mut map)? {
            if p.strict {
                // The general path words the error.
                return Ok(None);
            }
            map.next_value::<IgnoredAny>()?;
        }
    }
    // A missing payload is "absent" (SocketCluster's `#removeAuthToken` has no `data`).
    let message = match message {
        Some(message) => message,
        None if p.strict => return Ok(None),
        None => I::decode_from(class, name, AbsentDeserializer).map_err(de::Error::custom)?,
    };
    Ok(Some(finish(p, message, class, &envelope)))
}

fn finish<I>(p: &WireProfile, message: I, class: FrameClass, envelope: &Envelope) -> FastFrame<I> {
    FastFrame {
        message,
        id: request_id(p, class, envelope),
        seq: envelope.seq,
        class,
    }
}

fn request_id(p: &WireProfile, class: FrameClass, envelope: &Envelope) -> Option<RequestId> {
    match p.request_id {
        RequestIdPlace::Sequence if class == FrameClass::Request => {
            envelope.seq.map(RequestId::Int)
        }
        RequestIdPlace::Key { .. } => envelope.id.clone(),
        _ => None,
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

enum OwnedTag<'de> {
    Str(Cow<'de, str>),
    Int(i64),
}

impl OwnedTag<'_> {
    fn as_ref(&self) -> TagRef<'_> {
        match self {
            OwnedTag::Str(s) => TagRef::Str(s),
            OwnedTag::Int(n) => TagRef::Int(*n),
        }
    }
}

struct DecodeSeed<'n, I> {
    class: FrameClass,
    name: TagRef<'n>,
    _inbound: PhantomData<fn() -> I>,
}

impl<'de, I: Inbound> DeserializeSeed<'de> for DecodeSeed<'_, I> {
    type Value = I;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<I, D::Error> {
        I::decode_from(self.class, self.name, deserializer)
    }
}

/// Passes a frame's keys to the payload, keeping the envelope's own keys for itself.
struct EnvelopeFilter<'a, 'p, A> {
    map: &'a mut A,
    profile: &'p WireProfile,
    envelope: &'a mut Envelope,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for EnvelopeFilter<'_, '_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.map.next_key::<Key<'de>>()? else {
                return Ok(None);
            };
            if self.envelope.take(self.profile, &key.0, self.map)? {
                continue;
            }
            return match key.0 {
                Cow::Borrowed(k) => seed
                    .deserialize(de::value::BorrowedStrDeserializer::new(k))
                    .map(Some),
                Cow::Owned(k) => seed
                    .deserialize(de::value::StringDeserializer::new(k))
                    .map(Some),
            };
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
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
