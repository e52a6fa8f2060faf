//! The JSON Schemas `protolink schema` writes, checked by a validator no one here wrote: ajv
//! (draft 2020-12, pinned by `interop/package-lock.json`). For every seed protocol and every link
//! direction, each frame of a corpus is judged twice: by the Rust side (the wire profile's
//! classifier, the receiving side's direction enum and `validate()`, or for a reply, its reply
//! type) and by ajv with the direction's schema. The verdicts must agree, except where a rule of
//! JSON itself or of JSON Schema cannot say what the Rust side says: `EXCEPTIONS` lists each,
//! with its reason, and every frame it excuses.
//!
//! The corpus: the real frames of WIRE-NOTES (the garbage corpus's baseline), every frame of the
//! recorded transcripts in `interop/transcripts/`, frames of generated values of every message
//! and reply (the property tests' generators), and the garbage corpus: its frames with payload
//! values of every kind, and its wrong values put in place of each key of each real frame, and
//! each key left out.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use protolink::__private::{RawFrame, WireProfile};
use protolink::Tag;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::agreement::{TARGETS, Target};
use crate::garbage::{real_frames, scanner_frames, wrong_values};
use crate::roundtrip::{Case, cases};

/// Generated frames per message and per reply.
const GENERATED: u32 = 12;

/// Whether an exception applies to a frame.
type Picks = fn(&str) -> bool;

/// What JSON Schema cannot say, or ajv reads differently from serde_json: each reason, and the
/// test that picks out the frames it excuses.
const EXCEPTIONS: &[(&str, Picks)] = &[
    (
        "ajv reads every JSON number as a double: an integer beyond 2^53 is rounded before it \
         is checked, so a bound at the edge of u64 or i64 cannot be told from its neighbours",
        big_integer,
    ),
    (
        "JSON Schema's `integer` is any number with no fraction (`1.0`, `1e2`, `-0`); serde \
         refuses a number written with a fraction, an exponent or a minus zero where an integer \
         belongs",
        integral_float,
    ),
    (
        "a key written twice: JSON.parse keeps the last value, serde refuses the object",
        duplicate_keys,
    ),
    (
        "serde's derive reads a struct from a JSON array of its fields in order as well as from \
         an object; the schemas describe the object, which is what every peer writes",
        payload_is_array,
    ),
    (
        "a `result` without its `for` key: an ordered protocol's reply answers the oldest \
         request pending on the link, which a schema of one frame cannot know; the schema asks \
         for the key every peer writes",
        reply_without_for,
    ),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `interop/`, with ajv installed (`npm ci --prefix interop`; `scripts/test.sh` runs it).
fn interop() -> PathBuf {
    let dir = workspace().join("interop");
    assert!(
        dir.join("node_modules/ajv").is_dir(),
        "ajv is missing: run `npm ci --prefix interop` (scripts/test.sh does)"
    );
    dir
}

/// Writes every protocol's schemas under a fresh folder, once for all the tests here.
fn schemas() -> PathBuf {
    static WRITTEN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    WRITTEN
        .get_or_init(|| {
            let root = workspace();
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("protolink-schemas");
            let _ = fs::remove_dir_all(&dir);
            let files = protolink_codegen::Config::new()
                .generate_schemas(&[root.join("protocol-defs")])
                .unwrap_or_else(|e| panic!("protocol-defs/ must check:\n{e}"));
            protolink_codegen::write_changed(&dir, &files).unwrap_or_else(|e| panic!("{e}"));
            dir
        })
        .clone()
}

/// `ClientToServer` → `client-to-server`.
fn file_name(direction: &str) -> String {
    let mut out = String::new();
    for (i, c) in direction.char_indices() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The transcripts recorded for a protocol: every frame either side sent.
fn transcript_frames(protocol: &str) -> Vec<String> {
    let folder = match protocol {
        "litecord" | "litecord_example" => "litecord",
        "socketcluster" | "chat" => "socketcluster",
        other => other,
    };
    let dir = workspace().join("interop/transcripts").join(folder);
    let mut frames = Vec::new();
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in files {
        let text = fs::read_to_string(&file).unwrap_or_default();
        let transcript: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for step in transcript["steps"].as_array().into_iter().flatten() {
            for key in [
                "send",
                "recv",
                "send_binary",
                "recv_binary",
                "server_send",
                "server_recv",
            ] {
                if let Some(frame) = step[key].as_str() {
                    frames.push(frame.to_owned());
                }
            }
        }
    }
    frames
}

/// Each real frame with each key (at the top and one level down) left out, and set to each of
/// the garbage corpus's wrong values.
fn garbage(frames: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for text in frames {
        let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        let mut variants = |path: &[String]| {
            let mut without = Value::Object(frame.clone());
            if let Some(parent) = pointer_parent(&mut without, path) {
                parent.remove(path.last().map_or("", String::as_str));
            }
            out.push(without.to_string());
            for wrong in wrong_values() {
                let mut with = Value::Object(frame.clone());
                if let Some(parent) = pointer_parent(&mut with, path) {
                    parent.insert(path.last().cloned().unwrap_or_default(), wrong);
                }
                out.push(with.to_string());
            }
        };
        for (key, value) in &frame {
            variants(std::slice::from_ref(key));
            if let Value::Object(inner) = value {
                for inner_key in inner.keys() {
                    variants(&[key.clone(), inner_key.clone()]);
                }
            }
        }
    }
    out
}

/// The object holding the last key of `path`.
fn pointer_parent<'a>(
    value: &'a mut Value,
    path: &[String],
) -> Option<&'a mut serde_json::Map<String, Value>> {
    let (_, parents) = path.split_last()?;
    let mut at = value;
    for key in parents {
        at = at.get_mut(key)?;
    }
    at.as_object_mut()
}

/// The Rust side's verdict on a frame sent in one direction.
fn rust_accepts(
    wire: &WireProfile,
    text: &str,
    direction: &[&Case],
    answered: &[&Case],
) -> Result<(), String> {
    if wire.batch && text.trim_start().starts_with('[') {
        let packets: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        return packets
            .iter()
            .try_for_each(|p| rust_accepts(wire, p.get(), direction, answered));
    }
    match wire.classify(text).map_err(|e| e.to_string())? {
        RawFrame::Message(_) => {
            let accepts = direction.first().ok_or("no messages this way")?.accepts;
            accepts(wire, text)
        }
        RawFrame::Reply(raw) => {
            // The requests it may answer: those coming the other way, the one it names if it
            // names one.
            let candidates: Vec<&&Case> = answered
                .iter()
                .filter(|case| match (raw.name, case.tag) {
                    (None, _) => true,
                    (Some(name), Tag::Str(tag)) => name == tag,
                    (Some(_), Tag::Int(_)) => false,
                })
                .collect();
            let payload = match &raw.result {
                Err(_) if !candidates.is_empty() => return Ok(()),
                Err(e) => return Err(format!("a failure of no request sent this way: {e}")),
                Ok(payload) => payload,
            };
            let mut why = String::from("no request sent this way it answers");
            for case in candidates {
                if let Some((_, reply_accepts)) = case.replies {
                    match reply_accepts(payload) {
                        Ok(()) => return Ok(()),
                        Err(e) => why = e,
                    }
                }
            }
            Err(why)
        }
    }
}

/// ajv's verdicts on `(schema file, frame)` pairs.
fn ajv(cases: &[(String, String)]) -> Vec<Result<(), String>> {
    let dir = interop();
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let input = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("schema-cases-{}-{call}.json", std::process::id()));
    fs::write(
        &input,
        serde_json::to_string(cases).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let output = Command::new("node")
        .arg(dir.join("schema-check.js"))
        .arg(&input)
        .output()
        .unwrap_or_else(|e| panic!("node runs: {e}"));
    assert!(
        output.status.success(),
        "schema-check.js failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("ajv's answer: {e}"));
    assert_eq!(results.len(), cases.len(), "one verdict per frame");
    results
        .into_iter()
        .map(|r| match r["valid"].as_bool() {
            Some(true) => Ok(()),
            _ => Err(r["why"].as_str().unwrap_or_default().to_owned()),
        })
        .collect()
}

#[test]
fn ajv_agrees_with_the_decoders() {
    let dir = schemas();
    let all = cases();
    // (schema file, frame, Rust verdict, protocol and direction)
    let mut judged: Vec<(String, String, Result<(), String>, String)> = Vec::new();
    for target in &TARGETS {
        let own: Vec<&Case> = all.iter().filter(|c| c.protocol == target.name).collect();
        let corpus = corpus(target, &own);
        let mut directions: Vec<&str> = own.iter().map(|c| c.direction).collect();
        directions.dedup();
        for direction in directions {
            let this_way: Vec<&Case> = own
                .iter()
                .copied()
                .filter(|c| c.direction == direction)
                .collect();
            let reverse = reverse(direction);
            let answered: Vec<&Case> = own
                .iter()
                .copied()
                .filter(|c| c.direction == reverse && c.replies.is_some())
                .collect();
            let file = dir
                .join(target.name)
                .join(format!("{}.schema.json", file_name(direction)));
            assert!(file.is_file(), "{} has no schema", file.display());
            for frame in &corpus {
                let verdict = rust_accepts(target.wire, frame, &this_way, &answered);
                judged.push((
                    file.display().to_string(),
                    frame.clone(),
                    verdict,
                    format!("{} {direction}", target.name),
                ));
            }
        }
    }
    let pairs: Vec<(String, String)> = judged
        .iter()
        .map(|(file, frame, _, _)| (file.clone(), frame.clone()))
        .collect();
    let verdicts = ajv(&pairs);
    let mut excused: BTreeMap<&str, usize> = BTreeMap::new();
    let mut disagreements = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for ((_, frame, rust, place), ajv) in judged.iter().zip(&verdicts) {
        match rust {
            Ok(()) => accepted += 1,
            Err(_) => refused += 1,
        }
        if rust.is_ok() == ajv.is_ok() {
            continue;
        }
        if let Some((reason, _)) = EXCEPTIONS.iter().find(|(_, applies)| applies(frame)) {
            *excused.entry(reason).or_default() += 1;
            continue;
        }
        disagreements.push(format!(
            "{place}: {frame}\n    rust: {rust:?}\n    ajv:  {ajv:?}"
        ));
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} verdicts differ:\n{}",
        disagreements.len(),
        judged.len(),
        disagreements.join("\n")
    );
    // The corpus holds both kinds, in numbers.
    assert!(
        accepted > 500 && refused > 500,
        "{accepted} accepted, {refused} refused"
    );
    eprintln!("{accepted} frames accepted, {refused} refused, agreeing; excused: {excused:#?}");
}

/// The frames every direction of a protocol is tried with.
fn corpus(target: &Target, own: &[&Case]) -> Vec<String> {
    let real = real_frames(target);
    let mut corpus: Vec<String> = real.iter().map(|s| (*s).to_owned()).collect();
    corpus.extend(transcript_frames(target.name));
    for case in own {
        corpus.extend((case.frames)(GENERATED));
        if let Some((replies, _)) = case.replies {
            corpus.extend(replies(GENERATED));
        }
    }
    corpus.extend(garbage(&real));
    corpus.extend(
        scanner_frames()
            .into_iter()
            .filter(|(t, _)| t.name == target.name)
            .map(|(_, text)| text),
    );
    corpus.sort();
    corpus.dedup();
    corpus
}

/// `ClientToServer` → `ServerToClient`.
fn reverse(direction: &str) -> String {
    let (from, to) = direction.split_once("To").unwrap_or((direction, ""));
    format!("{to}To{from}")
}

// ---- what the exceptions pick out ------------------------------------------------------------

/// Every number token of a JSON text (outside strings).
fn numbers(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
            {
                i += 1;
            }
            out.push(&text[start..i]);
            continue;
        }
        i += 1;
    }
    out
}

fn big_integer(text: &str) -> bool {
    numbers(text)
        .iter()
        .any(|n| n.trim_start_matches('-').len() >= 16 && !n.contains(['.', 'e', 'E']))
}

fn integral_float(text: &str) -> bool {
    numbers(text).iter().any(|n| {
        (n.contains(['.', 'e', 'E']) || *n == "-0")
            && n.parse::<f64>().is_ok_and(|f| f.fract() == 0.0)
    })
}

fn payload_is_array(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|frame| frame["data"].is_array())
}

fn reply_without_for(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .is_ok_and(|frame| frame["type"] == "result" && frame.get("for").is_none())
}

fn duplicate_keys(text: &str) -> bool {
    serde_json::from_str::<NoDuplicates>(text).is_err()
        && serde_json::from_str::<Value>(text).is_ok()
}

/// A JSON value that refuses an object with a key written twice.
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = std::collections::BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(de::Error::custom("a key written twice"));
            }
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

/// The generated types' own `JsonSchema` carries the definition's constraints, with the same
/// keywords as the schema files.
#[test]
fn derived_schemas_carry_the_constraints() {
    use protolink_protocols::{chat, litecord_example as lce};
    let derived = serde_json::to_value(schemars::schema_for!(chat::Join)).unwrap_or_default();
    let file = schemas().join("chat/messages/join.schema.json");
    let written: Value = serde_json::from_str(&fs::read_to_string(&file).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let room = &derived["properties"]["room"];
    for keyword in ["minLength", "maxLength", "pattern"] {
        assert_eq!(
            room[keyword], written["properties"]["data"]["properties"]["room"][keyword],
            "{keyword} of chat.join's room"
        );
    }
    assert_eq!(room["pattern"], "^[A-Za-z0-9_-]+$");
    // A positional payload: its trailing optional element may be left out; its id a pattern.
    let verdict =
        serde_json::to_value(schemars::schema_for!(lce::TokenVerdict)).unwrap_or_default();
    assert_eq!(verdict["minItems"], 1);
    assert_eq!(verdict["maxItems"], 2);
    let guild = serde_json::to_value(schemars::schema_for!(lce::GetGuild)).unwrap_or_default();
    assert_eq!(guild["prefixItems"][0]["pattern"], "^[0-9]+$");
}

/// Every example frame of the reference `protolink docs` writes is valid under its schema (ajv)
/// and decodes in Rust: a message through a direction enum, with `validate()`; a reply as its
/// request's reply type.
#[test]
fn docs_examples_are_valid_frames() {
    let dir = schemas();
    let checked = protolink_codegen::Config::new()
        .check_clean(&[workspace().join("protocol-defs")])
        .unwrap_or_else(|e| panic!("{e}"));
    let all = cases();
    let mut pairs = Vec::new();
    for p in &checked.protocols {
        let target = TARGETS
            .iter()
            .find(|t| t.name == p.name)
            .unwrap_or_else(|| panic!("no target for {}", p.name));
        let own: Vec<&Case> = all.iter().filter(|c| c.protocol == p.name).collect();
        for example in protolink_codegen::emit::docs::examples(p) {
            let text = example.frame.to_string();
            let m = p
                .messages
                .iter()
                .find(|m| m.name == example.message)
                .unwrap_or_else(|| panic!("no message {}", example.message));
            let same_tag = |tag: Tag| match (tag, &m.tag) {
                (Tag::Str(a), protolink_codegen::model::TagValue::Str(b)) => a == b,
                (Tag::Int(a), protolink_codegen::model::TagValue::Int(b)) => a == *b,
                _ => false,
            };
            let verdict = if example.reply {
                let reply_accepts = own
                    .iter()
                    .find(|c| same_tag(c.tag) && c.replies.is_some())
                    .and_then(|c| c.replies)
                    .map(|(_, accepts)| accepts)
                    .unwrap_or_else(|| panic!("no reply type for {}", m.name));
                match target.wire.classify(&text) {
                    Ok(RawFrame::Reply(raw)) => match &raw.result {
                        Ok(payload) => reply_accepts(payload),
                        Err(e) => Err(format!("a failure: {e}")),
                    },
                    other => Err(format!("not a reply: {other:?}")),
                }
            } else {
                let verdicts: Vec<Result<(), String>> = own
                    .iter()
                    .map(|c| (c.accepts)(target.wire, &text))
                    .collect();
                if verdicts.iter().any(Result::is_ok) {
                    Ok(())
                } else {
                    Err(format!("{verdicts:?}"))
                }
            };
            assert!(
                verdict.is_ok(),
                "{} {}: the example {text} does not decode: {verdict:?}",
                p.name,
                m.name
            );
            let file = dir.join(&p.name).join("messages").join(if example.reply {
                format!("{}.reply.schema.json", m.name)
            } else {
                format!("{}.schema.json", m.name)
            });
            pairs.push((file.display().to_string(), text));
        }
    }
    assert!(pairs.len() > 60, "an example of every message and reply");
    for ((file, text), verdict) in pairs.iter().zip(ajv(&pairs)) {
        assert!(
            verdict.is_ok(),
            "{file}: ajv refuses the example {text}: {verdict:?}"
        );
    }
}
