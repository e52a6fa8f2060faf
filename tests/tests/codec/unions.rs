//! Unions matched by JSON type decode by the type of the value, in one pass: each JSON type
//! goes to the member that takes it (members that both take it are tried in order), and a value
//! of no member's type is refused with what the union accepts. Definitions: `defs/unions.protocol`.

use protolink::__private::RawFrame;
use protolink::Protocol;
use serde::de::DeserializeOwned;
use serde_json::json;

/// The bindings, as a user's crate would include them (here only part of them is used).
#[allow(dead_code, unreachable_pub)]
mod generated {
    protolink::include_protocol!("unions");
}

use generated::unions::{
    self, Anything, ClientToServer, Colour, Key, Nested, Point, RoomEvent, Sample, Shade,
};

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Decodes, then checks the value encodes back to the same JSON.
#[track_caller]
fn round_trip<T: DeserializeOwned + serde::Serialize + std::fmt::Debug>(text: &str) -> T {
    let value: T = decode(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let back = serde_json::to_value(&value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
    assert_eq!(back, super::support::json(text), "{value:?}");
    value
}

#[test]
fn each_json_type_goes_to_its_member() {
    assert_eq!(
        round_trip::<Anything>(r#""x""#),
        Anything::String("x".into())
    );
    assert_eq!(round_trip::<Anything>("7"), Anything::Int(7));
    assert_eq!(round_trip::<Anything>("1.5"), Anything::Float(1.5));
    assert_eq!(round_trip::<Anything>("true"), Anything::Bool(true));
    assert_eq!(round_trip::<Anything>("[1,2]"), Anything::List(vec![1, 2]));
    assert_eq!(
        round_trip::<Anything>(r#"{"x":1,"y":-2}"#),
        Anything::Point(Point { x: 1, y: -2 })
    );
}

#[test]
fn an_integer_the_integer_member_refuses_goes_to_the_number_member() {
    // `u8 | f64`: as `#[serde(untagged)]` would, try `u8`, then `f64`.
    assert_eq!(decode::<Anything>("300"), Ok(Anything::Float(300.0)));
    assert_eq!(decode::<Anything>("-1"), Ok(Anything::Float(-1.0)));
    assert_eq!(
        decode::<Anything>("18446744073709551615"),
        Ok(Anything::Float(18_446_744_073_709_551_615.0))
    );
}

#[test]
fn members_that_take_the_same_type_are_tried_in_order() {
    assert_eq!(round_trip::<Shade>(r#""red""#), Shade::Colour(Colour::Red));
    assert_eq!(
        round_trip::<Shade>(r#""blue""#),
        Shade::String("blue".into())
    );
}

#[test]
fn a_union_inside_a_union_takes_its_members_types() {
    assert_eq!(
        round_trip::<Nested>(r#""k""#),
        Nested::Key(Key::String("k".into()))
    );
    assert_eq!(round_trip::<Nested>("5"), Nested::Key(Key::Int(5)));
    assert_eq!(round_trip::<Nested>("false"), Nested::Bool(false));
}

#[test]
fn other_types_are_refused_with_what_the_union_takes() {
    let error = decode::<Anything>("null").expect_err("null is no member");
    assert!(
        error.contains(
            "invalid type: null, expected a string, a number, a boolean, an array or an object"
        ),
        "{error}"
    );
    let error = decode::<Nested>("1.5").expect_err("no member takes a float");
    assert!(
        error.contains(
            "invalid type: floating point `1.5`, expected a string, an integer or a boolean"
        ),
        "{error}"
    );
    // Inside the member, the member's own error.
    let error = decode::<Anything>(r#"{"x":1}"#).expect_err("y is missing");
    assert!(error.contains("missing field `y`"), "{error}");
}

#[test]
fn a_frame_with_unions_decodes_on_both_paths() {
    let text = r#"{"type":"sample","anything":[3],"nested":true,"shade":"green"}"#;
    let expected = Sample {
        anything: Anything::List(vec![3]),
        nested: Some(Nested::Bool(true)),
        shade: Some(Shade::Colour(Colour::Green)),
        room_event: None,
    };
    let wire = &unions::Unions::WIRE;
    let fast = wire.decode_fast::<ClientToServer>(text).map(|f| f.message);
    assert_eq!(fast, Some(ClientToServer::Sample(expected.clone())));
    let Ok(RawFrame::Message(raw)) = wire.classify(text) else {
        panic!("not a message: {text}");
    };
    let slow = <ClientToServer as protolink::Inbound>::decode(&raw).map_err(|e| e.to_string());
    assert_eq!(slow, Ok(ClientToServer::Sample(expected)));
    assert_eq!(
        serde_json::to_value(Sample {
            anything: Anything::Float(0.5),
            nested: None,
            shade: None,
            room_event: None,
        })
        .ok(),
        Some(json!({"anything": 0.5}))
    );
}

/// A tagged union: the tag names the variant, wherever it sits in the object; the variant's
/// fields are read as a struct's (renamed variants by their wire name, optional keys left out).
#[test]
fn a_tagged_union_reads_its_variant_by_the_tag() {
    assert_eq!(
        round_trip::<RoomEvent>(r#"{"kind":"joined","user":"ann"}"#),
        RoomEvent::Joined { user: "ann".into() }
    );
    assert_eq!(
        round_trip::<RoomEvent>(r#"{"user":"bob","kind":"parted"}"#),
        RoomEvent::Left {
            user: "bob".into(),
            reason: None
        }
    );
    assert_eq!(
        round_trip::<RoomEvent>(r#"{"kind":"moved","user":"cy","to":{"x":1,"y":2}}"#),
        RoomEvent::Moved {
            user: "cy".into(),
            to: Point { x: 1, y: 2 }
        }
    );
    assert_eq!(
        round_trip::<RoomEvent>(r#"{"kind":"cleared"}"#),
        RoomEvent::Cleared {}
    );
    let error = decode::<RoomEvent>(r#"{"kind":"left","user":"x"}"#).expect_err("wire name");
    assert!(error.contains("unknown variant `left`"), "{error}");
    let error = decode::<RoomEvent>(r#"{"kind":"joined"}"#).expect_err("user is missing");
    assert!(error.contains("missing field `user`"), "{error}");
}

/// A tagged union is an object: serde's tagged enums would also read an array whose first
/// element is the tag, and a struct from an array by position; neither is the union's shape.
#[test]
fn a_tagged_union_is_an_object_all_the_way_down() {
    let error = decode::<RoomEvent>(r#"["joined","ann"]"#).expect_err("an array");
    assert!(error.contains("expected an object"), "{error}");
    let error = decode::<RoomEvent>(r#"{"kind":"moved","user":"cy","to":[1,2]}"#)
        .expect_err("a nested array");
    assert!(error.contains("expected struct Point"), "{error}");
    let error = decode::<RoomEvent>(r#"{"kind":"joined","user":"a","user":"b"}"#)
        .expect_err("a repeated key");
    assert!(error.contains("duplicate field `user`"), "{error}");
}

/// Structs are read from their own shape only: an object from an object, on both paths.
#[test]
fn a_struct_is_not_read_from_an_array() {
    let error = decode::<Point>("[1, 2]").expect_err("an array");
    assert!(error.contains("expected struct Point"), "{error}");
    let text =
        r#"{"type":"sample","anything":[3],"room_event":{"kind":"moved","user":"a","to":[1,2]}}"#;
    let wire = &unions::Unions::WIRE;
    assert!(wire.decode_fast::<ClientToServer>(text).is_none());
    let Ok(RawFrame::Message(raw)) = wire.classify(text) else {
        panic!("not a message: {text}");
    };
    let slow = <ClientToServer as protolink::Inbound>::decode(&raw).map_err(|e| e.to_string());
    let error = slow.expect_err("the nested array is refused");
    assert!(error.contains("expected struct Point"), "{error}");
}
