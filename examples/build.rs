//! Turns `protocols/*.protocol` into Rust in `OUT_DIR`; a mistake in a definition fails the build
//! with a rustc-style diagnostic.

fn main() {
    let result = protolink_codegen::Config::new()
        .cargo_directives(true)
        // Extra derives where the program wants them, as with prost-build.
        .type_attribute("tally.total", "#[derive(Copy, Eq, Hash)]")
        .compile(&["protocols"]);
    if let Err(error) = result {
        eprintln!("{error}");
        std::process::exit(1);
    }
}
