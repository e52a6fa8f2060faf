//! The seed frames, as WIRE-NOTES records them (`S` server, `C` client, `M` master).
//!
//! Where WIRE-NOTES shows a frame of an application protocol that protolink's definitions do not
//! declare (SocketCluster's `fire` / `add`), the frame has the same shape with a declared event of
//! the `chat` example protocol. `instance_output_event` is not in WIRE-NOTES' capture; its data
//! follows the message catalogue there.

/// Litecord, S: OP 0 HELLO.
pub const LITECORD_HELLO: &str = r#"{"op": 0, "hb_interval": 500}"#;
/// Litecord, C: OP 2 HEARTBEAT with the real client's counter.
pub const LITECORD_HEARTBEAT: &str = r#"{"op": 2, "s": 1}"#;
/// Litecord, S: OP 4 REQUEST carrying TOKEN_VALIDATE.
pub const LITECORD_REQUEST: &str =
    r#"{"op": 4, "w": "TOKEN_VALIDATE", "a": ["dXNlcg.x.y"], "n": "ab12cd34"}"#;

/// Skynet, C: open a channel.
pub const SKYNET_OPEN: &str = r#"{"type":"open","channel":42}"#;
/// Skynet, C: send a message with an extra key.
pub const SKYNET_MESSAGE: &str =
    r#"{"type":"message","channel":42,"message":"hi","extra":{"x":1}}"#;
/// Skynet, S: the result of `open`.
pub const SKYNET_RESULT: &str = r#"{"channels":[42],"type":"result","for":"open"}"#;

/// SocketCluster, C: an emit without `cid` (WIRE-NOTES' `fire`; here `chat`'s `typing`).
pub const SOCKETCLUSTER_EMIT: &str = r#"{"event":"typing","data":{"room":"lobby"}}"#;
/// SocketCluster, C: an invoke with `cid` (WIRE-NOTES' `add`; here `chat`'s `sendMessage`).
pub const SOCKETCLUSTER_INVOKE: &str =
    r#"{"event":"sendMessage","data":{"room":"lobby","text":"hi"},"cid":2}"#;
/// SocketCluster, C: `#publish` without `cid`.
pub const SOCKETCLUSTER_PUBLISH: &str =
    r##"{"event":"#publish","data":{"channel":"news","data":{"t":"hi"}}}"##;

/// Clusterio, C: the `list_slaves` request.
pub const CLUSTERIO_LIST_SLAVES_REQUEST: &str =
    r#"{"seq":2,"type":"list_slaves_request","data":{}}"#;
/// Clusterio, M: its response, the request's `seq` inside `data`.
pub const CLUSTERIO_LIST_SLAVES_RESPONSE: &str = r#"{"seq":3,"type":"list_slaves_response","data":{"list":[{"agent":"probe","version":"2.0.0-alpha","id":123,"name":"Foo","connected":false}],"seq":2}}"#;
/// Clusterio, M: an `instance_output` event forwarded to a control.
pub const CLUSTERIO_INSTANCE_OUTPUT_EVENT: &str = r#"{"seq":4,"type":"instance_output_event","data":{"instance_id":7,"output":{"source":"stdout","format":"seconds","type":"log","message":"Map saved","received":1590000000000}}}"#;
