//! Turns `protocols/*.protocol` into Rust in `OUT_DIR`; a mistake in a definition fails the build
//! with a rustc-style diagnostic.

fn main() {
    if let Err(error) = protolink_codegen::compile(&["protocols"]) {
        eprintln!("{error}");
        std::process::exit(1);
    }
}
