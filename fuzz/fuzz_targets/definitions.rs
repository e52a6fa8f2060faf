//! The definition tool on any bytes: reading, parsing, checking, rendering diagnostics and, for
//! whatever checks cleanly, emitting Rust must never panic (nor overflow the stack).
//!
//! An input holds one or more definition files separated by NUL bytes, so that a protocol can
//! `extends` a base in another file, as `codegen/tests/diagnostics/*.with-base.protocol` do.

#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use protolink_codegen::{Config, emit};

/// At most this many files per input; the rest stays in the last one.
const MAX_FILES: usize = 4;

fuzz_target!(|data: &[u8]| {
    let sources: Vec<(PathBuf, Vec<u8>)> = data
        .splitn(MAX_FILES, |&b| b == 0)
        .enumerate()
        .map(|(i, bytes)| (PathBuf::from(format!("f{i}.protocol")), bytes.to_vec()))
        .collect();
    let checked = Config::new().check_bytes(&sources);
    let rendered = checked.diagnostics.render(&checked.sources);
    // Diagnostics print control characters escaped, never raw (a terminal would obey them).
    assert!(
        !rendered.chars().any(|c| c.is_control() && c != '\n'),
        "raw control character in diagnostics: {rendered:?}"
    );
    if !checked.diagnostics.has_errors() {
        for protocol in &checked.protocols {
            let code = emit::rust::render(protocol, "fuzz.protocol");
            assert!(!code.is_empty());
        }
    }
});
