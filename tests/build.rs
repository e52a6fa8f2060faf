//! Compiles the test-only definitions in `defs/` into `OUT_DIR`.

use std::path::Path;

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let result = protolink_codegen::Config::new()
        .display_base(manifest)
        .cargo_directives(true)
        // `mapped.Reading` is the test program's own type (tests/codec/extern_types.rs).
        .extern_type("mapped.Reading", "crate::extern_types::Reading")
        .compile(&[manifest.join("defs")]);
    if let Err(error) = result {
        eprintln!("{error}");
        std::process::exit(1);
    }
}
