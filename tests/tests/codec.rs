//! Codec tests for every generated protocol, in one test binary:
//!
//! - `wire_notes`: every frame of `shared/WIRE-NOTES.md` decodes to its typed value and encodes
//!   back to the same JSON;
//! - `roundtrip`: property tests, encode then decode is the identity for every message and reply;
//! - `garbage`: malformed input gives a typed error and never panics;
//! - `scanner`: the one-pass byte scanner reads what serde_json reads, the same way;
//! - `schema`: ajv, with the JSON Schemas `protolink schema` writes, agrees with the decoders
//!   and validators on every frame of a corpus (real, recorded, generated and garbage frames);
//! - `extern_types`: a definition's type mapped to a Rust type of the program's own;
//! - `extensions`: a protocol that `extends` another uses its base's types and messages;
//! - `unions`: unions matched by JSON type (test-only definitions in `defs/`);
//! - `compile_fail`: the type system refuses sending a message from the wrong side and answering
//!   a request with the wrong reply type (trybuild, cases in `ui/`).

#[path = "codec/agreement.rs"]
mod agreement;
#[path = "codec/compile_fail.rs"]
mod compile_fail;
#[path = "codec/extensions.rs"]
mod extensions;
#[path = "codec/extern_types.rs"]
mod extern_types;
#[path = "codec/garbage.rs"]
mod garbage;
#[path = "codec/roundtrip.rs"]
mod roundtrip;
#[path = "codec/scanner.rs"]
mod scanner;
#[path = "codec/schema.rs"]
mod schema;
#[path = "codec/support.rs"]
mod support;
#[path = "codec/unions.rs"]
mod unions;
#[path = "codec/wire_notes.rs"]
mod wire_notes;
