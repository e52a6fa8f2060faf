//! Names a definition may not use because the generated code or its files could not carry them.

use std::path::PathBuf;

use protolink_codegen::Config;
use protolink_codegen::model::MAX_PROTOCOL_NAME;

/// A small protocol called `name`, with `items` after its protocol block.
fn definition(name: &str, items: &str) -> String {
    format!(
        "protocol {name} {{\n    version \"1\"\n    wire {{\n        tag type string\n        payload inline\n    }}\n}}\n{items}"
    )
}

/// The codes of every diagnostic for `text`.
fn codes(text: &str) -> Vec<&'static str> {
    let checked = Config::new().check_sources(&[(PathBuf::from("t.protocol"), text.to_owned())]);
    checked.diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn a_protocol_name_of_the_longest_length_is_written_and_one_byte_more_is_refused() {
    let longest = "p".repeat(MAX_PROTOCOL_NAME);
    let out = std::env::temp_dir().join(format!("protolink-names-{}", std::process::id()));
    let input = out.join("in.protocol");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    std::fs::write(&input, definition(&longest, ""))
        .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let written = Config::new().out_dir(&out).compile(&[&input]);
    let _ = std::fs::remove_dir_all(&out);
    let written =
        written.unwrap_or_else(|e| panic!("a {MAX_PROTOCOL_NAME}-byte name compiles: {e}"));
    assert_eq!(written[0].file_name, format!("{longest}.rs"));

    assert_eq!(codes(&definition(&format!("{longest}q"), "")), ["E0128"]);
    assert_eq!(codes(&definition(&"p".repeat(300), "")), ["E0128"]);
}
