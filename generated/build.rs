//! Compiles every definition in `protocol-defs/` into `OUT_DIR`; a broken definition fails the
//! build with rustc-style diagnostics.

use std::path::Path;

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(manifest);
    let defs = workspace.join("protocol-defs");
    let result = protolink_codegen::Config::new()
        .display_base(workspace)
        .cargo_directives(true)
        .compile(&[defs]);
    let generated = match result {
        Ok(generated) => generated,
        Err(error) => {
            // Cargo shows a build script's stderr when it fails.
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    // One index, so a new definition file needs no edit here or in lib.rs.
    let index: String = generated
        .iter()
        .map(|g| format!("::protolink::include_protocol!({:?});\n", g.protocol))
        .collect();
    let out = std::env::var_os("OUT_DIR").map(std::path::PathBuf::from);
    let Some(out) = out else {
        eprintln!("OUT_DIR is not set: run this through cargo");
        std::process::exit(1);
    };
    let path = out.join("protocols.rs");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(index.as_str()) {
        if let Err(error) = std::fs::write(&path, index) {
            eprintln!("{}: {error}", path.display());
            std::process::exit(1);
        }
    }
}
