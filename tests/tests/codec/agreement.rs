//! Where the one-pass decoders must agree with the general path: every seed protocol's profile,
//! direction enums and reply types, and `attempt`, which decodes a frame every way a protocol
//! can and checks the two paths agree (and that nothing panics). Shared by the garbage corpus
//! (`garbage.rs`) and the `decoders` fuzz target (`fuzz/fuzz_targets/decoders.rs`, which
//! includes this file), so the two cannot drift apart.

use protolink::__private::ScanDecode;
use protolink::__private::{Fast, Payload, RawFrame, RawMessage, WireProfile};
use protolink::{DecodeError, Empty, Inbound, Protocol};
use protolink_protocols::{
    chat, clusterio, litecord, litecord_example as lce, skynet, socketcluster as sc,
};
use serde_json::Value;

/// Decodes a classified message (or, with `None`, a frame that `classify` refused or read as a
/// reply) with one direction
/// enum, checking that the single-pass decoder agrees with the general path.
pub(crate) type DecodeMessage =
    fn(&WireProfile, &str, Option<&RawMessage<'_>>) -> Result<(), DecodeError>;
/// Decodes a reply's classified payload as one reply type, checking that the single-pass decoder
/// of the whole frame agrees.
pub(crate) type DecodeReply = fn(&WireProfile, &str, &Payload<'_>) -> Result<(), DecodeError>;

/// A protocol: its profile, its direction enums and its reply types.
pub(crate) struct Target {
    pub(crate) name: &'static str,
    pub(crate) wire: &'static WireProfile,
    pub(crate) inbound: &'static [DecodeMessage],
    pub(crate) replies: &'static [DecodeReply],
}

fn inbound<I: Inbound + PartialEq + std::fmt::Debug>(
    wire: &WireProfile,
    text: &str,
    raw: Option<&RawMessage<'_>>,
) -> Result<(), DecodeError> {
    // A reply the one-pass read routes by its envelope is a reply to the general path too,
    // with the same id (or a frame the general path refuses past its envelope: the requester
    // it goes to gets that error).
    match wire.read_fast::<I>(text) {
        Some(Fast::Reply(id)) => match wire.classify(text) {
            Ok(RawFrame::Reply(reply)) => assert_eq!(id, reply.id, "one-pass reply id of {text:?}"),
            Err(_) => {}
            Ok(RawFrame::Message(_)) => {
                panic!("one pass routed {text:?} as a reply, which classify reads as a message")
            }
        },
        Some(Fast::ReplyTo(_)) => assert!(
            !matches!(wire.classify(text), Ok(RawFrame::Message(_))),
            "one pass took {text:?} as a reply, which classify reads as a message"
        ),
        _ => {}
    }
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

pub(crate) const LITECORD: Target = Target {
    name: "litecord",
    wire: litecord::Litecord::WIRE,
    inbound: &[
        inbound::<litecord::ClientToServer>,
        inbound::<litecord::ServerToClient>,
    ],
    replies: &[reply::<Value>],
};
pub(crate) const LITECORD_EXAMPLE: Target = Target {
    name: "litecord_example",
    wire: lce::LitecordExample::WIRE,
    inbound: &[
        inbound::<lce::ClientToServer>,
        inbound::<lce::ServerToClient>,
    ],
    replies: &[reply::<lce::Guild>, reply::<lce::TokenValidity>],
};
pub(crate) const SKYNET: Target = Target {
    name: "skynet",
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
};
pub(crate) const SOCKETCLUSTER: Target = Target {
    name: "socketcluster",
    wire: sc::Socketcluster::WIRE,
    inbound: &[inbound::<sc::ClientToServer>, inbound::<sc::ServerToClient>],
    replies: &[
        reply::<sc::HandshakeReply>,
        reply::<sc::AuthenticateReply>,
        reply::<Empty>,
    ],
};
pub(crate) const CHAT: Target = Target {
    name: "chat",
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
};
pub(crate) const CLUSTERIO: Target = Target {
    name: "clusterio",
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
};

pub(crate) const TARGETS: [Target; 6] = [
    LITECORD,
    LITECORD_EXAMPLE,
    SKYNET,
    SOCKETCLUSTER,
    CHAT,
    CLUSTERIO,
];

/// What became of a frame.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// `classify` refused it.
    Refused(DecodeError),
    /// A message: the result of each direction enum.
    Message(Vec<Result<(), DecodeError>>),
    /// A reply: the result of each reply type, or the error it carried.
    Reply(Result<Vec<Result<(), DecodeError>>, protolink::RemoteError>),
}

impl Outcome {
    /// Whether some direction enum or reply type took the frame.
    pub(crate) fn decoded(&self) -> bool {
        match self {
            Outcome::Refused(_) => false,
            Outcome::Message(results) => results.iter().any(Result::is_ok),
            Outcome::Reply(Ok(results)) => results.iter().any(Result::is_ok),
            Outcome::Reply(Err(_)) => true,
        }
    }

    /// Every error seen.
    pub(crate) fn errors(&self) -> Vec<&DecodeError> {
        match self {
            Outcome::Refused(e) => vec![e],
            Outcome::Message(results) | Outcome::Reply(Ok(results)) => {
                results.iter().filter_map(|r| r.as_ref().err()).collect()
            }
            Outcome::Reply(Err(_)) => Vec::new(),
        }
    }
}

/// The one-pass reply paths take only what the general path reads as the same result.
fn one_pass_reply(target: &Target, text: &str) {
    let peeked = target.wire.peek_reply(text);
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
pub(crate) fn attempt(target: &Target, text: &str) -> Outcome {
    one_pass_reply(target, text);
    let outcome = match target.wire.classify(text) {
        Err(e) => {
            for decode in target.inbound {
                let _ = decode(target.wire, text, None);
            }
            Outcome::Refused(e)
        }
        Ok(RawFrame::Message(raw)) => Outcome::Message(
            target
                .inbound
                .iter()
                .map(|decode| decode(target.wire, text, Some(&raw)))
                .collect(),
        ),
        Ok(RawFrame::Reply(raw)) => {
            // A reply to the general path is no message to the one-pass path.
            for decode in target.inbound {
                let _ = decode(target.wire, text, None);
            }
            Outcome::Reply(match &raw.result {
                Ok(payload) => Ok(target
                    .replies
                    .iter()
                    .map(|decode| decode(target.wire, text, payload))
                    .collect()),
                Err(error) => Err(error.clone()),
            })
        }
    };
    for error in outcome.errors() {
        assert!(!error.to_string().is_empty());
    }
    outcome
}
