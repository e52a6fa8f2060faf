//! What must not compile (trybuild, cases in `ui/`): sending a message from the side that may
//! not send it, and answering a request with another type than its reply. `ui/pass_*.rs` shows
//! the same calls from the right side, which compile.
//!
//! Regenerate the `.stderr` snapshots with `TRYBUILD=overwrite`, then read them: each must show
//! the intended error (a missing `SendableBy` impl, a reply type mismatch), nothing else.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/fail_*.rs");
    cases.pass("ui/pass_*.rs");
}
