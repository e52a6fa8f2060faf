//! Benchmarks of protolink's generated codecs against hand-written serde-tagged enums.
//!
//! Not published. The crate holds what the `codec` benchmark (`benches/codec.rs`) and its tests
//! share:
//!
//! - [`frames`]: the seed frames, copied from WIRE-NOTES;
//! - [`baseline`]: the serde baseline, `#[serde(tag = "...")]` enums over payload structs written
//!   out by hand to match the generated ones;
//! - [`generated`]: the generated path as the runtime drives it per frame
//!   (`WireProfile::classify`, then `Inbound::decode`; `encode_message` / `encode_reply`);
//! - [`cases`]: each seed frame with both codecs, ready to run.
//!
//! Run the benchmark with `cargo bench -p protolink-bench --bench codec`; `BENCHMARKS.md` at the
//! workspace root describes the method and the results.

pub mod baseline;
pub mod cases;
pub mod frames;
pub mod generated;

/// Any failure of a codec under benchmark; the benchmark never expects one.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
