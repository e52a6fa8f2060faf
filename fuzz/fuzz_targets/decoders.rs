//! Every generated decoder on any text frame: for each seed protocol, `classify` and then each
//! direction enum (`Inbound::decode`) or reply type, the one-pass `decode_fast` and
//! `decode_reply_fast`, and the reply peeks. No panic, ever, and where a one-pass path takes a
//! frame the general path takes it too and reads the same value.
//!
//! This is `attempt` from tests/tests/codec/garbage.rs, the garbage corpus's harness, run on
//! every protocol at once: keep the two in step when a protocol or a decode path is added.

#![no_main]

use libfuzzer_sys::fuzz_target;
use protolink::scan::ScanDecode;
use protolink::wire::{Payload, RawFrame, RawMessage, WireProfile};
use protolink::{DecodeError, Empty, Inbound, Protocol};
use protolink_protocols::{
    chat, clusterio, litecord, litecord_example as lce, skynet, socketcluster as sc,
};
use serde_json::Value;

/// Decodes a classified message (or, with `None`, a frame that `classify` refused or read as a
/// reply) with one direction
/// enum, checking that the one-pass decoder agrees with the general path.
type DecodeMessage = fn(&WireProfile, &str, Option<&RawMessage<'_>>) -> Result<(), DecodeError>;
/// Decodes a reply's classified payload as one reply type, checking that the one-pass decoder
/// of the whole frame agrees.
type DecodeReply = fn(&WireProfile, &str, &Payload<'_>) -> Result<(), DecodeError>;

/// A protocol: its profile, its direction enums and its reply types.
struct Target {
    wire: &'static WireProfile,
    inbound: &'static [DecodeMessage],
    replies: &'static [DecodeReply],
}

fn inbound<I: Inbound + PartialEq + std::fmt::Debug>(
    wire: &WireProfile,
    text: &str,
    raw: Option<&RawMessage<'_>>,
) -> Result<(), DecodeError> {
    let fast = wire.decode_fast::<I>(text);
    let Some(raw) = raw else {
        assert!(
            fast.is_none(),
            "one pass took {text:?} as a message, which classify does not"
        );
        return Ok(());
    };
    let slow = I::decode(raw);
    if let Some(fast) = fast {
        match &slow {
            Ok(message) => assert_eq!(&fast.message, message, "one pass disagrees on {text:?}"),
            Err(e) => panic!("one pass took {text:?}, which the general path refuses: {e}"),
        }
        assert_eq!(fast.id, raw.id, "one-pass id of {text:?}");
        assert_eq!(fast.seq, raw.seq, "one-pass seq of {text:?}");
        assert_eq!(fast.class, raw.class, "one-pass class of {text:?}");
    }
    slow.map(drop)
}

fn reply<R>(wire: &WireProfile, text: &str, payload: &Payload<'_>) -> Result<(), DecodeError>
where
    R: for<'de> ScanDecode<'de> + PartialEq + std::fmt::Debug,
{
    let slow = payload.decode::<R>("reply");
    if let Some(fast) = wire.decode_reply_fast::<R>(text) {
        match &slow {
            Ok(reply) => assert_eq!(&fast.reply, reply, "one pass disagrees on {text:?}"),
            Err(e) => panic!("one pass took {text:?}, which the general path refuses: {e}"),
        }
    }
    slow.map(drop)
}

const TARGETS: [Target; 6] = [
    Target {
        wire: litecord::Litecord::WIRE,
        inbound: &[
            inbound::<litecord::ClientToServer>,
            inbound::<litecord::ServerToClient>,
        ],
        replies: &[reply::<Value>],
    },
    Target {
        wire: lce::LitecordExample::WIRE,
        inbound: &[
            inbound::<lce::ClientToServer>,
            inbound::<lce::ServerToClient>,
        ],
        replies: &[reply::<lce::Guild>, reply::<lce::TokenValidity>],
    },
    Target {
        wire: skynet::Skynet::WIRE,
        inbound: &[
            inbound::<skynet::ClientToServer>,
            inbound::<skynet::ServerToClient>,
        ],
        replies: &[
            reply::<skynet::OpenReply>,
            reply::<skynet::CloseChannelReply>,
            reply::<skynet::SentMessage>,
            reply::<skynet::LogReply>,
        ],
    },
    Target {
        wire: sc::Socketcluster::WIRE,
        inbound: &[inbound::<sc::ClientToServer>, inbound::<sc::ServerToClient>],
        replies: &[
            reply::<sc::HandshakeReply>,
            reply::<sc::AuthenticateReply>,
            reply::<Empty>,
        ],
    },
    Target {
        wire: chat::Chat::WIRE,
        inbound: &[
            inbound::<chat::ClientToServer>,
            inbound::<chat::ServerToClient>,
        ],
        replies: &[
            reply::<chat::HandshakeReply>,
            reply::<chat::JoinReply>,
            reply::<chat::SendMessageReply>,
            reply::<chat::PingClientReply>,
            reply::<Empty>,
        ],
    },
    Target {
        wire: clusterio::Clusterio::WIRE,
        inbound: &[
            inbound::<clusterio::ControlToMaster>,
            inbound::<clusterio::MasterToControl>,
            inbound::<clusterio::SlaveToMaster>,
            inbound::<clusterio::MasterToSlave>,
            inbound::<clusterio::InstanceToSlave>,
            inbound::<clusterio::SlaveToInstance>,
        ],
        replies: &[
            reply::<clusterio::ListSlavesReply>,
            reply::<clusterio::ListInstancesReply>,
            reply::<clusterio::GetInstanceConfigReply>,
            reply::<clusterio::SendRconReply>,
            reply::<Empty>,
        ],
    },
];

/// The one-pass reply paths take only what the general path reads as the same result.
fn one_pass_reply(target: &Target, text: &str) {
    let peeked = target.wire.peek_reply(text);
    let _ = target.wire.peek_reply_name(text);
    let Some(fast) = target.wire.decode_reply_fast::<Value>(text) else {
        return;
    };
    let general = match target.wire.classify(text) {
        Ok(RawFrame::Reply(raw)) => raw,
        other => panic!("one pass took {text:?} as a reply; classify: {other:?}"),
    };
    assert_eq!(fast.id, general.id, "one-pass id of {text:?}");
    assert_eq!(fast.seq, general.seq, "one-pass seq of {text:?}");
    if let Some(id) = peeked {
        assert_eq!(id, general.id, "peeked id of {text:?}");
    }
    match general.result {
        Ok(payload) => {
            let value = payload.decode::<Value>("reply");
            assert_eq!(
                value.ok().as_ref(),
                Some(&fast.reply),
                "one pass on {text:?}"
            );
        }
        Err(e) => panic!("one pass took the failure {text:?} ({e}) as a result"),
    }
}

/// Classifies `text` and decodes it every way the protocol can; errors must render.
fn attempt(target: &Target, text: &str) {
    one_pass_reply(target, text);
    let errors: Vec<DecodeError> = match target.wire.classify(text) {
        Err(e) => {
            for decode in target.inbound {
                let _ = decode(target.wire, text, None);
            }
            vec![e]
        }
        Ok(RawFrame::Message(raw)) => target
            .inbound
            .iter()
            .filter_map(|decode| decode(target.wire, text, Some(&raw)).err())
            .collect(),
        Ok(RawFrame::Reply(raw)) => {
            // A reply to the general path is no message to the one-pass path.
            for decode in target.inbound {
                let _ = decode(target.wire, text, None);
            }
            match &raw.result {
                Ok(payload) => target
                    .replies
                    .iter()
                    .filter_map(|decode| decode(target.wire, text, payload).err())
                    .collect(),
                // The peer's own words, which may be empty: rendered, not judged.
                Err(error) => {
                    let _ = error.to_string();
                    Vec::new()
                }
            }
        }
    };
    for error in errors {
        assert!(!error.to_string().is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8 by the time they are decoded; the WebSocket layer refuses the rest.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for target in &TARGETS {
        attempt(target, text);
    }
});
