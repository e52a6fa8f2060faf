//! Garbage in: every protocol's profile, and every direction enum (and reply type) of the
//! protocol, must turn malformed frames into a typed `DecodeError`, never a panic (and never a
//! stack overflow, which would abort the whole binary).

use protolink::__private::RawFrame;
use protolink::{DecodeError, Inbound};
use protolink_protocols::{
    clusterio, litecord, litecord_example as lce, skynet, socketcluster as sc,
};
use serde_json::{Value, json};

use crate::agreement::{
    CHAT, CLUSTERIO, LITECORD, LITECORD_EXAMPLE, Outcome, SKYNET, SOCKETCLUSTER, TARGETS, Target,
    attempt,
};
use crate::support::not_a_frame;

/// Real frames of each protocol (from WIRE-NOTES), messages and replies.
pub(crate) fn real_frames(target: &Target) -> Vec<&'static str> {
    match target.name {
        "litecord" => vec![
            r#"{"op": 0, "hb_interval": 500}"#,
            r#"{"op": 1, "password": "123"}"#,
            r#"{"op": 2, "s": 0}"#,
            r#"{"op": 3}"#,
            r#"{"op": 5, "r": [false, "user not found"], "n": "ab12cd34"}"#,
        ],
        "litecord_example" => vec![
            r#"{"op": 0, "hb_interval": 500}"#,
            r#"{"op": 1, "password": "123"}"#,
            r#"{"op": 2, "s": 0}"#,
            r#"{"op": 3}"#,
            r#"{"op": 4, "w": "TOKEN_VALIDATE", "a": ["dXNlcg.x.y"], "n": "ab12cd34"}"#,
            r#"{"op": 5, "r": [false, "user not found"], "n": "ab12cd34"}"#,
            r#"{"op": 5, "e": "no such guild", "n": "ab12cd34"}"#,
            r#"{"op": 6, "w": "USER_PRESENCE", "a": ["1", "idle", null]}"#,
        ],
        "skynet" => vec![
            r#"{"type":"open","channel":42}"#,
            r#"{"channels":[42],"type":"result","for":"open"}"#,
            r#"{"type":"message","channel":42,"message":"hi","extra":{"x":1}}"#,
            r#"{"type":"message","channel":42,"message":"hi","extra":{"x":1},"ID":"cmww578gp0000x37d56ul7vig","time":1795612298138}"#,
            r#"{"type":"log","start":1,"end":2}"#,
            r#"{"type":"error","error":"SyntaxError: Unexpected token 'o', \"not json\" is not valid JSON"}"#,
        ],
        "chat" => {
            let mut frames = real_frames(&SOCKETCLUSTER);
            frames.push(r#"{"event":"sendMessage","data":{"room":"lobby","text":"hi"},"cid":9}"#);
            frames.push(r#"{"rid":9,"data":{"id":1}}"#);
            frames
        }
        "socketcluster" => vec![
            r##"{"event":"#handshake","data":{"authToken":null},"cid":1}"##,
            r#"{"rid":1,"data":{"id":"rHj_P95T00tHsPjuAAAA","pingTimeout":5000,"isAuthenticated":false}}"#,
            r#"{"rid":3,"error":{"message":"nope","name":"MyError","code":42}}"#,
            r#"{"rid":5}"#,
            r##"{"event":"#publish","data":{"channel":"news","data":{"t":"hi"}}}"##,
            r##"{"event":"#unsubscribe","data":"news"}"##,
            r##"{"event":"#removeAuthToken"}"##,
        ],
        "clusterio" => vec![
            r#"{"seq":1,"type":"hello","data":{"version":"2.0.0-alpha"}}"#,
            r#"{"seq":1,"type":"register_control","data":{"token":"<JWT>","agent":"clusterctl","version":"2.0.0-alpha"}}"#,
            r#"{"seq":2,"type":"list_slaves_request","data":{}}"#,
            r#"{"seq":3,"type":"list_slaves_response","data":{"list":[{"agent":"probe","version":"2.0.0-alpha","id":123,"name":"Foo","connected":false}],"seq":2}}"#,
            r#"{"seq":4,"type":"get_instance_config_response","data":{"seq":3,"error":"Instance with ID 999 does not exist"}}"#,
            r#"{"seq":5,"type":"close","data":{"reason":"Invalid message: Validation failed for list_instances_request"}}"#,
        ],
        other => panic!("no frames for {other}"),
    }
}

#[test]
fn real_frames_decode() {
    // The baseline the garbage below is made from.
    for target in &TARGETS {
        for text in real_frames(target) {
            assert!(attempt(target, text).decoded(), "{}: {text}", target.name);
        }
    }
}

/// Payload values of every kind the byte scanner reads itself or must leave to serde_json, at
/// every place it reads them (inline, under a key, nested, positional, in a reply): wherever the
/// one-pass path takes a frame, the general path takes it too and agrees (`attempt` checks).
#[test]
fn payload_values_the_scanner_reads() {
    for (target, text) in scanner_frames() {
        attempt(target, &text);
    }
}

/// The frames of `payload_values_the_scanner_reads`: payload values of every kind in every place,
/// and repeated, missing and unknown keys (the schema agreement check tries them too).
pub(crate) fn scanner_frames() -> Vec<(&'static Target, String)> {
    let mut out = Vec::new();
    let values = [
        "0",
        "-0",
        "-1",
        "7",
        " 7 ",
        "01",
        "1.0",
        "1e2",
        "5x",
        "-",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "true",
        "tru",
        "false",
        "null",
        "nul",
        r#""x""#,
        r#""a\"b""#,
        r#""\u00e9""#,
        "\"\u{1}\"",
        r#""x"#,
        "[]",
        "[1]",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{}",
        r#"{"a":1}"#,
        r#"{"a":1,}"#,
        r#"{"a":1,"a":2}"#,
        r#"{"a\u0062":1}"#,
    ];
    let templates: [(&'static Target, &str); 12] = [
        (&LITECORD, r#"{"op": 0, "hb_interval": $}"#),
        (&LITECORD, r#"{"op": 2, "s": $}"#),
        (&LITECORD, r#"{"op": 2, $: 1}"#),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 4, "w": "TOKEN_VALIDATE", "a": [$], "n": "ab"}"#,
        ),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 4, "w": "TOKEN_VALIDATE", "a": $, "n": "ab"}"#,
        ),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 6, "w": "USER_PRESENCE", "a": ["1", $, null]}"#,
        ),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 5, "r": [$, "user not found"], "n": "ab"}"#,
        ),
        (
            &SKYNET,
            r#"{"type":"message","channel":42,"message":"hi","extra":$}"#,
        ),
        (&SKYNET, r#"{"channels":[$],"type":"result","for":"open"}"#),
        (
            &CHAT,
            r#"{"event":"sendMessage","data":{"room":$,"text":"hi"},"cid":9}"#,
        ),
        (
            &CLUSTERIO,
            r#"{"seq":3,"type":"list_slaves_response","data":{"list":[{"agent":"probe","version":"2.0.0-alpha","id":$,"name":"Foo","connected":false}],"seq":2}}"#,
        ),
        (
            &CLUSTERIO,
            r#"{"seq":3,"type":"list_slaves_response","data":{"list":[{"agent":"probe","version":"2.0.0-alpha","id":1,"name":"Foo","connected":$}],"seq":2}}"#,
        ),
    ];
    for (target, template) in templates {
        for value in values {
            out.push((target, template.replace('$', value)));
        }
    }
    // Repeated, missing and unknown keys in nested objects and beside inline payloads.
    let frames: [(&'static Target, &str); 7] = [
        (
            &SKYNET,
            r#"{"type":"message","channel":42,"channel":43,"message":"hi"}"#,
        ),
        (
            &SKYNET,
            r#"{"type":"message","channel":42,"message":"hi","x":1,"x":2}"#,
        ),
        (&SKYNET, r#"{"type":"open"}"#),
        (
            &CHAT,
            r#"{"event":"sendMessage","data":{"room":"a","room":"b","text":"hi"},"cid":9}"#,
        ),
        (
            &CHAT,
            r#"{"event":"sendMessage","data":{"text":"hi"},"cid":9}"#,
        ),
        (
            &CLUSTERIO,
            r#"{"seq":3,"type":"list_slaves_response","data":{"list":[{"agent":"probe","agent":"x","version":"2.0.0-alpha","id":1,"name":"Foo","connected":false}],"seq":2}}"#,
        ),
        (
            &CLUSTERIO,
            r#"{"seq":3,"type":"list_slaves_response","data":{"list":[{"agent":"probe","version":"2.0.0-alpha","id":1,"name":"Foo","connected":false,"more":1}],"seq":2}}"#,
        ),
    ];
    out.extend(frames.map(|(target, text)| (target, text.to_owned())));
    out
}

/// Every proper prefix of a real frame is refused as JSON.
#[test]
fn truncated_frames() {
    for target in &TARGETS {
        for text in real_frames(target) {
            for end in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
                let prefix = &text[..end];
                match attempt(target, prefix) {
                    Outcome::Refused(e) if not_a_frame(&e) => {}
                    other => panic!("{}: prefix {prefix:?} gave {other:?}", target.name),
                }
            }
        }
    }
}

/// Values of every JSON type, and numbers of every kind.
pub(crate) fn wrong_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(18_446_744_073_709_551_615_u64),
        json!(""),
        json!("x"),
        json!([]),
        json!([1, "a"]),
        json!({}),
        json!({"a": 1}),
    ]
}

/// What a wrong-typed envelope key must give.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// `classify` refuses it: the key must hold another JSON type.
    WrongKeyType(&'static str),
    /// `classify` refuses it as a malformed error.
    MalformedError,
    /// Anything but a panic (a payload of the wrong type is the decoder's to refuse).
    NoPanic,
}

/// Sets `path` (a top-level key, or `outer.inner`) in a frame.
fn with_key(frame: &Value, path: &str, value: Value) -> String {
    let mut frame = frame.clone();
    let slot = match path.split_once('.') {
        Some((outer, inner)) => &mut frame[outer][inner],
        None => &mut frame[path],
    };
    *slot = value;
    frame.to_string()
}

/// Whether `value` is of the JSON type the key takes (so not "wrong").
fn right_type(key: &str, value: &Value) -> bool {
    match key {
        "op" => value.is_i64(),
        "seq" => value.is_i64(),
        // Request ids may be numbers or strings (Litecord nonces); the codec reads both.
        "data.seq" | "cid" | "rid" | "n" => value.is_i64() || value.is_string(),
        "type" | "event" | "w" | "for" => value.is_string(),
        // A `null` error is no error (the PyPI SocketCluster client writes `"error": null`).
        "error" | "e" | "data.error" => value.is_string() || value.is_null(),
        _ => false,
    }
}

/// A frame, and what each of its envelope keys must give when set to a value of a wrong type.
type EnvelopeCase<'a> = (&'a Target, &'a str, &'a [(&'a str, Expect)]);

/// Every envelope key of every profile, set to values of every JSON type.
#[test]
fn wrong_envelope_types() {
    use Expect::*;
    let cases: Vec<EnvelopeCase<'_>> = vec![
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 1, "password": "123"}"#,
            &[("op", WrongKeyType("op"))],
        ),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 4, "w": "TOKEN_VALIDATE", "a": ["t"], "n": "ab12cd34"}"#,
            &[
                ("op", WrongKeyType("op")),
                ("w", WrongKeyType("w")),
                ("a", NoPanic),
                ("n", WrongKeyType("n")),
            ],
        ),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 6, "w": "USER_PRESENCE", "a": ["1", "idle", null]}"#,
            &[("w", WrongKeyType("w")), ("a", NoPanic)],
        ),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 5, "r": [false, "user not found"], "n": "ab12cd34"}"#,
            &[
                ("op", WrongKeyType("op")),
                ("r", NoPanic),
                ("n", WrongKeyType("n")),
            ],
        ),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 5, "e": "no", "n": "ab12cd34"}"#,
            &[("e", MalformedError)],
        ),
        (
            &SKYNET,
            r#"{"type":"open","channel":42}"#,
            &[("type", WrongKeyType("type")), ("channel", NoPanic)],
        ),
        (
            &SKYNET,
            r#"{"channels":[42],"type":"result","for":"open"}"#,
            &[
                ("type", WrongKeyType("type")),
                ("for", WrongKeyType("for")),
                ("channels", NoPanic),
            ],
        ),
        (
            &SKYNET,
            r#"{"type":"error","error":"Error: Channel 99 not open."}"#,
            &[("error", MalformedError)],
        ),
        (
            &SOCKETCLUSTER,
            r##"{"event":"#subscribe","data":{"channel":"news"},"cid":6}"##,
            &[
                ("event", WrongKeyType("event")),
                ("data", NoPanic),
                ("cid", WrongKeyType("cid")),
            ],
        ),
        (
            &SOCKETCLUSTER,
            r#"{"rid":1,"data":{"id":"x","pingTimeout":5000,"isAuthenticated":false}}"#,
            &[("rid", WrongKeyType("rid")), ("data", NoPanic)],
        ),
        // Error objects are kept however a peer shapes them.
        (
            &SOCKETCLUSTER,
            r#"{"rid":3,"error":{"message":"nope","name":"MyError"}}"#,
            &[("error", NoPanic)],
        ),
        (
            &CHAT,
            r#"{"event":"sendMessage","data":{"room":"lobby","text":"hi"},"cid":9}"#,
            &[
                ("event", WrongKeyType("event")),
                ("data", NoPanic),
                ("cid", WrongKeyType("cid")),
            ],
        ),
        (
            &CLUSTERIO,
            r#"{"seq":2,"type":"list_slaves_request","data":{}}"#,
            &[
                ("seq", WrongKeyType("seq")),
                ("type", WrongKeyType("type")),
                ("data", NoPanic),
            ],
        ),
        (
            &CLUSTERIO,
            r#"{"seq":3,"type":"send_rcon_response","data":{"result":"ok","seq":2}}"#,
            &[
                ("seq", WrongKeyType("seq")),
                ("type", WrongKeyType("type")),
                ("data", NoPanic),
                ("data.seq", WrongKeyType("seq")),
            ],
        ),
        (
            &CLUSTERIO,
            r#"{"seq":4,"type":"send_rcon_response","data":{"seq":3,"error":"no"}}"#,
            &[("data.error", MalformedError)],
        ),
    ];
    for (target, base, keys) in cases {
        let base = crate::support::json(base);
        for &(key, expect) in keys {
            for value in wrong_values() {
                let text = with_key(&base, key, value.clone());
                let outcome = attempt(target, &text);
                if right_type(key, &value) {
                    continue;
                }
                let ok = match (expect, &outcome) {
                    (WrongKeyType(k), Outcome::Refused(DecodeError::WrongKeyType { key, .. })) => {
                        *key == k
                    }
                    (MalformedError, Outcome::Refused(DecodeError::MalformedError)) => true,
                    (NoPanic, _) => true,
                    _ => false,
                };
                assert!(
                    ok,
                    "{}: {text}: expected {expect:?}, got {outcome:?}",
                    target.name
                );
            }
        }
    }
    // A payload key of the wrong type is refused by the direction enum, as a payload error.
    let raw = LITECORD_EXAMPLE
        .wire
        .classify(r#"{"op": 4, "w": "TOKEN_VALIDATE", "a": {"token": 5}, "n": "x"}"#);
    let Ok(RawFrame::Message(raw)) = raw else {
        panic!("{raw:?}")
    };
    assert!(matches!(
        lce::ServerToClient::decode(&raw),
        Err(DecodeError::Payload { .. })
    ));
    // Missing envelope keys.
    for (target, text, key) in [
        (&LITECORD, r#"{"hb_interval": 500}"#, "op"),
        (&LITECORD_EXAMPLE, r#"{"op": 4, "a": [], "n": "x"}"#, "w"),
        (&SKYNET, r#"{"channel": 42}"#, "type"),
        (&SOCKETCLUSTER, r#"{"data": {}}"#, "event"),
        (
            &CLUSTERIO,
            r#"{"type":"hello","data":{"version":"x"}}"#,
            "seq",
        ),
        (&CLUSTERIO, r#"{"seq":1,"data":{"version":"x"}}"#, "type"),
        (
            &CLUSTERIO,
            r#"{"seq":3,"type":"send_rcon_response"}"#,
            "data",
        ),
        (
            &CLUSTERIO,
            r#"{"seq":3,"type":"send_rcon_response","data":{"result":"ok"}}"#,
            "seq",
        ),
    ] {
        match attempt(target, text) {
            Outcome::Refused(DecodeError::MissingKey(k)) => assert_eq!(k, key, "{text}"),
            other => panic!(
                "{}: {text}: expected a missing `{key}`, got {other:?}",
                target.name
            ),
        }
    }
}

/// Tags no message has, in any direction.
#[test]
fn unknown_tags() {
    let cases: Vec<(&Target, &[&str])> = vec![
        (
            &LITECORD,
            &[
                r#"{"op": 99}"#,
                r#"{"op": -1}"#,
                r#"{"op": 4, "w": "TOKEN_VALIDATE", "a": [], "n": "x"}"#,
            ],
        ),
        (
            &LITECORD_EXAMPLE,
            &[
                r#"{"op": 7}"#,
                r#"{"op": 9223372036854775807}"#,
                r#"{"op": 4, "w": "NOPE", "a": [], "n": "x"}"#,
                r#"{"op": 6, "w": "NOPE", "a": []}"#,
                r#"{"op": 4, "w": "token_validate", "a": ["t"], "n": "x"}"#,
                // A method sent in the wrong carrier: an event as a request, a request as an event.
                r#"{"op": 4, "w": "USER_PRESENCE", "a": ["1", "idle", null], "n": "x"}"#,
                r#"{"op": 6, "w": "TOKEN_VALIDATE", "a": ["t"]}"#,
            ],
        ),
        (
            &SKYNET,
            &[
                r#"{"type":"nope"}"#,
                r#"{"type":""}"#,
                r#"{"type":"MESSAGE","channel":1,"message":1}"#,
            ],
        ),
        (
            &SOCKETCLUSTER,
            &[
                r#"{"event":"nope","data":{}}"#,
                r#"{"event":""}"#,
                r##"{"event":"#nope","cid":1}"##,
            ],
        ),
        (
            &CHAT,
            &[
                r#"{"event":"nope","data":{}}"#,
                r#"{"event":"Join","data":{"room":"a"},"cid":1}"#,
            ],
        ),
        (
            &CLUSTERIO,
            &[
                r#"{"seq":1,"type":"nope","data":{}}"#,
                r#"{"seq":1,"type":"nope_request","data":{}}"#,
                r#"{"seq":1,"type":"nope_event","data":{}}"#,
                r#"{"seq":1,"type":"_request","data":{}}"#,
                r#"{"seq":1,"type":"","data":{}}"#,
                // Suffixes on messages that take none, and the wrong suffix.
                r#"{"seq":1,"type":"hello_request","data":{"version":"x"}}"#,
                r#"{"seq":1,"type":"list_slaves","data":{}}"#,
                r#"{"seq":1,"type":"list_slaves_event","data":{}}"#,
                r#"{"seq":1,"type":"instance_output_request","data":{}}"#,
            ],
        ),
    ];
    for (target, frames) in cases {
        for text in frames {
            match attempt(target, text) {
                Outcome::Message(results) => {
                    for result in results {
                        assert!(
                            matches!(result, Err(DecodeError::UnknownMessage { .. })),
                            "{}: {text}: {result:?}",
                            target.name
                        );
                    }
                }
                other => panic!("{}: {text}: {other:?}", target.name),
            }
        }
    }
}

/// Numbers outside a field's type: refused as payload errors, or as envelope key errors.
#[test]
fn out_of_range_numbers() {
    let big = [
        "1e30",
        "-1",
        "18446744073709551616",
        "4294967296",
        "1.5",
        "1e400",
        "-0.5",
    ];
    for n in big {
        // `hb_interval` is a u32.
        let text = format!(r#"{{"op": 0, "hb_interval": {n}}}"#);
        for target in [&LITECORD, &LITECORD_EXAMPLE] {
            let outcome = attempt(target, &text);
            assert!(!outcome.decoded(), "{text}: {outcome:?}");
        }
        // `code` is a u16; `id` a u64; `instance_id` an i64; `time` an i64.
        for (target, text) in [
            (
                &SOCKETCLUSTER,
                format!(r##"{{"event":"#disconnect","data":{{"code":{n}}}}}"##),
            ),
            (
                &CHAT,
                format!(
                    r#"{{"event":"message","data":{{"id":{n},"room":"r","author":"a","text":"t","sentAt":1}}}}"#
                ),
            ),
            (
                &CLUSTERIO,
                format!(
                    r#"{{"seq":1,"type":"start_instance_request","data":{{"instance_id":{n}}}}}"#
                ),
            ),
            (
                &SKYNET,
                format!(
                    r#"{{"type":"result","for":"message","channel":1,"message":1,"ID":"x","time":{n}}}"#
                ),
            ),
        ] {
            let outcome = attempt(target, &text);
            let fits = match target.name {
                "chat" => n == "4294967296",
                "clusterio" | "skynet" => n == "-1" || n == "4294967296",
                _ => false,
            };
            assert_eq!(
                outcome.decoded(),
                fits,
                "{}: {text}: {outcome:?}",
                target.name
            );
        }
    }
    // Envelope integers beyond i64.
    for (target, text, key) in [
        (&LITECORD, r#"{"op": 18446744073709551616}"#, "op"),
        (&LITECORD, r#"{"op": 1e0}"#, "op"),
        (
            &CLUSTERIO,
            r#"{"seq":18446744073709551616,"type":"ready","data":{}}"#,
            "seq",
        ),
        (&CLUSTERIO, r#"{"seq":1e3,"type":"ready","data":{}}"#, "seq"),
        (
            &CLUSTERIO,
            r#"{"seq":3,"type":"send_rcon_response","data":{"result":"ok","seq":18446744073709551616}}"#,
            "seq",
        ),
        (
            &SOCKETCLUSTER,
            r##"{"event":"#handshake","data":{},"cid":18446744073709551616}"##,
            "cid",
        ),
        (&SOCKETCLUSTER, r#"{"rid":1e30}"#, "rid"),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 5, "r": [true], "n": -1e400}"#,
            "n",
        ),
    ] {
        match attempt(target, text) {
            Outcome::Refused(DecodeError::WrongKeyType { key: k, .. }) => {
                assert_eq!(k, key, "{text}")
            }
            // serde_json refuses some numbers (1e400) while reading the frame.
            Outcome::Refused(e) if not_a_frame(&e) => {}
            other => panic!("{}: {text}: {other:?}", target.name),
        }
    }
}

const DEPTH: usize = 10_000;

fn deep_array() -> String {
    format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH))
}

fn deep_object() -> String {
    format!("{}1{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH))
}

/// 10,000 levels of nesting, as the frame and inside payloads: refused (serde_json's recursion
/// limit), not a stack overflow.
#[test]
fn deep_nesting() {
    for deep in [deep_array(), deep_object()] {
        for target in &TARGETS {
            let outcome = attempt(target, &deep);
            assert!(
                !outcome.decoded(),
                "{}: the deep frame decoded",
                target.name
            );
        }
        let frames = [
            (&LITECORD, format!(r#"{{"op": 1, "password": {deep}}}"#)),
            (
                &LITECORD_EXAMPLE,
                format!(r#"{{"op": 4, "w": "TOKEN_VALIDATE", "a": {deep}, "n": "x"}}"#),
            ),
            (
                &LITECORD_EXAMPLE,
                format!(r#"{{"op": 5, "r": {deep}, "n": "x"}}"#),
            ),
            (
                &LITECORD_EXAMPLE,
                format!(r#"{{"op": 5, "e": {deep}, "n": "x"}}"#),
            ),
            (
                &LITECORD_EXAMPLE,
                format!(r#"{{"op": 4, "w": "TOKEN_VALIDATE", "a": ["t"], "n": {deep}}}"#),
            ),
            (
                &SKYNET,
                format!(r#"{{"type":"message","channel":1,"message":{deep}}}"#),
            ),
            (
                &SKYNET,
                format!(r#"{{"type":"message","channel":1,"message":1,"x":{deep}}}"#),
            ),
            (
                &SKYNET,
                format!(r#"{{"type":"result","for":"log","log":{deep}}}"#),
            ),
            (&SKYNET, format!(r#"{{"type":{deep}}}"#)),
            (
                &SOCKETCLUSTER,
                format!(r##"{{"event":"#publish","data":{{"channel":"c","data":{deep}}}}}"##),
            ),
            (&SOCKETCLUSTER, format!(r#"{{"rid":1,"data":{deep}}}"#)),
            (&SOCKETCLUSTER, format!(r#"{{"rid":1,"error":{deep}}}"#)),
            (&SOCKETCLUSTER, format!(r#"{{"rid":{deep}}}"#)),
            (
                &CHAT,
                format!(r#"{{"event":"join","data":{deep},"cid":1}}"#),
            ),
            (
                &CLUSTERIO,
                format!(
                    r#"{{"seq":1,"type":"create_instance_request","data":{{"serialized_config":{{"a":{deep}}}}}}}"#
                ),
            ),
            (
                &CLUSTERIO,
                format!(r#"{{"seq":1,"type":"create_instance_response","data":{deep}}}"#),
            ),
            (
                &CLUSTERIO,
                format!(r#"{{"seq":1,"type":"hello","data":{deep}}}"#),
            ),
        ];
        for (target, text) in &frames {
            let outcome = attempt(target, text);
            assert!(
                !outcome.decoded(),
                "{}: a deep payload decoded: {outcome:?}",
                target.name
            );
        }
    }
    // Nesting that serde_json accepts (100 levels) is kept whole.
    let nested = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let text = format!(r##"{{"event":"#publish","data":{{"channel":"c","data":{nested}}}}}"##);
    assert!(attempt(&SOCKETCLUSTER, &text).decoded());
}

/// A 16 MiB string in a payload decodes like a small one, in each protocol (through the one
/// direction enum that takes it: a debug build reads 16 MiB in about half a second). Smaller
/// (1 MiB) strings go everywhere else: with escapes, in error texts, keys and tags.
#[test]
fn huge_string_payloads() {
    let huge = "x".repeat(16 << 20);
    let text = format!(r#"{{"op": 1, "password": "{huge}"}}"#);
    let raw = crate::support::classify_message(LITECORD.wire, &text);
    let decoded = litecord::ClientToServer::decode(&raw).expect("a 16 MiB password");
    assert!(
        matches!(decoded, litecord::ClientToServer::HelloAck(m) if m.password.len() == huge.len())
    );

    let text = format!(r#"{{"type":"message","channel":1,"message":"{huge}"}}"#);
    let raw = crate::support::classify_message(SKYNET.wire, &text);
    let decoded = skynet::ClientToServer::decode(&raw).expect("a 16 MiB message");
    assert!(
        matches!(decoded, skynet::ClientToServer::Message(m) if m.message.as_str() == Some(huge.as_str()))
    );

    let text = format!(r##"{{"event":"#unsubscribe","data":"{huge}"}}"##);
    let raw = crate::support::classify_message(SOCKETCLUSTER.wire, &text);
    let decoded = sc::ClientToServer::decode(&raw).expect("a 16 MiB channel name");
    assert!(matches!(decoded, sc::ClientToServer::Unsubscribe(m) if m.0.len() == huge.len()));

    let text = format!(r#"{{"seq":1,"type":"close","data":{{"reason":"{huge}"}}}}"#);
    let raw = crate::support::classify_message(CLUSTERIO.wire, &text);
    let decoded = clusterio::MasterToControl::decode(&raw).expect("a 16 MiB reason");
    assert!(
        matches!(decoded, clusterio::MasterToControl::Close(m) if m.reason.len() == huge.len())
    );
    drop(huge);

    const LEN: usize = 1 << 20;
    let plain = "x".repeat(LEN);
    // Escapes force an owned copy.
    let escaped = "\\n\\\"".repeat(LEN / 4);
    for big in [&plain, &escaped] {
        let frames = [
            (&LITECORD, format!(r#"{{"op": 1, "password": "{big}"}}"#)),
            (
                &SKYNET,
                format!(r#"{{"type":"message","channel":"{big}","message":"{big}"}}"#),
            ),
            (&SKYNET, format!(r#"{{"type":"error","error":"{big}"}}"#)),
            (
                &SOCKETCLUSTER,
                format!(r##"{{"event":"#unsubscribe","data":"{big}"}}"##),
            ),
            (
                &SOCKETCLUSTER,
                format!(r#"{{"rid":1,"error":{{"message":"{big}"}}}}"#),
            ),
            (
                &CLUSTERIO,
                format!(r#"{{"seq":1,"type":"close","data":{{"reason":"{big}"}}}}"#),
            ),
            (
                &CLUSTERIO,
                format!(
                    r#"{{"seq":2,"type":"send_rcon_response","data":{{"seq":1,"error":"{big}"}}}}"#
                ),
            ),
            (
                &LITECORD_EXAMPLE,
                format!(r#"{{"op": 5, "r": [false, "{big}"], "n": "x"}}"#),
            ),
            (
                &LITECORD_EXAMPLE,
                format!(r#"{{"op": 5, "e": "{big}", "n": "{big}"}}"#),
            ),
        ];
        for (target, text) in &frames {
            let outcome = attempt(target, text);
            assert!(
                outcome.decoded(),
                "{}: a 1 MiB string was refused: {:?}",
                target.name,
                outcome.errors()
            );
        }
        // As an unknown key (ignored), and as a tag (unknown).
        let text = format!(r#"{{"op": 1, "password": "p", "{big}": 1}}"#);
        assert!(attempt(&LITECORD, &text).decoded());
        let text = format!(r#"{{"seq":1,"type":"{big}","data":{{}}}}"#);
        let outcome = attempt(&CLUSTERIO, &text);
        assert!(!outcome.decoded(), "{outcome:?}");
    }
}

/// Duplicate keys: a typed result either way, never a panic. Duplicates inside a payload object
/// are refused by serde; in the envelope, the codec reads the first (note: JavaScript's and
/// Python's JSON parsers keep the last).
#[test]
fn duplicate_keys() {
    for (target, text) in [
        (&LITECORD, r#"{"op": 1, "op": 2, "password": "x"}"#),
        (&LITECORD, r#"{"op": 1, "password": "a", "password": "b"}"#),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 5, "r": [true], "n": "a", "n": "b"}"#,
        ),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 5, "r": [true], "r": [false], "n": "a"}"#,
        ),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 4, "w": "TOKEN_VALIDATE", "w": "GET_GUILD", "a": ["1"], "n": "a"}"#,
        ),
        (&SKYNET, r#"{"type":"open","type":"close","channel":1}"#),
        (
            &SKYNET,
            r#"{"type":"message","channel":1,"channel":2,"message":1}"#,
        ),
        (
            &SKYNET,
            r#"{"type":"message","channel":1,"message":1,"x":1,"x":2}"#,
        ),
        (
            &SOCKETCLUSTER,
            r##"{"event":"#subscribe","data":{"channel":"a"},"data":{"channel":"b"},"cid":1,"cid":2}"##,
        ),
        (
            &SOCKETCLUSTER,
            r##"{"event":"#subscribe","data":{"channel":"a","channel":"b"},"cid":1}"##,
        ),
        (&SOCKETCLUSTER, r#"{"rid":1,"rid":2}"#),
        (
            &CLUSTERIO,
            r#"{"seq":1,"seq":2,"type":"hello","data":{"version":"a"}}"#,
        ),
        (
            &CLUSTERIO,
            r#"{"seq":1,"type":"hello","data":{"version":"a","version":"b"}}"#,
        ),
        (
            &CLUSTERIO,
            r#"{"seq":3,"type":"send_rcon_response","data":{"result":"ok","seq":2,"seq":5}}"#,
        ),
    ] {
        let _ = attempt(target, text);
    }
    // Duplicated payload fields are refused.
    for (target, text) in [
        (&LITECORD, r#"{"op": 1, "password": "a", "password": "b"}"#),
        (
            &SKYNET,
            r#"{"type":"message","channel":1,"channel":2,"message":1}"#,
        ),
        (
            &SOCKETCLUSTER,
            r##"{"event":"#subscribe","data":{"channel":"a","channel":"b"},"cid":1}"##,
        ),
        (
            &CLUSTERIO,
            r#"{"seq":1,"type":"hello","data":{"version":"a","version":"b"}}"#,
        ),
    ] {
        let outcome = attempt(target, text);
        assert!(!outcome.decoded(), "{}: {text}: {outcome:?}", target.name);
    }
}

/// Frames that are not JSON objects: `null`, arrays (SocketCluster batches), scalars, text
/// around an object.
#[test]
fn frames_that_are_not_objects() {
    let frames = [
        "null",
        "[]",
        "[null]",
        r#"[{"op": 3}]"#,
        r#"[{"event":"fire","data":{"x":1}},{"event":"add","data":{"a":2,"b":3},"cid":2}]"#,
        "0",
        "-1",
        "true",
        r#""x""#,
        "",
        "   ",
        "nul",
        "{",
        "}",
        "\u{feff}{\"op\": 3}",
        r#"{"op": 3} x"#,
        r#"{"op": 3}{"op": 3}"#,
        r#"{"op": 3},"#,
        r#"{'op': 3}"#,
        r#"{op: 3}"#,
        "{\"op\": 3, }",
        "{\"op\": NaN}",
    ];
    for target in &TARGETS {
        for text in frames {
            match attempt(target, text) {
                Outcome::Refused(e) if not_a_frame(&e) => {}
                other => panic!("{}: {text:?}: {other:?}", target.name),
            }
        }
        // An empty object is JSON, but names no message.
        assert!(matches!(
            attempt(target, "{}"),
            Outcome::Refused(DecodeError::MissingKey(_))
        ));
        // Whitespace around an object is fine.
        let spaced = format!(" \n{}\t\r\n", real_frames(target)[0]);
        assert!(
            attempt(target, &spaced).decoded(),
            "{}: {spaced:?}",
            target.name
        );
    }
}

/// Escapes in envelope keys are read like the plain key; escapes in a string tag or method name
/// are refused (`classify` borrows names from the frame, "a string without escapes"): no peer
/// escapes the ASCII names these protocols use, so this costs nothing but is asserted here.
#[test]
fn escaped_keys_and_tags() {
    let text = r#"{"\u006fp": 0, "hb_interval": 500}"#;
    let raw = crate::support::classify_message(LITECORD.wire, text);
    assert_eq!(
        litecord::ServerToClient::decode(&raw).expect("decodes"),
        litecord::ServerToClient::Hello(litecord::Hello { hb_interval: 500 })
    );
    let text = r#"{"seq":1,"type":"hello","d\u0061ta":{"version":"x"}}"#;
    let raw = crate::support::classify_message(CLUSTERIO.wire, text);
    assert!(clusterio::MasterToControl::decode(&raw).is_ok());
    for (target, text) in [
        (&SKYNET, r#"{"type":"\u006fpen","channel":1}"#),
        (
            &CLUSTERIO,
            r#"{"seq":1,"type":"hell\u006f","data":{"version":"x"}}"#,
        ),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 4, "w": "TOKEN\u005fVALIDATE", "a": ["t"], "n": "x"}"#,
        ),
    ] {
        let outcome = attempt(target, text);
        assert!(
            matches!(outcome, Outcome::Refused(DecodeError::WrongKeyType { .. })),
            "{}: {text}: {outcome:?}",
            target.name
        );
    }
}

/// A struct that keeps every other key (`..rest`) has a generated deserialiser; it refuses what
/// serde's derive refuses, in the same words (and an array, which the derive would read by
/// position), and keeps escaped keys unescaped.
#[test]
fn rest_structs_refuse_what_the_derive_refuses() {
    let decode = |text: &str| serde_json::from_str::<skynet::Message>(text);
    let kept =
        decode(r#"{"channel": 1, "message": "hi", "x": [1], "\u0079": 2}"#).expect("decodes");
    assert_eq!(
        kept.extra,
        serde_json::from_str(r#"{"x": [1], "y": 2}"#).expect("a map")
    );
    let error = |text: &str| decode(text).expect_err(text).to_string();
    assert!(error(r#"{"message": "hi"}"#).starts_with("missing field `channel`"));
    assert!(
        error(r#"{"channel": 1, "channel": 2, "message": 0}"#)
            .starts_with("duplicate field `channel`")
    );
    assert!(error(r#"[1, "hi"]"#).starts_with("invalid type: sequence, expected struct Message"));
    let wrong = error(r#"{"channel": true, "message": 0}"#);
    assert!(wrong.contains("expected"), "{wrong}");
}

/// A payload in the other shape: an array where the definition declares an object, or an
/// object where it declares a positional struct. serde's derive would read either by position or
/// by name; the generated `Deserialize` refuses it as a payload error on the general path (the
/// one-pass path declines it), at the top of the payload and nested inside it.
#[test]
fn payloads_in_the_wrong_shape() {
    let cases: [(&Target, &str, &str); 6] = [
        (
            &CHAT,
            r#"{"event":"sendMessage","data":["lobby","hi"],"cid":9}"#,
            r#"{"event":"sendMessage","data":{"room":"lobby","text":"hi"},"cid":9}"#,
        ),
        (
            &SOCKETCLUSTER,
            r##"{"event":"#handshake","data":[null],"cid":1}"##,
            r##"{"event":"#handshake","data":{"authToken":null},"cid":1}"##,
        ),
        (
            &SOCKETCLUSTER,
            r#"{"rid":1,"data":["rHj_P95T00tHsPjuAAAA",5000,false]}"#,
            r#"{"rid":1,"data":{"id":"rHj_P95T00tHsPjuAAAA","pingTimeout":5000,"isAuthenticated":false}}"#,
        ),
        (
            &CLUSTERIO,
            r#"{"seq":1,"type":"register_control","data":["<JWT>","clusterctl","2.0.0-alpha"]}"#,
            r#"{"seq":1,"type":"register_control","data":{"token":"<JWT>","agent":"clusterctl","version":"2.0.0-alpha"}}"#,
        ),
        (
            &CLUSTERIO,
            r#"{"seq":3,"type":"list_slaves_response","data":{"list":[["probe","2.0.0-alpha",123,"Foo",false]],"seq":2}}"#,
            r#"{"seq":3,"type":"list_slaves_response","data":{"list":[{"agent":"probe","version":"2.0.0-alpha","id":123,"name":"Foo","connected":false}],"seq":2}}"#,
        ),
        (
            &LITECORD_EXAMPLE,
            r#"{"op": 6, "w": "USER_PRESENCE", "a": {"user_id": "1", "status": "idle", "activity": null}}"#,
            r#"{"op": 6, "w": "USER_PRESENCE", "a": ["1", "idle", null]}"#,
        ),
    ];
    for (target, wrong, right) in cases {
        assert!(attempt(target, right).decoded(), "{}: {right}", target.name);
        let outcome = attempt(target, wrong);
        assert!(
            !outcome.decoded(),
            "{}: took {wrong}: {outcome:?}",
            target.name
        );
        let errors = outcome.errors();
        assert!(
            !errors.is_empty()
                && errors.iter().all(|e| matches!(
                    e,
                    DecodeError::Payload { .. } | DecodeError::UnknownMessage { .. }
                )),
            "{}: {wrong}: {errors:?}",
            target.name
        );
        let said = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        assert!(
            said.contains("invalid type"),
            "{}: {wrong}: {said}",
            target.name
        );
    }
}

/// Frames the fuzzer (`scripts/fuzz.sh`, target `decoders`) found a decode path mishandling,
/// each kept here once fixed; RELIABILITY.md lists them. Every protocol decodes each one every
/// way it can, and the one-pass paths must agree with the general path.
#[test]
fn fuzz_findings() {
    let frames = [
        // A Skynet result with no field of its own: the one-pass reply path read it as an absent
        // result (`null`), the general path as an empty one (`{}`).
        r#"{"type":"result"}"#,
        r#"{"type":"result","for":"open"}"#,
        // The tag repeated after an inline payload's fields: the one-pass path kept the copy in
        // the message's `..rest` keys, the general path leaves every copy out.
        r#"{"type":"message","channel":7,"message":"dup","type":"message","for":"log"}"#,
        r#"{"type":"message","channel":7,"type":"open","message":"dup"}"#,
        r#"{"type":"open","channel":7,"type":"close"}"#,
        // A Clusterio reply without the frame's own `seq`: the one-pass reply path took it, the
        // general path refuses it (every Clusterio frame is numbered).
        r#"{"type":"send_rcon_response","data":{"result":"ok","seq":2}}"#,
        r#"{"type":"send_rcon_response","data":{"resulq":"ok","x":1,"seq":2}}"#,
        r#"{"type":"list_slaves_response","data":{"list":[],"seq":2}}"#,
        // A SocketCluster event beside a reply's `rid`: the general path reads a reply (and
        // refuses an id out of range), the one-pass path read the event.
        r##"{"event":"#handshake","data":{},"rid":18446744073709551616}"##,
        r##"{"event":"#publish","data":{"channel":"x","data":1},"rid":3}"##,
        r#"{"rid":3,"event":"sendMessage","data":{"room":"a","text":"hi"},"cid":9}"#,
        // A Litecord heartbeat with a request's nonce: the one-pass path gave it the nonce as
        // its id, the general path gives a plain message none.
        r#"{"op": 3, "w" :"TKEATE", "a": ["t"], "n": "a34"}"#,
        r#"{"op": 3, "n": "ab12cd34"}"#,
    ];
    for text in frames {
        for target in &TARGETS {
            attempt(target, text);
        }
    }
    // The frames the fixes are about still decode, to what the general path reads.
    let Ok(RawFrame::Message(raw)) = SKYNET.wire.classify(frames[2]) else {
        panic!("a message: {}", frames[2]);
    };
    let message = skynet::ClientToServer::decode(&raw).expect("decodes");
    let fast = SKYNET
        .wire
        .decode_fast::<skynet::ClientToServer>(frames[2])
        .map(|f| f.message);
    assert!(
        fast.is_none() || fast.as_ref() == Some(&message),
        "{fast:?}"
    );
    let Ok(RawFrame::Reply(reply)) = SKYNET.wire.classify(frames[0]) else {
        panic!("a reply: {}", frames[0]);
    };
    let general = reply.result.expect("a result").decode::<Value>("reply");
    assert_eq!(general.ok(), Some(json!({})));
}
