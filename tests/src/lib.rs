//! Tests only: see `tests/codec.rs` (codec tests) and `ui/` (compile-fail cases run by trybuild).
