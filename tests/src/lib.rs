//! Tests only: `tests/codec.rs` (codec tests, with the compile-fail cases of `ui/` run by
//! trybuild) and `tests/e2e.rs` (end-to-end tests over the runtime).
