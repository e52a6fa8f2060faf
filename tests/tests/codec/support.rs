//! Helpers shared by the codec tests: encoding a typed value into a frame, classifying a frame
//! that must be a message or a reply, and comparing frames as JSON values.

use std::fmt::Debug;

use protolink::__private::{
    FrameClass, Framing, Kind, RawFrame, RawMessage, RawReply, ReplyMatch, RequestId,
    RequestIdPlace, Tag, TagRef, WireProfile,
};
use protolink::{DecodeError, Message, RemoteError};
use serde::Serialize;
use serde_json::Value;

/// The tag as `classify` reports it.
pub(crate) fn tag_ref(tag: Tag) -> TagRef<'static> {
    match tag {
        Tag::Str(s) => TagRef::Str(s),
        Tag::Int(n) => TagRef::Int(n),
    }
}

/// The tag's text, for the string-tagged messages (carried and suffixed names are strings).
pub(crate) fn tag_str(tag: Tag) -> &'static str {
    match tag {
        Tag::Str(s) => s,
        Tag::Int(n) => panic!("an integer tag ({n}) has no name"),
    }
}

/// Parses a frame as JSON; the frame must be JSON.
pub(crate) fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts that two frames hold the same JSON value (key order and spacing aside).
#[track_caller]
pub(crate) fn assert_same_json(actual: &str, expected: &str) {
    assert_eq!(
        json(actual),
        json(expected),
        "\n  encoded: {actual}\n expected: {expected}"
    );
}

/// Classifies a frame that must be a message, event or request.
#[track_caller]
pub(crate) fn classify_message<'a>(wire: &WireProfile, text: &'a str) -> RawMessage<'a> {
    match wire.classify(text) {
        Ok(RawFrame::Message(message)) => message,
        Ok(RawFrame::Reply(reply)) => panic!("classified as a reply: {reply:?}\n  frame: {text}"),
        Err(e) => panic!("classify failed: {e}\n  frame: {text}"),
    }
}

/// Classifies a frame that must be a reply.
#[track_caller]
pub(crate) fn classify_reply<'a>(wire: &WireProfile, text: &'a str) -> RawReply<'a> {
    match wire.classify(text) {
        Ok(RawFrame::Reply(reply)) => reply,
        Ok(RawFrame::Message(message)) => {
            panic!("classified as a message: {message:?}\n  frame: {text}")
        }
        Err(e) => panic!("classify failed: {e}\n  frame: {text}"),
    }
}

/// The frame class `classify` gives a message of this kind under this profile.
pub(crate) fn expected_class(wire: &WireProfile, kind: Kind) -> FrameClass {
    let framing = match kind {
        Kind::Message => return FrameClass::Plain,
        Kind::Event => wire.event,
        Kind::Request => wire.request,
    };
    match (framing, kind) {
        (Framing::Tagged, _) => FrameClass::Plain,
        (_, Kind::Event) => FrameClass::Event,
        _ => FrameClass::Request,
    }
}

/// The request id `classify` reads from a request sent with `id` and frame number `seq`.
pub(crate) fn expected_request_id(
    wire: &WireProfile,
    id: Option<&RequestId>,
    seq: Option<i64>,
) -> Option<RequestId> {
    match wire.request_id {
        RequestIdPlace::Ordered => None,
        RequestIdPlace::Sequence => seq.map(RequestId::Int),
        RequestIdPlace::Key { .. } => id.cloned(),
    }
}

/// The request name a reply to `tag` carries under this profile, if the profile puts one there.
pub(crate) fn expected_reply_name(wire: &WireProfile, tag: Tag) -> Option<&'static str> {
    match wire.reply.matched {
        ReplyMatch::Suffix(_) | ReplyMatch::Tag { .. } => Some(tag_str(tag)),
        ReplyMatch::Carrier(_) | ReplyMatch::Untagged => None,
    }
}

/// Encodes a typed message the way a link sends it.
#[track_caller]
pub(crate) fn encode_message<M: Message>(
    wire: &WireProfile,
    message: &M,
    id: Option<&RequestId>,
    seq: Option<i64>,
) -> String {
    encode_any(
        wire,
        M::KIND,
        M::TAG,
        M::HAS_PAYLOAD.then_some(message),
        id,
        seq,
    )
}

/// Encodes any payload under a tag (for frames of messages no definition declares).
#[track_caller]
pub(crate) fn encode_any<P: Serialize + ?Sized>(
    wire: &WireProfile,
    kind: Kind,
    tag: Tag,
    payload: Option<&P>,
    id: Option<&RequestId>,
    seq: Option<i64>,
) -> String {
    let mut out = Vec::new();
    wire.encode_message(&mut out, kind, tag, payload, id, seq)
        .unwrap_or_else(|e| panic!("encode_message failed: {e}"));
    String::from_utf8(out).expect("encode_message writes UTF-8")
}

/// Encodes a reply the way a link sends a handler's result (`Outcome::reply`, then
/// `Reply::encode`).
#[track_caller]
pub(crate) fn encode_reply<R: Serialize>(
    wire: &WireProfile,
    tag: Tag,
    id: Option<&RequestId>,
    seq: Option<i64>,
    result: Result<&R, &RemoteError>,
) -> String {
    let mut out = Vec::new();
    wire.encode_reply(&mut out, tag, id, seq, result)
        .unwrap_or_else(|e| panic!("encode_reply failed: {e}"));
    String::from_utf8(out).expect("encode_reply writes UTF-8")
}

/// Decodes a reply's result as `R`, or hands back the error it carries.
#[track_caller]
pub(crate) fn reply_result<'a, R>(
    reply: &RawReply<'a>,
    name: &'static str,
) -> Result<R, RemoteError>
where
    R: serde::Deserialize<'a> + Debug,
{
    match &reply.result {
        Ok(payload) => Ok(payload
            .decode::<R>(name)
            .unwrap_or_else(|e| panic!("reply payload did not decode: {e}"))),
        Err(error) => Err(error.clone()),
    }
}

/// Whether `classify` refused the text as a frame at all (not JSON, or JSON but not an object),
/// before reading any envelope key.
pub(crate) fn not_a_frame(error: &DecodeError) -> bool {
    !matches!(
        error,
        DecodeError::MissingKey(_)
            | DecodeError::WrongKeyType { .. }
            | DecodeError::UnknownMessage { .. }
            | DecodeError::Payload { .. }
            | DecodeError::MalformedError
    )
}

/// A fresh proptest runner of `cases` cases (`PROPTEST_CASES` overrides it), one per property: a
/// `TestRunner` counts its successes across runs.
pub(crate) fn runner(cases: u32) -> proptest::test_runner::TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })
}
