//! An extension's module re-exports its base's types and messages: `chat::Subscribe` is
//! `socketcluster::Subscribe`, and only the extension's sides are its own.

use protolink::{Message, SendableBy};
use protolink_protocols::chat;
use protolink_protocols::litecord as lc;
use protolink_protocols::litecord_example as lce;
use protolink_protocols::socketcluster as sc;

/// Compiles only when `T` may be sent by side `S`.
fn sendable<S: protolink::Side, T: SendableBy<S>>() {}

#[test]
fn an_extension_uses_its_base_types() {
    // One type, two names: a value of one is a value of the other.
    let subscribe: sc::Subscribe = chat::Subscribe {
        channel: "room".into(),
        wait_for_auth: None,
        data: None,
    };
    let _again: chat::Subscribe = subscribe;
    let _hello: lc::Hello = lce::Hello { hb_interval: 1000 };
    // The base's message keeps its own protocol; both protocols' sides may send it.
    assert_eq!(
        <chat::Subscribe as Message>::NAME,
        <sc::Subscribe as Message>::NAME
    );
    sendable::<sc::Client, sc::Subscribe>();
    sendable::<chat::Client, sc::Subscribe>();
    sendable::<lce::Client, lc::HelloAck>();
    // And the extension's own messages are its own.
    sendable::<chat::Client, chat::SendMessage>();
}
