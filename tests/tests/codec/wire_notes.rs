//! Every frame of `shared/WIRE-NOTES.md`, for the four protocols: classified with the protocol's
//! wire profile, decoded into the typed value (messages through the receiving side's direction
//! enum, replies through the reply type or their `RemoteError`), and encoded back to the same
//! JSON. Frames the notes abbreviate (`"..."`, `[ ...newest first... ]`) are filled in with
//! plausible values and say so. Frames no definition declares (SocketCluster's application
//! events `fire`, `add`, `srvRpc`, raw ping / pong text) check what does hold.

use std::fmt::Debug;

use protolink::__private::{ErrorFraming, FrameClass, Kind, RawFrame, RequestId, Tag, TagRef};
use protolink::{DecodeError, Empty, Inbound, Message, Protocol, RemoteError, Request};
use protolink_protocols::{
    chat, clusterio, litecord, litecord_example as lce, skynet, socketcluster as sc,
};
use serde_json::{Value, json};

use crate::support::{
    assert_same_json, classify_message, classify_reply, encode_any, encode_message, encode_reply,
    expected_class, expected_reply_name, not_a_frame, reply_result, tag_ref,
};

/// A message frame: classified, decoded through `wrap`'s direction enum into `expected`, and
/// encoded back to the same JSON.
#[track_caller]
fn message<M, I>(text: &str, wrap: fn(M) -> I, expected: M, id: Option<RequestId>, seq: Option<i64>)
where
    M: Message + Clone + PartialEq + Debug,
    I: Inbound + PartialEq + Debug,
{
    let wire = <M::Protocol as Protocol>::WIRE;
    let raw = classify_message(wire, text);
    assert_eq!(raw.class, expected_class(wire, M::KIND), "class of {text}");
    assert_eq!(raw.name, tag_ref(M::TAG), "name of {text}");
    assert_eq!(raw.id, id, "request id of {text}");
    assert_eq!(raw.seq, seq, "seq of {text}");
    let decoded = I::decode(&raw).unwrap_or_else(|e| panic!("{text} did not decode: {e}"));
    assert_eq!(decoded, wrap(expected.clone()), "decoded {text}");
    assert_eq!(decoded.kind(), M::KIND);
    assert_eq!(decoded.tag(), M::TAG);
    let encoded = encode_message(wire, &expected, id.as_ref(), seq);
    assert_same_json(&encoded, text);
}

/// A reply frame to the request `Q`: classified, its result decoded as `Q::Reply` (or its error
/// read), and encoded back to the same JSON.
#[track_caller]
fn reply<Q>(
    text: &str,
    expected: Result<Q::Reply, RemoteError>,
    id: Option<RequestId>,
    seq: Option<i64>,
) where
    Q: Request,
    Q::Reply: PartialEq + Debug,
{
    let wire = <Q::Protocol as Protocol>::WIRE;
    let raw = classify_reply(wire, text);
    assert_eq!(raw.id, id, "reply id of {text}");
    assert_eq!(raw.seq, seq, "seq of {text}");
    let name = match (&expected, wire.reply.error) {
        // A tagged error frame names no request: it answers the oldest pending one.
        (Err(_), ErrorFraming::Tagged { .. }) => None,
        _ => expected_reply_name(wire, Q::TAG),
    };
    assert_eq!(raw.name, name, "request named by {text}");
    assert_eq!(
        reply_result::<Q::Reply>(&raw, Q::NAME),
        expected,
        "reply {text}"
    );
    let encoded = encode_reply(wire, Q::TAG, id.as_ref(), seq, expected.as_ref());
    assert_same_json(&encoded, text);
}

fn int(n: i64) -> Option<RequestId> {
    Some(RequestId::Int(n))
}

fn config(value: Value) -> std::collections::BTreeMap<String, Value> {
    match value {
        Value::Object(map) => map.into_iter().collect(),
        other => panic!("not an object: {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Clusterio link protocol (seed 000; the 2020-03 wire format)
// ---------------------------------------------------------------------------------------------

#[test]
fn clusterio_handshake_and_replies() {
    use clusterio::*;
    let hello = Hello {
        version: "2.0.0-alpha".into(),
    };
    let text = r##"{"seq":1,"type":"hello","data":{"version":"2.0.0-alpha"}}"##;
    // `hello` goes to controls and to slaves alike.
    message(text, MasterToControl::Hello, hello.clone(), None, Some(1));
    message(text, MasterToSlave::Hello, hello, None, Some(1));

    message(
        r##"{"seq":1,"type":"register_control","data":{"token":"<JWT>","agent":"clusterctl","version":"2.0.0-alpha"}}"##,
        ControlToMaster::RegisterControl,
        RegisterControl {
            token: "<JWT>".into(),
            agent: "clusterctl".into(),
            version: "2.0.0-alpha".into(),
        },
        None,
        Some(1),
    );
    let text = r##"{"seq":2,"type":"ready","data":{}}"##;
    message(text, MasterToControl::Ready, Ready {}, None, Some(2));
    message(text, MasterToSlave::Ready, Ready {}, None, Some(2));

    // A request's envelope `seq` is its id.
    message(
        r##"{"seq":2,"type":"list_slaves_request","data":{}}"##,
        ControlToMaster::ListSlaves,
        ListSlaves {},
        int(2),
        Some(2),
    );
    reply::<ListSlaves>(
        r##"{"seq":3,"type":"list_slaves_response","data":{"list":[{"agent":"probe","version":"2.0.0-alpha","id":123,"name":"Foo","connected":false}],"seq":2}}"##,
        Ok(ListSlavesReply {
            list: vec![SlaveInfo {
                agent: "probe".into(),
                version: "2.0.0-alpha".into(),
                name: "Foo".into(),
                id: 123,
                connected: false,
            }],
        }),
        int(2),
        Some(3),
    );
    reply::<GetInstanceConfig>(
        r##"{"seq":4,"type":"get_instance_config_response","data":{"seq":3,"error":"Instance with ID 999 does not exist"}}"##,
        Err(RemoteError::new("Instance with ID 999 does not exist")),
        int(3),
        Some(4),
    );
}

#[test]
fn clusterio_close_messages() {
    use clusterio::*;
    for (text, seq, reason) in [
        (
            r##"{"seq":5,"type":"close","data":{"reason":"Invalid message: Validation failed for list_instances_request"}}"##,
            5,
            "Invalid message: Validation failed for list_instances_request",
        ),
        (
            r##"{"seq":2,"type":"close","data":{"reason":"Authentication failed"}}"##,
            2,
            "Authentication failed",
        ),
        (
            r##"{"seq":2,"type":"close","data":{"reason":"Invalid handshake"}}"##,
            2,
            "Invalid handshake",
        ),
    ] {
        // Sent by the master, to a control or to a slave.
        let close = Close {
            reason: reason.into(),
        };
        message(text, MasterToControl::Close, close.clone(), None, Some(seq));
        message(text, MasterToSlave::Close, close, None, Some(seq));
    }
    let text = r##"{"seq":3,"type":"close","data":{"reason":"quit"}}"##;
    let quit = Close {
        reason: "quit".into(),
    };
    message(text, ControlToMaster::Close, quit.clone(), None, Some(3));
    message(text, SlaveToMaster::Close, quit, None, Some(3));
}

/// The notes' rules: `register_*` carry `token`, and payload objects reject unknown properties
/// and missing ones.
#[test]
fn clusterio_payloads_are_strict() {
    use clusterio::*;
    for text in [
        // No token (the seed's shape).
        r##"{"seq":1,"type":"register_control","data":{"agent":"clusterctl","version":"2.0.0-alpha"}}"##,
        // An unknown property.
        r##"{"seq":1,"type":"register_control","data":{"token":"t","agent":"a","version":"v","x":1}}"##,
        r##"{"seq":2,"type":"list_slaves_request","data":{"x":1}}"##,
    ] {
        let raw = classify_message(Clusterio::WIRE, text);
        let err = ControlToMaster::decode(&raw).expect_err(text);
        assert!(
            matches!(err, DecodeError::Payload { .. }),
            "{text}: {err:?}"
        );
    }
    // A reply with an unknown property fails to decode as its reply type.
    let text = r##"{"seq":3,"type":"send_rcon_response","data":{"result":"ok","x":1,"seq":2}}"##;
    let raw = classify_reply(Clusterio::WIRE, text);
    let Ok(payload) = &raw.result else {
        panic!("not a success: {text}")
    };
    assert!(payload.decode::<SendRconReply>("send_rcon").is_err());
    // A message valid only in another direction is not accepted: `hello` comes from the master.
    let raw = classify_message(
        Clusterio::WIRE,
        r##"{"seq":1,"type":"hello","data":{"version":"x"}}"##,
    );
    assert!(matches!(
        ControlToMaster::decode(&raw),
        Err(DecodeError::UnknownMessage { .. })
    ));
    assert!(matches!(
        SlaveToMaster::decode(&raw),
        Err(DecodeError::UnknownMessage { .. })
    ));
}

/// One frame for every row of the notes' message catalogue, each on every link direction the
/// row lists, with its reply (success and the forwarding errors the notes name).
#[test]
fn clusterio_catalogue() {
    use clusterio::*;
    let cfg = || {
        config(json!({"instance": {"name": "Alpha", "id": 1}, "factorio": {"game_port": 34197}}))
    };
    message(
        r##"{"seq":1,"type":"register_slave","data":{"token":"<JWT>","agent":"clusterio slave","version":"2.0.0-alpha","name":"Slave 1","id":123}}"##,
        SlaveToMaster::RegisterSlave,
        RegisterSlave {
            token: "<JWT>".into(),
            agent: "clusterio slave".into(),
            version: "2.0.0-alpha".into(),
            name: "Slave 1".into(),
            id: 123,
        },
        None,
        Some(1),
    );

    message(
        r##"{"seq":3,"type":"list_instances_request","data":{}}"##,
        ControlToMaster::ListInstances,
        ListInstances {},
        int(3),
        Some(3),
    );
    reply::<ListInstances>(
        r##"{"seq":4,"type":"list_instances_response","data":{"list":[{"name":"Alpha","id":1,"assigned_slave":123},{"name":"Beta","id":2,"assigned_slave":null}],"seq":3}}"##,
        Ok(ListInstancesReply {
            list: vec![
                InstanceInfo {
                    name: "Alpha".into(),
                    id: 1,
                    assigned_slave: Some(123),
                },
                InstanceInfo {
                    name: "Beta".into(),
                    id: 2,
                    assigned_slave: None,
                },
            ],
        }),
        int(3),
        Some(4),
    );

    message(
        r##"{"seq":4,"type":"set_instance_output_subscriptions_request","data":{"instance_ids":[1,2]}}"##,
        ControlToMaster::SetInstanceOutputSubscriptions,
        SetInstanceOutputSubscriptions {
            instance_ids: vec![1, 2],
        },
        int(4),
        Some(4),
    );
    // A request without response data is answered with `data: {seq}` alone.
    reply::<SetInstanceOutputSubscriptions>(
        r##"{"seq":5,"type":"set_instance_output_subscriptions_response","data":{"seq":4}}"##,
        Ok(Empty),
        int(4),
        Some(5),
    );

    message(
        r##"{"seq":5,"type":"create_instance_request","data":{"serialized_config":{"instance":{"name":"Alpha","id":1},"factorio":{"game_port":34197}}}}"##,
        ControlToMaster::CreateInstance,
        CreateInstance {
            serialized_config: cfg(),
        },
        int(5),
        Some(5),
    );
    reply::<CreateInstance>(
        r##"{"seq":6,"type":"create_instance_response","data":{"seq":5}}"##,
        Ok(Empty),
        int(5),
        Some(6),
    );

    message(
        r##"{"seq":6,"type":"get_instance_config_request","data":{"instance_id":1}}"##,
        ControlToMaster::GetInstanceConfig,
        GetInstanceConfig { instance_id: 1 },
        int(6),
        Some(6),
    );
    reply::<GetInstanceConfig>(
        r##"{"seq":7,"type":"get_instance_config_response","data":{"serialized_config":{"instance":{"name":"Alpha","id":1},"factorio":{"game_port":34197}},"seq":6}}"##,
        Ok(GetInstanceConfigReply {
            serialized_config: cfg(),
        }),
        int(6),
        Some(7),
    );

    message(
        r##"{"seq":7,"type":"set_instance_config_field_request","data":{"instance_id":1,"field":"factorio.game_port","value":"34198"}}"##,
        ControlToMaster::SetInstanceConfigField,
        SetInstanceConfigField {
            instance_id: 1,
            field: "factorio.game_port".into(),
            value: "34198".into(),
        },
        int(7),
        Some(7),
    );
    reply::<SetInstanceConfigField>(
        r##"{"seq":8,"type":"set_instance_config_field_response","data":{"seq":7}}"##,
        Ok(Empty),
        int(7),
        Some(8),
    );

    message(
        r##"{"seq":8,"type":"assign_instance_command_request","data":{"instance_id":1,"slave_id":123}}"##,
        ControlToMaster::AssignInstanceCommand,
        AssignInstanceCommand {
            instance_id: 1,
            slave_id: 123,
        },
        int(8),
        Some(8),
    );
    reply::<AssignInstanceCommand>(
        r##"{"seq":9,"type":"assign_instance_command_response","data":{"seq":8,"error":"Instance with ID 1 does not exist"}}"##,
        Err(RemoteError::new("Instance with ID 1 does not exist")),
        int(8),
        Some(9),
    );

    message(
        r##"{"seq":4,"type":"assign_instance_request","data":{"instance_id":1,"serialized_config":{"instance":{"name":"Alpha","id":1},"factorio":{"game_port":34197}}}}"##,
        MasterToSlave::AssignInstance,
        AssignInstance {
            instance_id: 1,
            serialized_config: cfg(),
        },
        int(4),
        Some(4),
    );
    reply::<AssignInstance>(
        r##"{"seq":3,"type":"assign_instance_response","data":{"seq":4}}"##,
        Ok(Empty),
        int(4),
        Some(3),
    );

    // Forwarded to the instance: control -> master -> slave -> instance.
    let start = r##"{"seq":10,"type":"start_instance_request","data":{"instance_id":1}}"##;
    let id = StartInstance { instance_id: 1 };
    message(
        start,
        ControlToMaster::StartInstance,
        id.clone(),
        int(10),
        Some(10),
    );
    message(
        start,
        MasterToSlave::StartInstance,
        id.clone(),
        int(10),
        Some(10),
    );
    message(start, SlaveToInstance::StartInstance, id, int(10), Some(10));
    for error in [
        "Instance with ID 1 does not exist",
        "Instance is not assigned to a slave",
        "Slave containing instance is not connected",
        "Instance ID 1 is not running",
    ] {
        let text = format!(
            r##"{{"seq":11,"type":"start_instance_response","data":{{"seq":10,"error":"{error}"}}}}"##
        );
        reply::<StartInstance>(&text, Err(RemoteError::new(error)), int(10), Some(11));
    }
    reply::<StartInstance>(
        r##"{"seq":11,"type":"start_instance_response","data":{"seq":10}}"##,
        Ok(Empty),
        int(10),
        Some(11),
    );

    let save = r##"{"seq":12,"type":"create_save_request","data":{"instance_id":1}}"##;
    let id = CreateSave { instance_id: 1 };
    message(
        save,
        ControlToMaster::CreateSave,
        id.clone(),
        int(12),
        Some(12),
    );
    message(
        save,
        MasterToSlave::CreateSave,
        id.clone(),
        int(12),
        Some(12),
    );
    message(save, SlaveToInstance::CreateSave, id, int(12), Some(12));
    reply::<CreateSave>(
        r##"{"seq":13,"type":"create_save_response","data":{"seq":12}}"##,
        Ok(Empty),
        int(12),
        Some(13),
    );

    let stop = r##"{"seq":14,"type":"stop_instance_request","data":{"instance_id":1}}"##;
    let id = StopInstance { instance_id: 1 };
    message(
        stop,
        ControlToMaster::StopInstance,
        id.clone(),
        int(14),
        Some(14),
    );
    message(
        stop,
        MasterToSlave::StopInstance,
        id.clone(),
        int(14),
        Some(14),
    );
    message(stop, SlaveToInstance::StopInstance, id, int(14), Some(14));
    reply::<StopInstance>(
        r##"{"seq":15,"type":"stop_instance_response","data":{"seq":14}}"##,
        Ok(Empty),
        int(14),
        Some(15),
    );

    // Forwarded to the slave only.
    let delete = r##"{"seq":16,"type":"delete_instance_request","data":{"instance_id":1}}"##;
    let id = DeleteInstance { instance_id: 1 };
    message(
        delete,
        ControlToMaster::DeleteInstance,
        id.clone(),
        int(16),
        Some(16),
    );
    message(delete, MasterToSlave::DeleteInstance, id, int(16), Some(16));
    let raw = classify_message(Clusterio::WIRE, delete);
    assert!(
        SlaveToInstance::decode(&raw).is_err(),
        "delete_instance stops at the slave"
    );
    reply::<DeleteInstance>(
        r##"{"seq":17,"type":"delete_instance_response","data":{"seq":16,"error":"Instance is not assigned to a slave"}}"##,
        Err(RemoteError::new("Instance is not assigned to a slave")),
        int(16),
        Some(17),
    );

    let rcon =
        r##"{"seq":18,"type":"send_rcon_request","data":{"instance_id":1,"command":"/players"}}"##;
    let cmd = SendRcon {
        instance_id: 1,
        command: "/players".into(),
    };
    message(
        rcon,
        ControlToMaster::SendRcon,
        cmd.clone(),
        int(18),
        Some(18),
    );
    message(
        rcon,
        MasterToSlave::SendRcon,
        cmd.clone(),
        int(18),
        Some(18),
    );
    message(rcon, SlaveToInstance::SendRcon, cmd, int(18), Some(18));
    reply::<SendRcon>(
        r##"{"seq":19,"type":"send_rcon_response","data":{"result":"Online players (0):\n","seq":18}}"##,
        Ok(SendRconReply {
            result: "Online players (0):\n".into(),
        }),
        int(18),
        Some(19),
    );

    message(
        r##"{"seq":2,"type":"update_instances_event","data":{"instances":[{"serialized_config":{"instance":{"name":"Alpha","id":1},"factorio":{"game_port":34197}}}]}}"##,
        SlaveToMaster::UpdateInstances,
        UpdateInstances {
            instances: vec![SlaveInstance {
                serialized_config: cfg(),
            }],
        },
        None,
        Some(2),
    );

    // Forwarded up: instance -> slave -> master, then to subscribed controls.
    let output = r##"{"seq":20,"type":"instance_output_event","data":{"instance_id":1,"output":{"source":"server","format":"seconds","type":"log","message":"Loading mod base 0.18.15","received":1585123456789.25,"time":"0.594","level":"Info","file":"ModManager.cpp"}}}"##;
    let line = InstanceOutput {
        instance_id: 1,
        output: OutputLine {
            source: "server".into(),
            format: "seconds".into(),
            r#type: "log".into(),
            message: "Loading mod base 0.18.15".into(),
            received: 1_585_123_456_789.25,
            time: Some("0.594".into()),
            level: Some("Info".into()),
            file: Some("ModManager.cpp".into()),
            action: None,
        },
    };
    message(
        output,
        InstanceToSlave::InstanceOutput,
        line.clone(),
        None,
        Some(20),
    );
    message(
        output,
        SlaveToMaster::InstanceOutput,
        line.clone(),
        None,
        Some(20),
    );
    message(
        output,
        MasterToControl::InstanceOutput,
        line,
        None,
        Some(20),
    );
    // JavaScript writes a whole `received` (a `Date.now()`) without a fraction; an `f64` is
    // written with one (`.0`). The value is the same number, so the integral form decodes to the
    // same line, and the frame as re-encoded (`...790.0`) round-trips exactly.
    let action = OutputLine {
        source: "stdout".into(),
        format: "date".into(),
        r#type: "action".into(),
        message: "Alice joined".into(),
        received: 1_585_123_456_790.0,
        time: None,
        level: None,
        file: None,
        action: Some("JOIN".into()),
    };
    let action = InstanceOutput {
        instance_id: 1,
        output: action,
    };
    let js = r##"{"seq":21,"type":"instance_output_event","data":{"instance_id":1,"output":{"source":"stdout","format":"date","type":"action","message":"Alice joined","received":1585123456790,"action":"JOIN"}}}"##;
    let raw = classify_message(Clusterio::WIRE, js);
    assert_eq!(
        MasterToControl::decode(&raw).expect("decodes"),
        MasterToControl::InstanceOutput(action.clone())
    );
    let rust = js.replace("1585123456790,", "1585123456790.0,");
    message(
        &rust,
        MasterToControl::InstanceOutput,
        action,
        None,
        Some(21),
    );
}

/// Later Clusterio releases use another envelope (named typed addresses, no `data`). The notes
/// list it only to say the seed's format comes first; this strict profile refuses its envelope.
#[test]
fn clusterio_later_format_is_not_this_protocol() {
    let text = r##"{"type":"request","seq":1,"src":[3,7,1],"dst":[0,0],"name":"PingRequest"}"##;
    match clusterio::Clusterio::WIRE.classify(text) {
        Err(DecodeError::UnexpectedKey(key)) => assert_eq!(key, "src"),
        other => panic!("{other:?}"),
    }
    // Without the extra keys, a frame without `data` is refused too.
    match clusterio::Clusterio::WIRE.classify(r#"{"type":"request","seq":1}"#) {
        Err(DecodeError::MissingKey("data")) => {}
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// SocketCluster (seed 001; socketcluster-server / socketcluster-client 20.x)
// ---------------------------------------------------------------------------------------------

/// `#handshake` sends `"authToken": null` when the client has no token. The field is `any?`
/// (the server answers a token that is not a string itself): `null` and a left-out key both
/// decode as `None`, and `None` is written by leaving the key out, so this frame re-encodes as
/// `"data": {}`. Both mean "no token" to a 20.x server (it tests the token for truthiness); the
/// explicit `null` is what cannot be reproduced.
#[test]
fn socketcluster_handshake() {
    let text = r##"{"event":"#handshake","data":{"authToken":null},"cid":1}"##;
    let raw = classify_message(sc::Socketcluster::WIRE, text);
    assert_eq!(
        (raw.class, raw.name),
        (FrameClass::Plain, TagRef::Str("#handshake"))
    );
    assert_eq!(raw.id, int(1));
    let decoded = sc::ClientToServer::decode(&raw).expect("handshake decodes");
    assert_eq!(
        decoded,
        sc::ClientToServer::Handshake(sc::Handshake { auth_token: None })
    );
    let encoded = encode_message(
        sc::Socketcluster::WIRE,
        &sc::Handshake { auth_token: None },
        int(1).as_ref(),
        None,
    );
    assert_same_json(&encoded, r##"{"event":"#handshake","data":{},"cid":1}"##);
    // With a token, the frame round-trips exactly.
    message(
        r##"{"event":"#handshake","data":{"authToken":"<JWT>"},"cid":1}"##,
        sc::ClientToServer::Handshake,
        sc::Handshake {
            auth_token: Some("<JWT>".into()),
        },
        int(1),
        None,
    );
    // The chat protocol inherits the handshake.
    let raw = classify_message(chat::Chat::WIRE, text);
    assert_eq!(
        chat::ClientToServer::decode(&raw).expect("handshake decodes"),
        chat::ClientToServer::Handshake(chat::Handshake { auth_token: None })
    );

    reply::<sc::Handshake>(
        r##"{"rid":1,"data":{"id":"rHj_P95T00tHsPjuAAAA","pingTimeout":5000,"isAuthenticated":false}}"##,
        Ok(sc::HandshakeReply {
            id: "rHj_P95T00tHsPjuAAAA".into(),
            ping_timeout: 5000,
            is_authenticated: false,
            auth_error: None,
        }),
        int(1),
        None,
    );
    // "A bad token in the handshake adds `authError` to the handshake reply."
    reply::<sc::Handshake>(
        r##"{"rid":1,"data":{"id":"rHj_P95T00tHsPjuAAAA","pingTimeout":5000,"isAuthenticated":false,"authError":{"name":"AuthTokenExpiredError","message":"jwt expired","isBadToken":true,"expiry":"2020-01-01T00:00:00.000Z"}}}"##,
        Ok(sc::HandshakeReply {
            id: "rHj_P95T00tHsPjuAAAA".into(),
            ping_timeout: 5000,
            is_authenticated: false,
            auth_error: Some(sc::AuthError {
                name: "AuthTokenExpiredError".into(),
                message: "jwt expired".into(),
                is_bad_token: Some(true),
                details: config(json!({"expiry": "2020-01-01T00:00:00.000Z"})),
            }),
        }),
        int(1),
        None,
    );
}

/// Ping / pong are raw text frames, not JSON objects: the session layer handles them before
/// the codec, which must refuse them as messages. The notes quote them (`"#1"`); both the bare
/// text and the quoted JSON string are refused.
#[test]
fn socketcluster_ping_pong_are_not_messages() {
    for text in ["#1", "#2", "", "\"#1\"", "\"#2\"", "\"\""] {
        for wire in [sc::Socketcluster::WIRE, chat::Chat::WIRE] {
            let result = wire.classify(text);
            assert!(
                matches!(&result, Err(e) if not_a_frame(e)),
                "{text:?}: {result:?}"
            );
        }
    }
}

/// A frame of an application event no definition declares: what holds is the envelope (class,
/// name, id) and the payload as JSON, which re-encodes to the same frame. The typed direction
/// enums refuse it as an unknown message.
#[track_caller]
fn undeclared(text: &str, kind: Kind, name: &'static str, id: Option<RequestId>, payload: Value) {
    for wire in [sc::Socketcluster::WIRE, chat::Chat::WIRE] {
        let raw = classify_message(wire, text);
        assert_eq!(
            (raw.class, raw.name, &raw.id),
            (FrameClass::Plain, TagRef::Str(name), &id)
        );
        assert_eq!(
            raw.payload.decode::<Value>(name).expect("payload is JSON"),
            payload
        );
        let encoded = encode_any(
            wire,
            kind,
            Tag::Str(name),
            Some(&payload),
            id.as_ref(),
            None,
        );
        assert_same_json(&encoded, text);
    }
    let raw = classify_message(sc::Socketcluster::WIRE, text);
    assert!(matches!(
        sc::ClientToServer::decode(&raw),
        Err(DecodeError::UnknownMessage { .. })
    ));
    assert!(matches!(
        sc::ServerToClient::decode(&raw),
        Err(DecodeError::UnknownMessage { .. })
    ));
    let raw = classify_message(chat::Chat::WIRE, text);
    assert!(matches!(
        chat::ClientToServer::decode(&raw),
        Err(DecodeError::UnknownMessage { .. })
    ));
    assert!(matches!(
        chat::ServerToClient::decode(&raw),
        Err(DecodeError::UnknownMessage { .. })
    ));
}

/// A reply to an undeclared request, its result read as plain JSON.
#[track_caller]
fn undeclared_reply(text: &str, id: i64, result: Result<Option<Value>, RemoteError>) {
    let wire = sc::Socketcluster::WIRE;
    let raw = classify_reply(wire, text);
    assert_eq!((raw.id.clone(), raw.name, raw.seq), (int(id), None, None));
    let got = match &raw.result {
        Ok(payload) => Ok(payload
            .decode::<Option<Value>>("reply")
            .expect("result is JSON")),
        Err(e) => Err(e.clone()),
    };
    assert_eq!(got, result);
    let encoded = encode_reply(
        wire,
        Tag::Str("undeclared"),
        int(id).as_ref(),
        None,
        result.as_ref(),
    );
    assert_same_json(&encoded, text);
}

#[test]
fn socketcluster_application_events_and_replies() {
    undeclared(
        r##"{"event":"fire","data":{"x":1}}"##,
        Kind::Event,
        "fire",
        None,
        json!({"x": 1}),
    );
    undeclared(
        r##"{"event":"add","data":{"a":2,"b":3},"cid":2}"##,
        Kind::Request,
        "add",
        int(2),
        json!({"a": 2, "b": 3}),
    );
    undeclared_reply(r##"{"rid":2,"data":5}"##, 2, Ok(Some(json!(5))));
    undeclared_reply(
        r##"{"rid":3,"error":{"message":"nope","name":"MyError","code":42}}"##,
        3,
        Err(RemoteError {
            message: "nope".into(),
            name: Some("MyError".into()),
            extra: json!({"code": 42}).as_object().cloned().unwrap_or_default(),
        }),
    );
    // An ack without data.
    undeclared_reply(r##"{"rid":5}"##, 5, Ok(None));
    // The server invokes the client with its own cid counter.
    undeclared(
        r##"{"event":"srvRpc","cid":1,"data":{"q":1}}"##,
        Kind::Request,
        "srvRpc",
        int(1),
        json!({"q": 1}),
    );
    undeclared_reply(
        r##"{"rid":1,"data":{"a":"ok"}}"##,
        1,
        Ok(Some(json!({"a": "ok"}))),
    );
}

#[test]
fn socketcluster_pub_sub_and_auth() {
    message(
        r##"{"event":"#subscribe","data":{"channel":"news"},"cid":6}"##,
        sc::ClientToServer::Subscribe,
        sc::Subscribe {
            channel: "news".into(),
            wait_for_auth: None,
            data: None,
        },
        int(6),
        None,
    );
    reply::<sc::Subscribe>(r##"{"rid":6}"##, Ok(Empty), int(6), None);

    // Transmitted without cid: no reply expected.
    let publish = sc::Publish {
        channel: "news".into(),
        data: Some(json!({"t": "hi"})),
    };
    let text = r##"{"event":"#publish","data":{"channel":"news","data":{"t":"hi"}}}"##;
    message(text, sc::ClientToServer::Publish, publish, None, None);
    // The same frame from the server is the delivery to subscribers.
    let delivered = sc::PublishEvent {
        channel: "news".into(),
        data: Some(json!({"t": "hi"})),
    };
    message(
        text,
        sc::ServerToClient::PublishEvent,
        delivered,
        None,
        None,
    );

    message(
        r##"{"event":"#publish","data":{"channel":"news","data":"hi2"},"cid":7}"##,
        sc::ClientToServer::Publish,
        sc::Publish {
            channel: "news".into(),
            data: Some(json!("hi2")),
        },
        int(7),
        None,
    );
    message(
        r##"{"event":"#publish","data":{"channel":"news","data":"hi2"}}"##,
        sc::ServerToClient::PublishEvent,
        sc::PublishEvent {
            channel: "news".into(),
            data: Some(json!("hi2")),
        },
        None,
        None,
    );
    reply::<sc::Publish>(r##"{"rid":7}"##, Ok(Empty), int(7), None);

    // A bare string payload, no cid.
    message(
        r##"{"event":"#unsubscribe","data":"news"}"##,
        sc::ClientToServer::Unsubscribe,
        sc::Unsubscribe("news".into()),
        None,
        None,
    );
    message(
        r##"{"event":"#setAuthToken","data":{"token":"<JWT>"}}"##,
        sc::ServerToClient::SetAuthToken,
        sc::SetAuthToken {
            token: "<JWT>".into(),
        },
        None,
        None,
    );
    // No `data` key at all, either way.
    let remove = r##"{"event":"#removeAuthToken"}"##;
    message(
        remove,
        sc::ServerToClient::RemoveAuthToken,
        sc::RemoveAuthToken {},
        None,
        None,
    );
    message(
        remove,
        sc::ClientToServer::RemoveAuthToken,
        sc::RemoveAuthToken {},
        None,
        None,
    );
    // 14.x sends it with `"data": null`; both sides read it as the same event.
    let remove_null = r##"{"event":"#removeAuthToken","data":null}"##;
    let raw = classify_message(sc::Socketcluster::WIRE, remove_null);
    assert_eq!(
        sc::ServerToClient::decode(&raw).expect("14.x #removeAuthToken decodes"),
        sc::ServerToClient::RemoveAuthToken(sc::RemoveAuthToken {})
    );
    assert_eq!(
        sc::ClientToServer::decode(&raw).expect("14.x #removeAuthToken decodes"),
        sc::ClientToServer::RemoveAuthToken(sc::RemoveAuthToken {})
    );
    // A packet with a string `event` is an event even with a `rid` beside it: the real server
    // and client look at `event` first (`_processInboundPacket`, `transport.js`).
    let raw = classify_message(
        sc::Socketcluster::WIRE,
        r##"{"event":"#removeAuthToken","rid":3}"##,
    );
    assert_eq!(raw.name, TagRef::Str("#removeAuthToken"));
    // The PyPI client answers with `"error": null` beside its data: a success.
    let raw = classify_reply(
        sc::Socketcluster::WIRE,
        r##"{"data":{"a":"ok"},"error":null,"rid":1}"##,
    );
    assert_eq!(
        reply_result::<serde_json::Value>(&raw, "srvRpc"),
        Ok(json!({"a": "ok"}))
    );

    reply::<sc::Authenticate>(
        r##"{"rid":8,"error":{"message":"invalid token","name":"AuthTokenInvalidError","isBadToken":true}}"##,
        Err(RemoteError {
            message: "invalid token".into(),
            name: Some("AuthTokenInvalidError".into()),
            extra: json!({"isBadToken": true})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }),
        int(8),
        None,
    );
    reply::<sc::Subscribe>(
        r##"{"rid":4,"error":{"message":"Subscribe channel name was malformatted","name":"InvalidActionError"}}"##,
        Err(RemoteError::new("Subscribe channel name was malformatted")
            .with_name("InvalidActionError")),
        int(4),
        None,
    );
    // `data` is `any?`: a published `null` reads as no data (serde maps `null` to `None`), and
    // is written back without the key, so JavaScript subscribers would see `undefined` where
    // the publisher sent `null`. What holds: both forms decode to the same value.
    let null_data = r##"{"event":"#publish","data":{"channel":"news","data":null}}"##;
    let raw = classify_message(sc::Socketcluster::WIRE, null_data);
    let no_data = sc::PublishEvent {
        channel: "news".into(),
        data: None,
    };
    assert_eq!(
        sc::ServerToClient::decode(&raw).expect("decodes"),
        sc::ServerToClient::PublishEvent(no_data.clone())
    );
    message(
        r##"{"event":"#publish","data":{"channel":"news"}}"##,
        sc::ServerToClient::PublishEvent,
        no_data,
        None,
        None,
    );
    // Older (14.x) servers say goodbye first.
    message(
        r##"{"event":"#disconnect","data":{"code":4321,"data":"bye"}}"##,
        sc::ServerToClient::Disconnect,
        sc::Disconnect {
            code: 4321,
            data: Some(json!("bye")),
        },
        None,
        None,
    );
}

/// What the notes say the codec cannot decide, asserted as it stands: a string `cid` is read
/// (the server, not the codec, closes with 4008), and a batch (a JSON array of packets) is not
/// a frame the codec reads: the session layer must split it.
#[test]
fn socketcluster_notes_left_to_the_session() {
    let raw = classify_message(
        sc::Socketcluster::WIRE,
        r##"{"event":"#handshake","data":{"authToken":null},"cid":"1"}"##,
    );
    assert_eq!(raw.id, Some(RequestId::Str("1".into())));
    let batch =
        r##"[{"event":"fire","data":{"x":1}},{"event":"add","data":{"a":2,"b":3},"cid":2}]"##;
    assert!(matches!(
        sc::Socketcluster::WIRE.classify(batch),
        Err(ref e) if not_a_frame(e)
    ));
    // A handshake invoked without cid is answered without rid: not a reply the codec can tell.
    let no_rid = r##"{"data":{"id":"x","pingTimeout":5000,"isAuthenticated":false}}"##;
    assert!(matches!(
        sc::Socketcluster::WIRE.classify(no_rid),
        Err(DecodeError::MissingKey("event"))
    ));
}

// ---------------------------------------------------------------------------------------------
// Skynet (seed 003; the JSON-era Node server)
// ---------------------------------------------------------------------------------------------

const MSG_ID: &str = "cmww578gp0000x37d56ul7vig";
const MSG_TIME: i64 = 1_795_612_298_138;

fn sent_message() -> skynet::SentMessage {
    skynet::SentMessage {
        channel: skynet::Channel::Int(42),
        message: json!("hi"),
        id: MSG_ID.into(),
        time: MSG_TIME,
        extra: config(json!({"extra": {"x": 1}})),
    }
}

#[test]
fn skynet_channels_and_messages() {
    use skynet::*;
    message(
        r##"{"type":"open","channel":42}"##,
        ClientToServer::Open,
        Open {
            channel: Channel::Int(42),
        },
        None,
        None,
    );
    reply::<Open>(
        r##"{"channels":[42],"type":"result","for":"open"}"##,
        Ok(OpenReply {
            channels: vec![Channel::Int(42)],
        }),
        None,
        None,
    );
    // Channels match strictly by JSON type: "42" is another channel than 42.
    message(
        r##"{"type":"open","channel":"42"}"##,
        ClientToServer::Open,
        Open {
            channel: Channel::String("42".into()),
        },
        None,
        None,
    );
    message(
        r##"{"type":"close","channel":"*"}"##,
        ClientToServer::CloseChannel,
        CloseChannel {
            channel: Channel::String("*".into()),
        },
        None,
        None,
    );
    reply::<CloseChannel>(
        r##"{"type":"result","for":"close","channels":[42,"42"]}"##,
        Ok(CloseChannelReply {
            channels: vec![Channel::Int(42), Channel::String("42".into())],
        }),
        None,
        None,
    );

    // Extra keys on a message are passed through.
    message(
        r##"{"type":"message","channel":42,"message":"hi","extra":{"x":1}}"##,
        ClientToServer::Message,
        Message {
            channel: Channel::Int(42),
            message: json!("hi"),
            extra: config(json!({"extra": {"x": 1}})),
        },
        None,
        None,
    );
    // The listener's event.
    message(
        r##"{"type":"message","channel":42,"message":"hi","extra":{"x":1},"ID":"cmww578gp0000x37d56ul7vig","time":1795612298138}"##,
        ServerToClient::MessageEvent,
        MessageEvent(sent_message()),
        None,
        None,
    );
    // The sender's result; the notes elide `ID` and `time` (`"..."`, `...`): the event's values.
    reply::<Message>(
        r##"{"type":"result","channel":42,"message":"hi","extra":{"x":1},"ID":"cmww578gp0000x37d56ul7vig","time":1795612298138,"for":"message"}"##,
        Ok(sent_message()),
        None,
        None,
    );
}

#[test]
fn skynet_log() {
    use skynet::*;
    message(
        r##"{"type":"log","start":1,"end":2}"##,
        ClientToServer::Log,
        Log {
            start: Some(json!(1)),
            end: Some(json!(2)),
        },
        None,
        None,
    );
    // Defaults are the server's: absent keys stay absent.
    message(
        r##"{"type":"log"}"##,
        ClientToServer::Log,
        Log {
            start: None,
            end: None,
        },
        None,
        None,
    );
    // The notes elide the entries (`[ ...newest first... ]`): two stored `message` events, the
    // newest first, one kept with its `type`.
    let text = r##"{"log":[{"type":"message","channel":42,"message":"hi","extra":{"x":1},"ID":"cmww578gp0000x37d56ul7vig","time":1795612298138},{"channel":"42","message":{"n":[1,2]},"ID":"cmww578gp0000x37d56ul7vif","time":1795612298000}],"type":"result","for":"log"}"##;
    reply::<Log>(
        text,
        Ok(LogReply {
            log: vec![
                LogEntry {
                    r#type: Some("message".into()),
                    channel: Channel::Int(42),
                    message: json!("hi"),
                    id: MSG_ID.into(),
                    time: MSG_TIME,
                    extra: config(json!({"extra": {"x": 1}})),
                },
                LogEntry {
                    r#type: None,
                    channel: Channel::String("42".into()),
                    message: json!({"n": [1, 2]}),
                    id: "cmww578gp0000x37d56ul7vif".into(),
                    time: 1_795_612_298_000,
                    extra: Default::default(),
                },
            ],
        }),
        None,
        None,
    );
}

#[test]
fn skynet_errors() {
    use skynet::*;
    for text in [
        "Error: Channel 99 not open.",
        // Escaped quotes in the text.
        "SyntaxError: Unexpected token 'o', \"not json\" is not valid JSON",
        "Error: Message must be object",
    ] {
        let frame = serde_json::to_string(&json!({"type": "error", "error": text})).expect("JSON");
        // An error names no command: it answers the oldest pending one, whichever that is.
        reply::<Open>(&frame, Err(RemoteError::new(text)), None, None);
        reply::<Log>(&frame, Err(RemoteError::new(text)), None, None);
    }
}

// ---------------------------------------------------------------------------------------------
// Litecord common protocol (seed 004)
// ---------------------------------------------------------------------------------------------

#[test]
fn litecord_handshake_and_heartbeat() {
    use litecord::*;
    message(
        r##"{"op": 0, "hb_interval": 500}"##,
        ServerToClient::Hello,
        Hello { hb_interval: 500 },
        None,
        None,
    );
    message(
        r##"{"op": 1, "password": "123"}"##,
        ClientToServer::HelloAck,
        HelloAck {
            password: "123".into(),
        },
        None,
        None,
    );
    message(
        r##"{"op": 2, "s": 0}"##,
        ClientToServer::Heartbeat,
        Heartbeat { s: Some(0) },
        None,
        None,
    );
    message(
        r##"{"op": 3}"##,
        ServerToClient::HeartbeatAck,
        HeartbeatAck {},
        None,
        None,
    );
    message(
        r##"{"op": 2, "s": 1}"##,
        ClientToServer::Heartbeat,
        Heartbeat { s: Some(1) },
        None,
        None,
    );
    // The seed's heartbeat, without the counter.
    message(
        r##"{"op": 2}"##,
        ClientToServer::Heartbeat,
        Heartbeat { s: None },
        None,
        None,
    );

    // The application protocol inherits all four.
    message(
        r##"{"op": 0, "hb_interval": 500}"##,
        lce::ServerToClient::Hello,
        lce::Hello { hb_interval: 500 },
        None,
        None,
    );
    message(
        r##"{"op": 1, "password": "123"}"##,
        lce::ClientToServer::HelloAck,
        lce::HelloAck {
            password: "123".into(),
        },
        None,
        None,
    );
    message(
        r##"{"op": 2, "s": 0}"##,
        lce::ClientToServer::Heartbeat,
        lce::Heartbeat { s: Some(0) },
        None,
        None,
    );
    message(
        r##"{"op": 3}"##,
        lce::ServerToClient::HeartbeatAck,
        lce::HeartbeatAck {},
        None,
        None,
    );
}

/// "Tolerate unknown extra fields": they are dropped on decode, so the frame re-encodes
/// without them.
#[test]
fn litecord_tolerates_unknown_fields() {
    let text = r##"{"op": 2, "s": 5, "session": "abc", "op_name": "HEARTBEAT"}"##;
    let raw = classify_message(litecord::Litecord::WIRE, text);
    assert_eq!(
        litecord::ClientToServer::decode(&raw).expect("decodes"),
        litecord::ClientToServer::Heartbeat(litecord::Heartbeat { s: Some(5) })
    );
    let encoded = encode_message(
        litecord::Litecord::WIRE,
        &litecord::Heartbeat { s: Some(5) },
        None,
        None,
    );
    assert_same_json(&encoded, r##"{"op":2,"s":5}"##);
}

#[test]
fn litecord_token_validate() {
    let nonce = Some(RequestId::Str("ab12cd34".into()));
    // REQUEST flows from the gateway to its clients.
    message(
        r##"{"op": 4, "w": "TOKEN_VALIDATE", "a": ["dXNlcg.x.y"], "n": "ab12cd34"}"##,
        lce::ServerToClient::TokenValidate,
        lce::TokenValidate {
            token: "dXNlcg.x.y".into(),
        },
        nonce.clone(),
        None,
    );
    reply::<lce::TokenValidate>(
        r##"{"op": 5, "r": [false, "user not found"], "n": "ab12cd34"}"##,
        Ok(lce::TokenValidity::TokenVerdict(lce::TokenVerdict {
            valid: false,
            reason: Some("user not found".into()),
        })),
        nonce.clone(),
        None,
    );
    // A valid token, as a Python peer answering `True, None` sends it: `null` and a left-out
    // reason both decode as "no reason"; the encoder leaves it out (`[true]`), so the `[true,
    // null]` form reads back as the same value but is not reproduced byte for byte.
    for text in [
        r##"{"op": 5, "r": [true, null], "n": "ab12cd34"}"##,
        r##"{"op": 5, "r": [true], "n": "ab12cd34"}"##,
    ] {
        let raw = classify_reply(lce::LitecordExample::WIRE, text);
        assert_eq!(
            reply_result::<lce::TokenValidity>(&raw, "TOKEN_VALIDATE"),
            Ok(lce::TokenValidity::TokenVerdict(lce::TokenVerdict {
                valid: true,
                reason: None
            }))
        );
    }
    reply::<lce::TokenValidate>(
        r##"{"op": 5, "r": [true], "n": "ab12cd34"}"##,
        Ok(lce::TokenValidity::TokenVerdict(lce::TokenVerdict {
            valid: true,
            reason: None,
        })),
        nonce.clone(),
        None,
    );
    // The real client (rest-py) answers a valid token with a bare `true`.
    reply::<lce::TokenValidate>(
        r##"{"op": 5, "r": true, "n": "ab12cd34"}"##,
        Ok(lce::TokenValidity::Bool(true)),
        nonce.clone(),
        None,
    );
    // protolink's failure extension, `e` in place of `r`.
    reply::<lce::GetGuild>(
        r##"{"op": 5, "e": "no such guild", "n": "ab12cd34"}"##,
        Err(RemoteError::new("no such guild")),
        nonce,
        None,
    );
    // The seed's numeric nonce is read (and echoed) as a number.
    message(
        r##"{"op": 4, "w": "GET_GUILD", "a": ["1"], "n": 1}"##,
        lce::ClientToServer::GetGuild,
        lce::GetGuild {
            guild_id: "1".into(),
        },
        int(1),
        None,
    );
    reply::<lce::GetGuild>(
        r##"{"op": 5, "r": {"id": "1", "name": "Guild", "owner_id": "2", "member_count": 3}, "n": 1}"##,
        Ok(lce::Guild {
            id: "1".into(),
            name: "Guild".into(),
            owner_id: "2".into(),
            member_count: 3,
        }),
        int(1),
        None,
    );
    message(
        r##"{"op": 6, "w": "USER_PRESENCE", "a": ["1", "idle", null]}"##,
        lce::ClientToServer::UserPresence,
        lce::UserPresence {
            user_id: "1".into(),
            status: lce::PresenceStatus::Idle,
            activity: None,
        },
        None,
        None,
    );

    // The base protocol declares no methods: the same REQUEST is an unknown message there.
    let raw = classify_message(
        litecord::Litecord::WIRE,
        r##"{"op": 4, "w": "TOKEN_VALIDATE", "a": ["dXNlcg.x.y"], "n": "ab12cd34"}"##,
    );
    assert_eq!(
        (raw.class, raw.name),
        (FrameClass::Request, TagRef::Str("TOKEN_VALIDATE"))
    );
    assert!(matches!(
        litecord::ServerToClient::decode(&raw),
        Err(DecodeError::UnknownMessage { .. })
    ));
    // ... and the RESPONSE is still a reply, with its nonce.
    let frame = litecord::Litecord::WIRE
        .classify(r##"{"op": 5, "r": [false, "user not found"], "n": "ab12cd34"}"##)
        .expect("classifies");
    assert!(
        matches!(frame, RawFrame::Reply(ref r) if r.id == Some(RequestId::Str("ab12cd34".into())))
    );
}
