//! Property tests: for every message of every direction enum of every protocol, encoding a value
//! with `encode_message`, classifying the frame and decoding it through the receiving side's
//! direction enum gives the value back; for every request, the same for its reply
//! (`encode_reply`, success and failure).
//!
//! Values come from each type's JSON Schema (`schemars::schema_for!`): a strategy builds JSON the
//! schema allows, which is deserialised into the type (a value the type refuses is skipped, and
//! too many skips fail the run). Floats are finite. Map keys beside declared fields (`..extra`)
//! are prefixed `xk_`, so that they cannot collide with a declared field or an envelope key (a
//! collision is not representable: the declared field or the envelope takes the key).
//!
//! Coverage: each `direction!` list must name every variant of its enum (an exhaustive `match`
//! is generated, so a new variant does not compile until listed), and `covers_every_direction`
//! compares the lists with the direction enums of the golden copies of the generated code.

use std::collections::BTreeSet;
use std::fmt::Debug;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::{TestCaseError, TestRunner};
use protolink::__private::{
    ErrorFraming, ErrorShape, Framing, KeyPath, Kind, RawFrame, RequestId, RequestIdPlace,
    WireProfile,
};
use protolink::{Inbound, Message, Protocol, RemoteError, Request};
use protolink_protocols::{chat, clusterio, litecord, litecord_example, skynet, socketcluster};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::support::{
    encode_message, encode_reply, expected_class, expected_reply_name, expected_request_id, tag_ref,
};

/// Cases per message, per reply and per error reply; `PROPTEST_CASES` overrides it.
const CASES: u32 = 48;

/// A fresh runner for each property.
fn runner() -> TestRunner {
    crate::support::runner(CASES)
}

// ---------------------------------------------------------------------------------------------
// Values from JSON Schemas
// ---------------------------------------------------------------------------------------------

/// Keywords that only constrain values: the round trip holds for values that break them too,
/// so the generator may ignore them.
const VALIDATION_ONLY: &[&str] = &[
    "$schema",
    "title",
    "description",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "uniqueItems",
    "multipleOf",
    "minProperties",
    "maxProperties",
];

/// Keywords the generator understands.
const SHAPE: &[&str] = &[
    "type",
    "$ref",
    "$defs",
    "const",
    "enum",
    "anyOf",
    "oneOf",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
];

/// Strings with the characters that need escaping, non-ASCII and astral ones.
fn text() -> BoxedStrategy<String> {
    let special = vec![
        '"', '\\', '/', '\n', '\t', '\u{0}', '\u{1f}', '\u{7f}', 'é', '\u{2028}', '😀', '#', ' ',
    ];
    prop_oneof![
        "[a-z0-9_]{0,8}",
        vec(any::<char>(), 0..6).prop_map(String::from_iter),
        vec(proptest::sample::select(special), 0..6).prop_map(String::from_iter),
    ]
    .boxed()
}

/// Any finite float.
fn any_finite_f64() -> BoxedStrategy<f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    prop_oneof![
        POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO,
        (0_i64..(1 << 53)).prop_map(|n| n as f64),
        (1_000_000_000_000_000_i64..10_000_000_000_000_000).prop_map(|n| n as f64 / 10.0),
    ]
    .boxed()
}

/// Any JSON value, nested a little.
fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any_finite_f64().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((text(), inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// JSON values the schema allows.
fn value_of(schema: &Value, defs: &Map<String, Value>, depth: u32) -> BoxedStrategy<Value> {
    let obj = match schema {
        Value::Bool(true) => return any_json(),
        Value::Object(obj) => obj,
        other => panic!("unsupported schema: {other}"),
    };
    assert!(depth < 32, "schema nests too deep (a recursive type?)");
    for key in obj.keys() {
        assert!(
            SHAPE.contains(&key.as_str()) || VALIDATION_ONLY.contains(&key.as_str()),
            "the generator does not understand the schema keyword `{key}`: extend it\n{schema:#}"
        );
    }
    if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
        let name = reference
            .strip_prefix("#/$defs/")
            .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
        let target = defs
            .get(name)
            .unwrap_or_else(|| panic!("no definition {name}"));
        return value_of(target, defs, depth + 1);
    }
    if let Some(value) = obj.get("const") {
        return Just(value.clone()).boxed();
    }
    if let Some(Value::Array(values)) = obj.get("enum") {
        return proptest::sample::select(values.clone()).boxed();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alternatives)) = obj.get(key) {
            return Union::new(alternatives.iter().map(|a| value_of(a, defs, depth + 1))).boxed();
        }
    }
    match obj.get("type") {
        None => any_json(),
        Some(Value::String(ty)) => typed(ty, obj, defs, depth),
        Some(Value::Array(types)) => Union::new(types.iter().map(|ty| {
            let ty = ty
                .as_str()
                .unwrap_or_else(|| panic!("type names are strings: {ty}"));
            typed(ty, obj, defs, depth)
        }))
        .boxed(),
        Some(other) => panic!("unsupported type {other}"),
    }
}

fn typed(
    ty: &str,
    obj: &Map<String, Value>,
    defs: &Map<String, Value>,
    depth: u32,
) -> BoxedStrategy<Value> {
    match ty {
        "null" => Just(Value::Null).boxed(),
        "boolean" => any::<bool>().prop_map(Value::Bool).boxed(),
        "integer" => integer(obj),
        "number" => any_finite_f64().prop_map(Value::from).boxed(),
        "string" => text().prop_map(Value::String).boxed(),
        "array" => array(obj, defs, depth),
        "object" => object(obj, defs, depth),
        other => panic!("unsupported type {other}"),
    }
}

/// Integers within the format's range (and the schema's bounds), biased to the edges.
fn integer(obj: &Map<String, Value>) -> BoxedStrategy<Value> {
    let (mut lo, mut hi): (i128, i128) = match obj.get("format").and_then(Value::as_str) {
        Some("uint8") => (0, u8::MAX.into()),
        Some("int8") => (i8::MIN.into(), i8::MAX.into()),
        Some("uint16") => (0, u16::MAX.into()),
        Some("int16") => (i16::MIN.into(), i16::MAX.into()),
        Some("uint32") => (0, u32::MAX.into()),
        Some("int32") => (i32::MIN.into(), i32::MAX.into()),
        Some("uint64" | "uint") => (0, u64::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    };
    // Bounds are whole numbers in the schemas schemars writes; a fractional bound is rounded
    // inwards.
    if let Some(min) = obj.get("minimum").and_then(Value::as_f64) {
        lo = lo.max(min.ceil() as i128);
    }
    if let Some(max) = obj.get("maximum").and_then(Value::as_f64) {
        hi = hi.min(max.floor() as i128);
    }
    assert!(lo <= hi, "empty integer range in {obj:?}");
    let clamp = move |n: i128| n.clamp(lo, hi);
    prop_oneof![
        1 => Just(lo),
        1 => Just(hi),
        1 => Just(clamp(0)),
        3 => (-1000_i128..1000).prop_map(clamp),
        4 => lo..=hi,
    ]
    .prop_map(|n| match i64::try_from(n) {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(u64::try_from(n).unwrap_or(u64::MAX)),
    })
    .boxed()
}

fn array(obj: &Map<String, Value>, defs: &Map<String, Value>, depth: u32) -> BoxedStrategy<Value> {
    let as_len = |key: &str| obj.get(key).and_then(Value::as_u64).map(|n| n as usize);
    if let Some(Value::Array(prefix)) = obj.get("prefixItems") {
        // A tuple: every item in order; trailing ones may be left out down to `minItems`.
        let items: Vec<BoxedStrategy<Value>> = prefix
            .iter()
            .map(|item| value_of(item, defs, depth + 1))
            .collect();
        let len = items.len();
        let min = as_len("minItems").unwrap_or(len).min(len);
        return (items, min..=len)
            .prop_map(|(mut items, n)| {
                items.truncate(n);
                Value::Array(items)
            })
            .boxed();
    }
    let item = obj
        .get("items")
        .map_or_else(any_json, |item| value_of(item, defs, depth + 1));
    let min = as_len("minItems").unwrap_or(0);
    let max = as_len("maxItems").unwrap_or(min + 4).max(min);
    vec(item, min..=max).prop_map(Value::Array).boxed()
}

fn object(obj: &Map<String, Value>, defs: &Map<String, Value>, depth: u32) -> BoxedStrategy<Value> {
    let properties = obj
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let required: BTreeSet<&str> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = properties
        .iter()
        .map(|(name, schema)| {
            let name = name.clone();
            let value = value_of(schema, defs, depth + 1);
            if required.contains(name.as_str()) {
                value.prop_map(move |v| Some((name.clone(), v))).boxed()
            } else {
                proptest::option::of(value)
                    .prop_map(move |v| v.map(|v| (name.clone(), v)))
                    .boxed()
            }
        })
        .collect();
    // Keys beside declared fields (`..extra`) get a prefix no declared field or envelope key
    // has; a plain map (`{string: any}`) takes any key.
    let key = if properties.is_empty() {
        text()
    } else {
        text().prop_map(|k| format!("xk_{k}")).boxed()
    };
    let extra = match obj.get("additionalProperties") {
        None | Some(Value::Bool(false)) => Just(Vec::new()).boxed(),
        Some(Value::Bool(true)) => vec((key, any_json()), 0..3).boxed(),
        Some(schema) => vec((key, value_of(schema, defs, depth + 1)), 0..3).boxed(),
    };
    (fields, extra)
        .prop_map(|(fields, extra)| {
            let mut map: Map<String, Value> = extra.into_iter().collect();
            map.extend(fields.into_iter().flatten());
            Value::Object(map)
        })
        .boxed()
}

/// Values of `T`, from JSON its schema allows.
fn values<T: JsonSchema + DeserializeOwned + Debug + 'static>() -> BoxedStrategy<T> {
    let schema = serde_json::to_value(schemars::schema_for!(T)).expect("schemas are JSON");
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    value_of(&schema, &defs, 0)
        .prop_filter_map("a value the type refuses", |json| {
            serde_json::from_value(json).ok()
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Ids and frame numbers
// ---------------------------------------------------------------------------------------------

/// Request ids as the profile's peers send them: strings (Litecord nonces, the carrier-framed
/// profile) or numbers (`cid`); an optional id may be left out.
fn request_ids(wire: &WireProfile) -> BoxedStrategy<Option<RequestId>> {
    match wire.request_id {
        RequestIdPlace::Ordered | RequestIdPlace::Sequence => Just(None).boxed(),
        RequestIdPlace::Key { optional, .. } => {
            let id = match wire.request {
                Framing::Carrier(_) => prop_oneof![
                    3 => text().prop_map(RequestId::Str),
                    1 => any::<i64>().prop_map(RequestId::Int),
                ]
                .boxed(),
                _ => (0..=i64::MAX).prop_map(RequestId::Int).boxed(),
            };
            if optional {
                proptest::option::of(id).boxed()
            } else {
                id.prop_map(Some).boxed()
            }
        }
    }
}

/// The frame counter, for profiles that number frames.
fn seqs(wire: &WireProfile) -> BoxedStrategy<Option<i64>> {
    if wire.sequence.is_some() {
        prop_oneof![Just(1_i64), 1..1000_i64, 1..=i64::MAX]
            .prop_map(Some)
            .boxed()
    } else {
        Just(None).boxed()
    }
}

/// The id a request sent with `id` and `seq` is answered with.
fn reply_ids(wire: &WireProfile) -> BoxedStrategy<(Option<RequestId>, Option<i64>)> {
    match wire.request_id {
        // The reply names the request's own seq; the reply has its own.
        RequestIdPlace::Sequence => (1..=i64::MAX, seqs(wire))
            .prop_map(|(request, seq)| (Some(RequestId::Int(request)), seq))
            .boxed(),
        // Only a request sent with an id is answered.
        RequestIdPlace::Key { .. } => (request_ids(wire), seqs(wire))
            .prop_filter_map("unanswered", |(id, seq)| id.map(|id| (Some(id), seq)))
            .boxed(),
        RequestIdPlace::Ordered => (Just(None), seqs(wire)).boxed(),
    }
}

/// Errors as the profile can carry them: text only, or objects with a name and other keys.
fn remote_errors(wire: &WireProfile) -> BoxedStrategy<RemoteError> {
    match wire.reply.error {
        ErrorFraming::InReply {
            shape: ErrorShape::Object,
            ..
        } => (
            text(),
            proptest::option::of(text()),
            vec((text().prop_map(|k| format!("xk_{k}")), any_json()), 0..3),
        )
            .prop_map(|(message, name, extra)| RemoteError {
                message,
                name,
                extra: extra.into_iter().collect(),
            })
            .boxed(),
        ErrorFraming::InReply {
            shape: ErrorShape::Text,
            ..
        }
        | ErrorFraming::Tagged { .. } => text().prop_map(RemoteError::new).boxed(),
        ErrorFraming::None => panic!("the profile cannot carry errors"),
    }
}

// ---------------------------------------------------------------------------------------------
// The round trips
// ---------------------------------------------------------------------------------------------

fn fail(what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(what.to_string())
}

/// Encode, classify, decode through the direction enum `I`: the value comes back.
fn message_roundtrip<M, I>(wrap: fn(M) -> I)
where
    M: Message + JsonSchema + Clone + PartialEq + Debug,
    I: Inbound + PartialEq + Debug,
{
    let wire = <M::Protocol as Protocol>::WIRE;
    let ids = if M::KIND == Kind::Request {
        request_ids(wire)
    } else {
        Just(None).boxed()
    };
    let strategy = (values::<M>(), ids, seqs(wire));
    let result = runner().run(&strategy, |(value, id, seq)| {
        // Requests on numbered profiles are named by their seq.
        let id = match (M::KIND, wire.request_id) {
            (Kind::Request, RequestIdPlace::Sequence) => seq.map(RequestId::Int),
            _ => id,
        };
        let text = encode_message(wire, &value, id.as_ref(), seq);
        let raw = match wire.classify(&text) {
            Ok(RawFrame::Message(raw)) => raw,
            other => return Err(fail(format!("{text} classified as {other:?}"))),
        };
        prop_assert_eq!(
            raw.class,
            expected_class(wire, M::KIND),
            "class of {}",
            text
        );
        prop_assert_eq!(raw.name, tag_ref(M::TAG), "name in {}", text);
        let expected_id = match M::KIND {
            Kind::Request => expected_request_id(wire, id.as_ref(), seq),
            _ => None,
        };
        prop_assert_eq!(&raw.id, &expected_id, "id in {}", text);
        prop_assert_eq!(raw.seq, seq, "seq in {}", text);
        let decoded = I::decode(&raw).map_err(|e| fail(format!("{text} did not decode: {e}")))?;
        // The single-pass decoder reads what we write (envelope first) and agrees exactly.
        let fast = wire
            .decode_fast::<I>(&text)
            .ok_or_else(|| fail(format!("{text} was not decoded in one pass")))?;
        prop_assert_eq!(&fast.message, &decoded, "one pass decoded {}", text);
        prop_assert_eq!(&fast.id, &raw.id, "one-pass id in {}", text);
        prop_assert_eq!(fast.seq, raw.seq, "one-pass seq in {}", text);
        prop_assert_eq!(fast.class, raw.class, "one-pass class in {}", text);
        prop_assert_eq!(decoded, wrap(value), "decoded {}", text);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{} ({}): {e}", M::NAME, std::any::type_name::<I>());
    }
}

/// A reply and a failed reply to `M`: encode, classify, decode.
fn reply_roundtrip<M>()
where
    M: Request,
    M::Reply: JsonSchema + Clone + PartialEq + Debug,
{
    let wire = <M::Protocol as Protocol>::WIRE;
    let result = runner().run(
        &(values::<M::Reply>(), reply_ids(wire)),
        |(reply, (id, seq))| {
            let text = encode_reply(wire, M::TAG, id.as_ref(), seq, Ok(&reply));
            let raw = match wire.classify(&text) {
                Ok(RawFrame::Reply(raw)) => raw,
                other => return Err(fail(format!("{text} classified as {other:?}"))),
            };
            prop_assert_eq!(&raw.id, &id, "id in {}", text);
            prop_assert_eq!(raw.seq, seq, "seq in {}", text);
            prop_assert_eq!(
                raw.name,
                expected_reply_name(wire, M::TAG),
                "name in {}",
                text
            );
            let Ok(payload) = &raw.result else {
                return Err(fail(format!("{text} read as a failure: {:?}", raw.result)));
            };
            let decoded = payload
                .decode::<M::Reply>(M::NAME)
                .map_err(|e| fail(format!("{text} did not decode: {e}")))?;
            // The one-pass reply paths read what we write and agree exactly. Where the id sits
            // inside the payload, the reader cannot peek at it (it decodes the reply by its
            // request's name instead), but the one-pass decoder still reads the whole reply.
            let in_payload = matches!(wire.reply.id, Some(KeyPath::InPayload(_)));
            let peeked = wire.peek_reply(&text);
            if in_payload {
                prop_assert!(peeked.is_none(), "peeked into the payload of {}", text);
            } else {
                prop_assert_eq!(peeked, Some(raw.id.clone()), "peeked {}", text);
            }
            let fast = wire
                .decode_reply_fast::<M::Reply>(&text)
                .ok_or_else(|| fail(format!("{text} not decoded in one pass")))?;
            prop_assert_eq!(&fast.reply, &decoded, "one pass decoded {}", text);
            prop_assert_eq!(&fast.id, &raw.id, "one-pass id in {}", text);
            prop_assert_eq!(fast.seq, raw.seq, "one-pass seq in {}", text);
            prop_assert_eq!(decoded, reply, "decoded {}", text);
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("reply to {}: {e}", M::NAME);
    }

    let tagged = matches!(wire.reply.error, ErrorFraming::Tagged { .. });
    let result = runner().run(
        &(remote_errors(wire), reply_ids(wire)),
        |(error, (id, seq))| {
            let text = encode_reply::<()>(wire, M::TAG, id.as_ref(), seq, Err(&error));
            let raw = match wire.classify(&text) {
                Ok(RawFrame::Reply(raw)) => raw,
                other => return Err(fail(format!("{text} classified as {other:?}"))),
            };
            if tagged {
                // A tagged error frame carries the text only: no id, name or frame number.
                prop_assert_eq!((&raw.id, raw.name), (&None, None), "{}", text);
            } else {
                prop_assert_eq!(&raw.id, &id, "id in {}", text);
                prop_assert_eq!(raw.seq, seq, "seq in {}", text);
                prop_assert_eq!(
                    raw.name,
                    expected_reply_name(wire, M::TAG),
                    "name in {}",
                    text
                );
            }
            prop_assert_eq!(raw.result.err(), Some(error), "error in {}", text);
            // A failure is never taken for a result.
            prop_assert!(
                wire.decode_reply_fast::<M::Reply>(&text).is_none(),
                "one pass read the failure {}",
                text
            );
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("failed reply to {}: {e}", M::NAME);
    }
}

// ---------------------------------------------------------------------------------------------
// Every message of every direction
// ---------------------------------------------------------------------------------------------

type Run = fn();

pub(crate) struct Case {
    pub(crate) protocol: &'static str,
    pub(crate) direction: &'static str,
    message: &'static str,
    kind: Kind,
    run: Run,
    reply: Option<Run>,
    /// The message's tag (replies on named profiles carry it).
    pub(crate) tag: protolink::Tag,
    /// Frames of generated values of the message, as `encode_message` writes them.
    pub(crate) frames: Frames,
    /// Decodes a frame with this direction's enum and validates it.
    pub(crate) accepts: fn(&WireProfile, &str) -> Result<(), String>,
    /// For requests: frames of generated replies and failures, and whether a reply payload
    /// decodes as the reply type and validates.
    pub(crate) replies: Option<(Frames, ReplyAccepts)>,
}

/// Frames of `n` generated values.
pub(crate) type Frames = fn(u32) -> Vec<String>;
/// Whether a reply payload decodes as a request's reply type and validates.
pub(crate) type ReplyAccepts = fn(&protolink::__private::Payload<'_>) -> Result<(), String>;

/// `n` values of `strategy`, drawn by a fresh runner.
fn samples<T: Debug>(strategy: BoxedStrategy<T>, n: u32) -> Vec<T> {
    let mut runner = runner();
    (0..n)
        .filter_map(|_| {
            strategy
                .new_tree(&mut runner)
                .ok()
                .map(|tree| tree.current())
        })
        .collect()
}

/// Frames of generated values of `M`.
fn message_frames<M>(n: u32) -> Vec<String>
where
    M: Message + JsonSchema + Clone + PartialEq + Debug,
{
    let wire = <M::Protocol as Protocol>::WIRE;
    let ids = if M::KIND == Kind::Request {
        request_ids(wire)
    } else {
        Just(None).boxed()
    };
    samples((values::<M>(), ids, seqs(wire)).boxed(), n)
        .into_iter()
        .map(|(value, id, seq)| {
            let id = match (M::KIND, wire.request_id) {
                (Kind::Request, RequestIdPlace::Sequence) => seq.map(RequestId::Int),
                _ => id,
            };
            encode_message(wire, &value, id.as_ref(), seq)
        })
        .collect()
}

/// Frames of generated replies and failures to `M`.
fn reply_frames<M>(n: u32) -> Vec<String>
where
    M: Request,
    M::Reply: JsonSchema + Clone + PartialEq + Debug,
{
    let wire = <M::Protocol as Protocol>::WIRE;
    let mut frames: Vec<String> = samples((values::<M::Reply>(), reply_ids(wire)).boxed(), n)
        .into_iter()
        .map(|(reply, (id, seq))| encode_reply(wire, M::TAG, id.as_ref(), seq, Ok(&reply)))
        .collect();
    frames.extend(
        samples((remote_errors(wire), reply_ids(wire)).boxed(), n / 4 + 1)
            .into_iter()
            .map(|(error, (id, seq))| {
                encode_reply::<()>(wire, M::TAG, id.as_ref(), seq, Err(&error))
            }),
    );
    frames
}

/// Whether the direction enum `I` decodes a message frame and the message validates, and a
/// link would use it: a request framed with an id key that is not `optional` must carry its id.
fn accepts<I: Inbound>(wire: &WireProfile, text: &str) -> Result<(), String> {
    match wire.classify(text) {
        Ok(RawFrame::Message(raw)) => {
            let needs_id = matches!(
                wire.request_id,
                RequestIdPlace::Key {
                    optional: false,
                    ..
                }
            );
            if raw.class == protolink::__private::FrameClass::Request
                && needs_id
                && raw.id.is_none()
            {
                return Err("a request without its id".to_owned());
            }
            let message = I::decode(&raw).map_err(|e| e.to_string())?;
            message.validate().map_err(|e| e.to_string())
        }
        Ok(RawFrame::Reply(_)) => Err("a reply".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether a reply's payload decodes as `M`'s reply type and validates.
fn reply_accepts<M: Request>(payload: &protolink::__private::Payload<'_>) -> Result<(), String> {
    let reply = payload
        .decode::<M::Reply>(M::NAME)
        .map_err(|e| e.to_string())?;
    protolink::Validate::validate(&reply).map_err(|e| e.to_string())
}

/// Lists the messages of one direction enum; `=> reply` marks requests, whose replies are
/// checked too. The generated `match` does not compile unless every variant is listed.
macro_rules! direction {
    ($cases:ident, $proto:ident :: $dir:ident { $($msg:ident $(=> $reply:ident)?),* $(,)? }) => {{
        #[allow(dead_code)]
        fn exhaustive(message: &$proto::$dir) {
            match message {
                $($proto::$dir::$msg(_) => {})*
            }
        }
        $(
            $cases.push(Case {
                protocol: stringify!($proto),
                direction: stringify!($dir),
                message: stringify!($msg),
                kind: <$proto::$msg as Message>::KIND,
                run: || message_roundtrip($proto::$dir::$msg),
                reply: direction!(@reply $proto::$msg $($reply)?),
                tag: <$proto::$msg as Message>::TAG,
                frames: message_frames::<$proto::$msg>,
                accepts: accepts::<$proto::$dir>,
                replies: direction!(@replies $proto::$msg $($reply)?),
            });
        )*
    }};
    (@reply $proto:ident :: $msg:ident reply) => {
        Some(reply_roundtrip::<$proto::$msg>)
    };
    (@reply $proto:ident :: $msg:ident) => {
        None
    };
    (@replies $proto:ident :: $msg:ident reply) => {
        Some((reply_frames::<$proto::$msg>, reply_accepts::<$proto::$msg>))
    };
    (@replies $proto:ident :: $msg:ident) => {
        None
    };
}

/// Every message of every direction enum of every protocol.
pub(crate) fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    direction!(
        cases,
        litecord::ClientToServer {
            HelloAck,
            Heartbeat
        }
    );
    direction!(
        cases,
        litecord::ServerToClient {
            Hello,
            HeartbeatAck
        }
    );
    direction!(cases, litecord_example::ClientToServer {
        HelloAck, Heartbeat, GetGuild => reply, UserPresence,
    });
    direction!(cases, litecord_example::ServerToClient { Hello, HeartbeatAck, TokenValidate => reply });
    direction!(cases, skynet::ClientToServer {
        Open => reply, CloseChannel => reply, Message => reply, Log => reply,
    });
    direction!(cases, skynet::ServerToClient { MessageEvent });
    direction!(cases, socketcluster::ClientToServer {
        Handshake => reply, Subscribe => reply, Unsubscribe => reply, Publish => reply,
        Authenticate => reply, RemoveAuthToken, Disconnect,
    });
    direction!(cases, socketcluster::ServerToClient {
        PublishEvent, KickOut, SetAuthToken => reply, RemoveAuthToken, Disconnect,
    });
    direction!(cases, chat::ClientToServer {
        Handshake => reply, Subscribe => reply, Unsubscribe => reply, Publish => reply,
        Authenticate => reply, RemoveAuthToken, Disconnect, Join => reply,
        SendMessage => reply, Typing, Sum => reply, Fail => reply, Nothing => reply, Shout,
        CallMe => reply, Login => reply, Logout => reply, Kick => reply,
    });
    direction!(cases, chat::ServerToClient {
        PublishEvent, KickOut, SetAuthToken => reply, RemoveAuthToken, Disconnect, Message,
        UserTyping, PingClient => reply, Shouted, AskClient => reply, AskClientResult,
    });
    direction!(cases, clusterio::ControlToMaster {
        RegisterControl, Close, ListSlaves => reply, ListInstances => reply,
        SetInstanceOutputSubscriptions => reply, CreateInstance => reply,
        GetInstanceConfig => reply, SetInstanceConfigField => reply,
        AssignInstanceCommand => reply, StartInstance => reply, CreateSave => reply,
        StopInstance => reply, DeleteInstance => reply, SendRcon => reply,
    });
    direction!(
        cases,
        clusterio::MasterToControl {
            Hello,
            Ready,
            Close,
            InstanceOutput
        }
    );
    direction!(
        cases,
        clusterio::SlaveToMaster {
            RegisterSlave,
            Close,
            UpdateInstances,
            InstanceOutput
        }
    );
    direction!(cases, clusterio::MasterToSlave {
        Hello, Ready, Close, AssignInstance => reply, StartInstance => reply,
        CreateSave => reply, StopInstance => reply, DeleteInstance => reply, SendRcon => reply,
        GetMetrics => reply,
    });
    direction!(cases, clusterio::InstanceToSlave { InstanceOutput });
    direction!(cases, clusterio::SlaveToInstance {
        StartInstance => reply, CreateSave => reply, StopInstance => reply, SendRcon => reply,
        GetMetrics => reply,
    });
    cases
}

fn run_protocol(protocol: &str) {
    let mut ran = 0;
    for case in cases().iter().filter(|c| c.protocol == protocol) {
        (case.run)();
        if let Some(reply) = case.reply {
            reply();
        }
        ran += 1;
    }
    assert!(ran > 0, "no messages listed for {protocol}");
}

#[test]
fn litecord() {
    run_protocol("litecord");
}

#[test]
fn litecord_example() {
    run_protocol("litecord_example");
}

#[test]
fn skynet() {
    run_protocol("skynet");
}

#[test]
fn socketcluster() {
    run_protocol("socketcluster");
}

#[test]
fn chat() {
    run_protocol("chat");
}

#[test]
fn clusterio() {
    run_protocol("clusterio");
}

/// Every request is listed with `=> reply`, and nothing else is.
#[test]
fn requests_have_their_replies_checked() {
    for case in cases() {
        assert_eq!(
            case.reply.is_some(),
            case.kind == Kind::Request,
            "{}::{}::{}: mark requests (and only requests) `=> reply`",
            case.protocol,
            case.direction,
            case.message
        );
    }
}

/// The lists above against the direction enums of the golden copies of the generated code
/// (`codegen/tests/golden/*.rs`, kept equal to the generated code by codegen's snapshot test):
/// a new protocol, direction or message fails here until it is listed.
#[test]
fn covers_every_direction() {
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../codegen/tests/golden");
    let mut declared = BTreeSet::new();
    let entries =
        std::fs::read_dir(&golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("golden file");
        declared.extend(golden_directions(&source));
    }
    assert!(
        !declared.is_empty(),
        "no direction enums found in {}",
        golden.display()
    );
    let listed: BTreeSet<(String, String, String)> = cases()
        .iter()
        .map(|c| {
            (
                c.protocol.to_owned(),
                c.direction.to_owned(),
                c.message.to_owned(),
            )
        })
        .collect();
    let missing: Vec<_> = declared.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&declared).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not exercised: {missing:?}\nnot in the golden files: {extra:?}"
    );
}

/// `(module, direction enum, message type)` for every arm of every `Inbound::decode`.
fn golden_directions(source: &str) -> Vec<(String, String, String)> {
    let Some(module) = source
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(" {").trim().to_owned())
    else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut direction: Option<String> = None;
    // Arms may be split over lines (`frame\n.decode::<T>()\n.map(...)`): scan the text with
    // whitespace removed.
    let compact: String = source.chars().filter(|c| !c.is_whitespace()).collect();
    let mut rest = compact.as_str();
    loop {
        let next_impl = rest.find("impl__p::Inboundfor");
        let next_arm = rest.find("frame.decode::<");
        match (next_impl, next_arm) {
            (Some(i), arm) if arm.is_none_or(|a| i < a) => {
                rest = &rest[i + "impl__p::Inboundfor".len()..];
                let end = rest.find('{').unwrap_or(rest.len());
                direction = Some(rest[..end].to_owned());
            }
            (_, Some(a)) => {
                rest = &rest[a + "frame.decode::<".len()..];
                let end = rest.find('>').unwrap_or(rest.len());
                let ty = rest[..end].to_owned();
                let dir = direction
                    .clone()
                    .unwrap_or_else(|| panic!("decode arm outside an Inbound impl: {ty}"));
                found.push((module.clone(), dir, ty));
            }
            _ => break,
        }
    }
    found
}

/// Every finite `f64` survives encoding and decoding. This needs serde_json's `float_roundtrip`
/// feature (enabled in the workspace): without it, its parser reads some floats one ULP off,
/// such as `-3.896249657483875e-159`, or whole numbers above 2^53 / 10 written with `.0`
/// (`-3726878635836970.0` read back as `-3726878635836969.5`).
#[test]
fn float_precision() {
    let line = |received| clusterio::InstanceOutput {
        instance_id: 1,
        output: clusterio::OutputLine {
            source: "s".into(),
            format: "f".into(),
            r#type: "t".into(),
            message: "m".into(),
            received,
            time: None,
            level: None,
            file: None,
            action: None,
        },
    };
    let check = |received: f64| {
        let wire = clusterio::Clusterio::WIRE;
        let text = encode_message(wire, &line(received), None, Some(1));
        let raw = match wire.classify(&text) {
            Ok(RawFrame::Message(raw)) => raw,
            other => panic!("{text}: {other:?}"),
        };
        let decoded = clusterio::MasterToControl::decode(&raw).expect("decodes");
        assert_eq!(
            decoded,
            clusterio::MasterToControl::InstanceOutput(line(received)),
            "{text}"
        );
    };
    check(-3.896_249_657_483_875e-159);
    check(-3_726_878_635_836_970.0);
    let result = runner().run(&any_finite_f64(), |received| {
        check(received);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
