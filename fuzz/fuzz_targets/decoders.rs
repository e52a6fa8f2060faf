//! Every generated decoder on any text frame: for each seed protocol, `classify` and then each
//! direction enum (`Inbound::decode`) or reply type, the one-pass read (`read_fast`) and
//! `decode_reply_fast`, and the reply peek. No panic, ever, and where a one-pass path takes a
//! frame the general path takes it too and reads the same value.
//!
//! The harness is the garbage corpus's own (`tests/tests/codec/agreement.rs`, included here),
//! run on every protocol at once.

#![no_main]

#[allow(dead_code)]
#[path = "../../tests/tests/codec/agreement.rs"]
mod agreement;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8 by the time they are decoded; the WebSocket layer refuses the rest.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for target in &agreement::TARGETS {
        let _ = agreement::attempt(target, text);
    }
});
