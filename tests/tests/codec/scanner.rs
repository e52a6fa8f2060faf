//! The byte scanner against serde_json on arbitrary, mostly broken JSON: whatever it reads, it
//! reads as serde_json does; what it cannot read, it leaves (`None`), and it never panics.

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use protolink::__private::{Scan, ScanDecode, no_envelope};
use protolink_protocols::{chat, clusterio, skynet};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Cases per property (`PROPTEST_CASES` overrides it).
const CASES: u32 = 512;

fn runner() -> TestRunner {
    crate::support::runner(CASES)
}

/// Keys: the payload fields of the structs below, repeated keys, escaped ones, and the key that
/// makes serde_json read an object as raw JSON.
const KEYS: [&str; 14] = [
    r#""agent""#,
    r#""version""#,
    r#""id""#,
    r#""name""#,
    r#""connected""#,
    r#""channel""#,
    r#""message""#,
    r#""room""#,
    r#""text""#,
    r#""output""#,
    r#""received""#,
    r#""x""#,
    r#""ro\u006fm""#,
    r#""$serde_json::private::RawValue""#,
];

/// Scalars as text, among them every number and literal the scanner must leave to serde_json.
const SCALARS: [&str; 24] = [
    "null",
    "true",
    "false",
    "nul",
    "tru",
    "0",
    "-0",
    "7",
    "-1",
    "01",
    "1.0",
    "1.5e3",
    "1e400",
    "1590000000000",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    r#""lobby""#,
    r#""a\"b\u00e9""#,
    "\"\u{1}\"",
    r#""[1]""#,
];

/// JSON-shaped text, valid or not: objects and arrays of the scalars and keys above, nested.
fn values() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => prop::sample::select(&SCALARS[..]).prop_map(str::to_owned),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => "[a-z]{0,12}".prop_map(|s| format!("\"{s}\"")),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5)
                .prop_map(|items| format!("[{}]", items.join(","))),
            object(inner),
        ]
    })
}

/// An object of `values` under the keys above.
fn object(values: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(&KEYS[..]), values), 0..6).prop_map(|entries| {
        let entries: Vec<String> = entries.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        format!("{{{}}}", entries.join(","))
    })
}

/// Pieces spliced into a text to break its syntax.
const SPLICES: [&str; 10] = ["", ",", ":", "{", "}", "[", "]", "\"", "\\", " "];

/// An object, sometimes with a piece spliced in at a byte position.
fn texts() -> impl Strategy<Value = String> {
    (
        object(values()),
        any::<prop::sample::Index>(),
        0..SPLICES.len(),
    )
        .prop_map(|(text, at, splice)| {
            let mut at = at.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            format!("{}{}{}", &text[..at], SPLICES[splice], &text[at..])
        })
}

/// Reads `text` as an object of type `T` with the scanner; where it does, serde_json must read
/// the same value.
fn agrees<T>(text: &str)
where
    T: for<'de> ScanDecode<'de> + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Some(mut scan) = Scan::object(text) else {
        return;
    };
    let Some(scanned) = T::scan_fields(&mut scan, no_envelope) else {
        return;
    };
    if !scan.at_end() {
        return;
    }
    match serde_json::from_str::<T>(text) {
        Ok(value) => assert_eq!(scanned, value, "{text}"),
        Err(e) => panic!("the scanner read {text:?}, which serde_json refuses: {e}"),
    }
}

#[test]
fn values_are_read_as_serde_json_reads_them() {
    let result = runner().run(&texts(), |text| {
        agrees::<Value>(&text);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Strings, integers, booleans and numbers as a field of that type may hold them.
const STRINGS: &[&str] = &[r#""lobby""#, r#""a\"b\u00e9""#, r#""""#];
const INTS: &[&str] = &["0", "7", "-1", "1590000000000", "9223372036854775807"];
const BOOLS: &[&str] = &["true", "false"];
const NUMBERS: &[&str] = &[
    "1590000000000",
    "0.1",
    "1.5e3",
    "-0",
    "-2",
    "18446744073709551616",
];

/// Objects shaped like a struct with these fields (each with values of its type): most fields
/// present, some with a value of another type, in any order, with an extra key now and then (an
/// unknown one, or a field again).
fn struct_texts(
    fields: &'static [(&'static str, &'static [&'static str])],
) -> impl Strategy<Value = String> {
    let entries: Vec<_> = fields
        .iter()
        .map(|&(key, good)| {
            let value = prop_oneof![
                4 => prop::sample::select(good).prop_map(str::to_owned),
                1 => values(),
            ];
            prop::option::weighted(0.9, value.prop_map(move |v| format!("\"{key}\":{v}")))
        })
        .collect();
    let extra = prop::collection::vec(
        (prop::sample::select(&KEYS[..]), values()).prop_map(|(k, v)| format!("{k}:{v}")),
        0..2,
    );
    (entries, extra)
        .prop_flat_map(|(entries, extra)| {
            let all: Vec<String> = entries.into_iter().flatten().chain(extra).collect();
            Just(all).prop_shuffle()
        })
        .prop_map(|entries| format!("{{{}}}", entries.join(",")))
}

#[test]
fn payload_structs_are_read_as_their_deserialize_reads_them() {
    const SLAVE: &[(&str, &[&str])] = &[
        ("agent", STRINGS),
        ("version", STRINGS),
        ("name", STRINGS),
        ("id", INTS),
        ("connected", BOOLS),
    ];
    const LINE: &[(&str, &[&str])] = &[
        ("source", STRINGS),
        ("format", STRINGS),
        ("type", STRINGS),
        ("message", STRINGS),
        ("received", NUMBERS),
    ];
    const MESSAGE: &[(&str, &[&str])] = &[("channel", INTS), ("message", STRINGS)];
    const SEND: &[(&str, &[&str])] = &[("room", STRINGS), ("text", STRINGS)];
    let run = |fields, check: fn(&str)| {
        let result = runner().run(&struct_texts(fields), |text| {
            check(&text);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    };
    run(SLAVE, agrees::<clusterio::SlaveInfo>);
    run(LINE, agrees::<clusterio::OutputLine>);
    run(MESSAGE, agrees::<skynet::Message>);
    run(SEND, agrees::<chat::SendMessage>);
}
