//! protolink-codegen: definition files in, typed Rust bindings out.
#![forbid(unsafe_code)]

pub mod diagnostics;
pub mod syntax;
