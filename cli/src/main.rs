//! `protolink`: check and generate protocol definitions.
//!
//! ```text
//! protolink check protocol-defs/            # diagnostics on stderr, exit 1 on any error
//! protolink gen protocol-defs/litecord.protocol --out target/review
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use protolink_codegen::Config;

#[derive(Parser)]
#[command(
    name = "protolink",
    version,
    about = "Typed Rust bindings for JSON-over-WebSocket protocols"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks definition files (or folders of them) and reports every error.
    Check {
        /// Files or folders; a folder means every `*.protocol` file in it.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Writes the generated Rust for review, one file per protocol.
    Gen {
        /// The definition files (a protocol's base must be given too).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Where to write the `.rs` files.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { inputs } => check(&inputs),
        Command::Gen { inputs, out } => generate(&inputs, out),
    }
}

fn check(inputs: &[PathBuf]) -> ExitCode {
    let checked = match Config::new().check(inputs) {
        Ok(checked) => checked,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let rendered = checked.diagnostics.render(&checked.sources);
    eprint!("{rendered}");
    if checked.diagnostics.has_errors() {
        return ExitCode::FAILURE;
    }
    let files = checked.sources.files().count();
    let messages: usize = checked.protocols.iter().map(|p| p.messages.len()).sum();
    println!(
        "checked {files} file{}: {} protocol{}, {messages} messages, no errors",
        plural(files),
        checked.protocols.len(),
        plural(checked.protocols.len())
    );
    ExitCode::SUCCESS
}

fn generate(inputs: &[PathBuf], out: PathBuf) -> ExitCode {
    match Config::new().out_dir(&out).compile(inputs) {
        Ok(generated) => {
            for g in &generated {
                println!("{}", out.join(&g.file_name).display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
