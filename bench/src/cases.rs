//! Every seed frame with its two codecs, the generated one and the serde baseline.
//!
//! Each codec decodes the frame text into its own types, and encodes a value it decoded once from
//! the same frame when the case was built, so both sides write the same frame from their own
//! representation of it.

use std::fmt;
use std::hint::black_box;

use protolink_protocols::{chat, clusterio, litecord_example as litecord, skynet};

use crate::BenchError;
use crate::baseline;
use crate::frames::*;
use crate::generated::{
    Decoded, decode_inbound, decode_message, decode_reply, encode_message, encode_reply,
};

/// The protocols the benchmark covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Litecord (`litecord_example`).
    Litecord,
    /// Skynet.
    Skynet,
    /// SocketCluster (`chat`).
    SocketCluster,
    /// Clusterio.
    Clusterio,
}

impl Protocol {
    /// Every protocol, in report order.
    pub const ALL: [Protocol; 4] = [
        Protocol::Litecord,
        Protocol::Skynet,
        Protocol::SocketCluster,
        Protocol::Clusterio,
    ];

    /// The protocol's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Litecord => "litecord",
            Protocol::Skynet => "skynet",
            Protocol::SocketCluster => "socketcluster",
            Protocol::Clusterio => "clusterio",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

type DecodeFn = Box<dyn Fn(&str) -> Result<(), BenchError> + Send + Sync>;
type EncodeFn = Box<dyn Fn(&mut Vec<u8>) -> Result<(), BenchError> + Send + Sync>;

/// One side's codec for one frame.
pub struct Codec {
    decode: DecodeFn,
    encode: EncodeFn,
}

impl Codec {
    /// Builds a codec from a decoder and an encoder of the same type; the value to encode is
    /// decoded from `frame` now.
    fn new<T: Send + Sync + 'static>(
        frame: &str,
        decode: fn(&str) -> Result<T, BenchError>,
        encode: fn(&mut Vec<u8>, &T) -> Result<(), BenchError>,
    ) -> Result<Self, BenchError> {
        let value = decode(frame)?;
        Ok(Codec {
            decode: Box::new(move |text| {
                // Kept alive until here so that decoding cannot be optimised away; dropping it is
                // part of the per-frame cost on both sides.
                black_box(decode(text)?);
                Ok(())
            }),
            encode: Box::new(move |out| encode(out, &value)),
        })
    }

    /// Like [`Codec::new`], with a separate function producing the value to encode (the
    /// generated path decodes into the direction's enum but encodes the message struct).
    fn split<T: Send + Sync + 'static, E: Send + Sync + 'static>(
        frame: &str,
        decode: fn(&str) -> Result<T, BenchError>,
        to_encode: fn(&str) -> Result<E, BenchError>,
        encode: fn(&mut Vec<u8>, &E) -> Result<(), BenchError>,
    ) -> Result<Self, BenchError> {
        decode(frame)?;
        let value = to_encode(frame)?;
        Ok(Codec {
            decode: Box::new(move |text| {
                black_box(decode(text)?);
                Ok(())
            }),
            encode: Box::new(move |out| encode(out, &value)),
        })
    }

    /// Decodes `text`, dropping the result.
    pub fn decode(&self, text: &str) -> Result<(), BenchError> {
        (self.decode)(text)
    }

    /// Appends the case's frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), BenchError> {
        (self.encode)(out)
    }
}

/// A seed frame and both codecs for it.
pub struct Case {
    /// The protocol.
    pub protocol: Protocol,
    /// A short name, such as `heartbeat`.
    pub name: &'static str,
    /// The frame as seen on the wire.
    pub frame: &'static str,
    /// protolink's generated code driven by the runtime.
    pub generated: Codec,
    /// The serde-tagged baseline.
    pub serde: Codec,
    /// For Litecord, the two-pass serde workaround (decode only; it encodes like `serde`).
    pub serde_two_pass: Option<Codec>,
}

impl Case {
    /// `protocol/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.protocol, self.name)
    }
}

type Reply<R> = Decoded<<R as protolink::Request>::Reply>;

/// A generated codec for a frame carrying message `M`, received as `I` on protocol `P`.
fn generated_message<P, I, M>(frame: &str) -> Result<Codec, BenchError>
where
    P: protolink::Protocol,
    I: protolink::Inbound + Sync,
    M: protolink::Message,
{
    Codec::split(
        frame,
        decode_inbound::<P, I>,
        decode_message::<M>,
        |out, (message, id, seq): &Decoded<M>| encode_message(out, message, id.as_ref(), *seq),
    )
}

/// A generated codec for a reply to `R`, received on the side whose messages are `I`.
fn generated_reply<I, R>(frame: &str) -> Result<Codec, BenchError>
where
    I: protolink::Inbound + Sync,
    R: protolink::Request,
{
    Codec::new(
        frame,
        decode_reply::<I, R>,
        |out, (reply, id, seq): &Reply<R>| encode_reply::<R>(out, reply, id.as_ref(), *seq),
    )
}

fn case(
    protocol: Protocol,
    name: &'static str,
    frame: &'static str,
    generated: Result<Codec, BenchError>,
    serde: Result<Codec, BenchError>,
) -> Result<Case, BenchError> {
    let wrap = |side: &str, result: Result<Codec, BenchError>| {
        result.map_err(|e| -> BenchError { format!("{protocol}/{name}, {side}: {e}").into() })
    };
    Ok(Case {
        protocol,
        name,
        frame,
        generated: wrap("generated", generated)?,
        serde: wrap("serde", serde)?,
        serde_two_pass: None,
    })
}

/// Every case, in report order; fails if either codec cannot decode its seed frame.
pub fn all() -> Result<Vec<Case>, BenchError> {
    use Protocol::*;
    use baseline::{clusterio as sc, litecord as sl, skynet as ss, socketcluster as ssc};

    let mut litecord_hello = case(
        Litecord,
        "hello",
        LITECORD_HELLO,
        generated_message::<litecord::LitecordExample, litecord::ServerToClient, litecord::Hello>(
            LITECORD_HELLO,
        ),
        Codec::new(LITECORD_HELLO, sl::decode_server, sl::encode_server),
    )?;
    litecord_hello.serde_two_pass = Some(Codec::new(
        LITECORD_HELLO,
        sl::decode_two_pass_server,
        sl::encode_server,
    )?);
    let mut litecord_heartbeat = case(
        Litecord,
        "heartbeat",
        LITECORD_HEARTBEAT,
        generated_message::<litecord::LitecordExample, litecord::ClientToServer, litecord::Heartbeat>(
            LITECORD_HEARTBEAT,
        ),
        Codec::new(LITECORD_HEARTBEAT, sl::decode_client, sl::encode_client),
    )?;
    litecord_heartbeat.serde_two_pass = Some(Codec::new(
        LITECORD_HEARTBEAT,
        sl::decode_two_pass_client,
        sl::encode_client,
    )?);
    let mut litecord_request = case(
        Litecord,
        "request",
        LITECORD_REQUEST,
        generated_message::<
            litecord::LitecordExample,
            litecord::ServerToClient,
            litecord::TokenValidate,
        >(LITECORD_REQUEST),
        Codec::new(LITECORD_REQUEST, sl::decode_server, sl::encode_server),
    )?;
    litecord_request.serde_two_pass = Some(Codec::new(
        LITECORD_REQUEST,
        sl::decode_two_pass_server,
        sl::encode_server,
    )?);

    Ok(vec![
        litecord_hello,
        litecord_heartbeat,
        litecord_request,
        case(
            Skynet,
            "open",
            SKYNET_OPEN,
            generated_message::<skynet::Skynet, skynet::ClientToServer, skynet::Open>(SKYNET_OPEN),
            Codec::new(SKYNET_OPEN, ss::decode_client, ss::encode_client),
        )?,
        case(
            Skynet,
            "message",
            SKYNET_MESSAGE,
            generated_message::<skynet::Skynet, skynet::ClientToServer, skynet::Message>(
                SKYNET_MESSAGE,
            ),
            Codec::new(SKYNET_MESSAGE, ss::decode_client, ss::encode_client),
        )?,
        case(
            Skynet,
            "result",
            SKYNET_RESULT,
            generated_reply::<skynet::ServerToClient, skynet::Open>(SKYNET_RESULT),
            Codec::new(SKYNET_RESULT, ss::decode_server, ss::encode_server),
        )?,
        case(
            SocketCluster,
            "emit",
            SOCKETCLUSTER_EMIT,
            generated_message::<chat::Chat, chat::ClientToServer, chat::Typing>(SOCKETCLUSTER_EMIT),
            Codec::new(SOCKETCLUSTER_EMIT, ssc::decode_client, ssc::encode_client),
        )?,
        case(
            SocketCluster,
            "invoke",
            SOCKETCLUSTER_INVOKE,
            generated_message::<chat::Chat, chat::ClientToServer, chat::SendMessage>(
                SOCKETCLUSTER_INVOKE,
            ),
            Codec::new(SOCKETCLUSTER_INVOKE, ssc::decode_client, ssc::encode_client),
        )?,
        case(
            SocketCluster,
            "#publish",
            SOCKETCLUSTER_PUBLISH,
            generated_message::<chat::Chat, chat::ClientToServer, chat::Publish>(
                SOCKETCLUSTER_PUBLISH,
            ),
            Codec::new(
                SOCKETCLUSTER_PUBLISH,
                ssc::decode_client,
                ssc::encode_client,
            ),
        )?,
        case(
            Clusterio,
            "list_slaves_request",
            CLUSTERIO_LIST_SLAVES_REQUEST,
            generated_message::<
                clusterio::Clusterio,
                clusterio::ControlToMaster,
                clusterio::ListSlaves,
            >(CLUSTERIO_LIST_SLAVES_REQUEST),
            Codec::new(
                CLUSTERIO_LIST_SLAVES_REQUEST,
                sc::decode_control,
                sc::encode_control,
            ),
        )?,
        case(
            Clusterio,
            "list_slaves_response",
            CLUSTERIO_LIST_SLAVES_RESPONSE,
            generated_reply::<clusterio::MasterToControl, clusterio::ListSlaves>(
                CLUSTERIO_LIST_SLAVES_RESPONSE,
            ),
            Codec::new(
                CLUSTERIO_LIST_SLAVES_RESPONSE,
                sc::decode_master,
                sc::encode_master,
            ),
        )?,
        case(
            Clusterio,
            "instance_output_event",
            CLUSTERIO_INSTANCE_OUTPUT_EVENT,
            generated_message::<
                clusterio::Clusterio,
                clusterio::MasterToControl,
                clusterio::InstanceOutput,
            >(CLUSTERIO_INSTANCE_OUTPUT_EVENT),
            Codec::new(
                CLUSTERIO_INSTANCE_OUTPUT_EVENT,
                sc::decode_master,
                sc::encode_master,
            ),
        )?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::Value;

    /// The frame as JSON, every number as an `f64` (`1.0` and `1` are the same number to a peer).
    fn json(bytes: &[u8]) -> Value {
        fn normalise(value: Value) -> Value {
            match value {
                Value::Number(n) => n.as_f64().map_or(Value::Number(n), Value::from),
                Value::Array(items) => items.into_iter().map(normalise).collect(),
                Value::Object(map) => map.into_iter().map(|(k, v)| (k, normalise(v))).collect(),
                other => other,
            }
        }
        match serde_json::from_slice(bytes) {
            Ok(value) => normalise(value),
            Err(e) => panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)),
        }
    }

    /// Both codecs decode every seed frame and write it back as the same JSON, equal to the seed
    /// frame: the benchmark compares equal work.
    #[test]
    fn both_codecs_round_trip_every_seed_frame() -> Result<(), BenchError> {
        for case in all()? {
            let seed = json(case.frame.as_bytes());
            case.generated.decode(case.frame)?;
            case.serde.decode(case.frame)?;
            if let Some(two_pass) = &case.serde_two_pass {
                two_pass.decode(case.frame)?;
            }
            let mut generated = Vec::new();
            case.generated.encode(&mut generated)?;
            let mut serde = Vec::new();
            case.serde.encode(&mut serde)?;
            assert_eq!(json(&generated), seed, "generated, {}", case.id());
            assert_eq!(json(&serde), seed, "serde, {}", case.id());
        }
        Ok(())
    }

    /// Both codecs reject a frame of another message, so neither is skipping work.
    #[test]
    fn both_codecs_reject_a_wrong_payload() -> Result<(), BenchError> {
        let cases = all()?;
        let find = |id: &str| cases.iter().find(|c| c.id() == id);
        let open = find("skynet/open").ok_or("no skynet/open")?;
        let bad = r#"{"type":"open","channel":[1]}"#;
        assert!(open.generated.decode(bad).is_err());
        assert!(open.serde.decode(bad).is_err());
        let event = find("clusterio/instance_output_event").ok_or("no event")?;
        let bad = r#"{"seq":4,"type":"instance_output_event","data":{"instance_id":7}}"#;
        assert!(event.generated.decode(bad).is_err());
        assert!(event.serde.decode(bad).is_err());
        Ok(())
    }
}
