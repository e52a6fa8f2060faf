//! The Clusterio reference master, driven by plain WebSocket clients speaking the wire format,
//! and by the reference slave and control commands as subprocesses.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message as Ws;

use super::{RawWs, Running, WAIT, spawn, terminate};

const SECRET: &str = "hunter2";

async fn master() -> Running {
    let master = spawn(&[
        "serve",
        "clusterio",
        "--listen",
        "127.0.0.1:0",
        "--secret",
        SECRET,
    ])
    .await;
    assert!(
        master.url.starts_with("ws://127.0.0.1:") && master.url.ends_with("/api/socket"),
        "{}",
        master.url
    );
    master
}

/// A token from `protolink clusterio token`.
async fn token(secret: &str, who: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_protolink"))
        .args(["clusterio", "token", "--secret", secret])
        .args(who)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// An instance configuration as clusterctl serialises a new one: the `instance` and `factorio`
/// groups (the master fills in the rest).
fn config(id: i64, name: &str) -> Value {
    json!({"groups": [
        {"name": "instance", "fields": {"id": id, "name": name, "assigned_slave": null}},
        {"name": "factorio", "fields": {}},
    ]})
}

/// The fields of a serialised configuration's `instance` group.
fn instance(config: &Value) -> Value {
    config["groups"]
        .as_array()
        .and_then(|groups| groups.iter().find(|g| g["name"] == "instance"))
        .map_or(Value::Null, |group| group["fields"].clone())
}

/// Waits for a JSON line on a process's stdout that satisfies `want`.
async fn line_where(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    want: impl Fn(&Value) -> bool,
) -> Value {
    tokio::time::timeout(WAIT, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("the process ended");
            let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if want(&value) {
                return value;
            }
        }
    })
    .await
    .expect("the line in time")
}

/// A peer speaking the wire format by hand: its own `seq` counter, frames kept aside while
/// waiting for a reply.
struct Peer {
    ws: RawWs,
    seq: i64,
    aside: Vec<Value>,
}

impl Peer {
    /// Connects and checks the master's `hello`.
    async fn connect(url: &str) -> Peer {
        let ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
        let mut peer = Peer {
            ws,
            seq: 0,
            aside: Vec::new(),
        };
        assert_eq!(
            peer.recv().await,
            json!({"seq": 1, "type": "hello", "data": {"version": "2.0.0-alpha"}})
        );
        peer
    }

    /// A control, registered.
    async fn control(url: &str) -> Peer {
        let mut peer = Peer::connect(url).await;
        let token = token(SECRET, &["--control"]).await;
        peer.send(
            "register_control",
            json!({"token": token, "agent": "clusterctl", "version": "2.0.0-alpha"}),
        )
        .await;
        assert_eq!(
            peer.recv().await,
            json!({"seq": 2, "type": "ready", "data": {}})
        );
        peer
    }

    /// A slave, registered.
    async fn slave(url: &str, id: i64, name: &str) -> Peer {
        let mut peer = Peer::connect(url).await;
        let token = token(SECRET, &["--slave", &id.to_string()]).await;
        peer.send(
            "register_slave",
            json!({"token": token, "agent": "probe", "version": "2.0.0-alpha",
                   "name": name, "id": id}),
        )
        .await;
        assert_eq!(
            peer.recv().await,
            json!({"seq": 2, "type": "ready", "data": {}})
        );
        peer
    }

    async fn send_text(&mut self, text: String) {
        self.seq += 1;
        self.ws.send(Ws::text(text)).await.unwrap();
    }

    /// Sends a frame; returns its `seq`.
    async fn send(&mut self, r#type: &str, data: Value) -> i64 {
        let seq = self.seq + 1;
        self.send_text(json!({"seq": seq, "type": r#type, "data": data}).to_string())
            .await;
        seq
    }

    async fn recv(&mut self) -> Value {
        super::recv_json(&mut self.ws, |_| false).await
    }

    /// The next frame of this type, keeping others aside.
    async fn recv_type(&mut self, r#type: &str) -> Value {
        if let Some(at) = self.aside.iter().position(|f| f["type"] == r#type) {
            return self.aside.remove(at);
        }
        loop {
            let frame = self.recv().await;
            if frame["type"] == r#type {
                return frame;
            }
            self.aside.push(frame);
        }
    }

    /// Sends `T_request` and returns the whole `T_response` frame answering it.
    async fn request_frame(&mut self, name: &str, data: Value) -> Value {
        let seq = self.send(&format!("{name}_request"), data).await;
        let reply_type = format!("{name}_response");
        let matches = |f: &Value| f["type"] == reply_type.as_str() && f["data"]["seq"] == seq;
        if let Some(at) = self.aside.iter().position(matches) {
            return self.aside.remove(at);
        }
        loop {
            let frame = self.recv().await;
            if matches(&frame) {
                return frame;
            }
            self.aside.push(frame);
        }
    }

    /// A request's reply data without its `seq`, or `Err` with the error text.
    async fn request(&mut self, name: &str, data: Value) -> Result<Value, String> {
        let mut frame = self.request_frame(name, data).await;
        let data = frame["data"].as_object_mut().unwrap();
        data.remove("seq");
        match data.remove("error") {
            Some(Value::String(error)) => Err(error),
            Some(other) => panic!("error is not a string: {other}"),
            None => Ok(Value::Object(data.clone())),
        }
    }

    /// Expects the `close` message, then the end of the socket; returns the close frame.
    async fn closed(&mut self) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["type"], "close", "{frame}");
        let end = tokio::time::timeout(WAIT, self.ws.next()).await;
        match end.expect("the socket closes after close") {
            None | Some(Err(_) | Ok(Ws::Close(_))) => {}
            Some(Ok(other)) => panic!("a frame after close: {other:?}"),
        }
        frame
    }

    /// Answers a request the master sent with an empty success.
    async fn answer(&mut self, request: &Value) {
        let name = request["type"]
            .as_str()
            .unwrap()
            .strip_suffix("_request")
            .unwrap();
        self.send(
            &format!("{name}_response"),
            json!({"seq": request["seq"].clone()}),
        )
        .await;
    }
}

/// A reference slave as a subprocess.
struct SlaveProcess {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl SlaveProcess {
    async fn start(url: &str, id: i64, name: &str) -> SlaveProcess {
        let token = token(SECRET, &["--slave", &id.to_string()]).await;
        let id_text = id.to_string();
        let (child, mut lines) = super::start(&[
            "clusterio",
            "slave",
            "--url",
            url,
            "--token",
            &token,
            "--id",
            &id_text,
            "--name",
            name,
        ]);
        line_where(&mut lines, |v| v["connected"]["id"] == id).await;
        SlaveProcess { child, lines }
    }

    async fn received(&mut self, name: &str) -> Value {
        line_where(&mut self.lines, |v| v["received"] == name).await["data"].clone()
    }

    async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        let exit = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(exit.success(), "{exit:?}");
    }
}

/// Runs `protolink clusterio ctl`; its stdout, or its stderr when it failed.
async fn ctl(url: &str, args: &[&str]) -> Result<Value, String> {
    let token = token(SECRET, &["--control"]).await;
    let output = tokio::time::timeout(
        WAIT,
        Command::new(env!("CARGO_BIN_EXE_protolink"))
            .args(["clusterio", "ctl", "--url", url, "--token", &token])
            .args(args)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        assert_eq!(output.status.code(), Some(1));
        Err(String::from_utf8(output.stderr).unwrap())
    }
}

#[tokio::test]
async fn master_slaves_and_control_run_every_message() {
    let mut master = master().await;
    let url = master.url.clone();
    let mut control = Peer::control(&url).await;

    // The shape of a reply, field for field.
    let seq = control.seq + 1;
    assert_eq!(
        control.request_frame("list_slaves", json!({})).await,
        json!({"seq": 3, "type": "list_slaves_response", "data": {"list": [], "seq": seq}})
    );

    let mut one = SlaveProcess::start(&url, 1, "one").await;
    let mut two = SlaveProcess::start(&url, 2, "two").await;
    let slave = |id: i64, name: &str| {
        json!({"agent": "protolink-slave", "version": "2.0.0-alpha", "name": name,
               "id": id, "connected": true})
    };
    assert_eq!(
        control.request("list_slaves", json!({})).await,
        Ok(json!({"list": [slave(1, "one"), slave(2, "two")]}))
    );

    // create_instance, get_instance_config, list_instances.
    for (id, name) in [(10, "alpha"), (20, "beta"), (30, "gamma")] {
        assert_eq!(
            control
                .request(
                    "create_instance",
                    json!({"serialized_config": config(id, name)})
                )
                .await,
            Ok(json!({}))
        );
    }
    assert_eq!(
        control
            .request(
                "create_instance",
                json!({"serialized_config": config(10, "again")})
            )
            .await,
        Err("Instance with ID 10 already exists".to_owned())
    );
    let seq = control.seq + 1;
    let missing = control
        .request_frame("get_instance_config", json!({"instance_id": 999}))
        .await;
    assert_eq!(missing["type"], "get_instance_config_response");
    assert_eq!(
        missing["data"],
        json!({"seq": seq, "error": "Instance with ID 999 does not exist"})
    );
    assert_eq!(
        control
            .request("get_instance_config", json!({"instance_id": 10}))
            .await
            .map(|reply| instance(&reply["serialized_config"])),
        Ok(json!({"id": 10, "name": "alpha", "assigned_slave": null}))
    );

    // assign_instance_command sends assign_instance to the slave.
    for (instance, slave, process) in [(10, 1, &mut one), (20, 2, &mut two)] {
        assert_eq!(
            control
                .request(
                    "assign_instance_command",
                    json!({"instance_id": instance, "slave_id": slave})
                )
                .await,
            Ok(json!({}))
        );
        assert_eq!(
            process.received("assign_instance").await["instance_id"],
            instance
        );
    }
    assert_eq!(
        control
            .request(
                "assign_instance_command",
                json!({"instance_id": 30, "slave_id": 9})
            )
            .await,
        Err("Target slave is not connected to the master server".to_owned())
    );
    assert_eq!(
        control.request("list_instances", json!({})).await,
        Ok(json!({"list": [
            {"name": "alpha", "id": 10, "assigned_slave": 1},
            {"name": "beta", "id": 20, "assigned_slave": 2},
            {"name": "gamma", "id": 30, "assigned_slave": null},
        ]}))
    );

    // Forwarding errors at the master and at the slave.
    for name in [
        "start_instance",
        "stop_instance",
        "create_save",
        "delete_instance",
    ] {
        assert_eq!(
            control.request(name, json!({"instance_id": 999})).await,
            Err("Instance with ID 999 does not exist".to_owned()),
            "{name}"
        );
    }
    assert_eq!(
        control
            .request("send_rcon", json!({"instance_id": 30, "command": "x"}))
            .await,
        Err("Instance is not assigned to a slave".to_owned())
    );
    assert_eq!(
        control
            .request("start_instance", json!({"instance_id": 30}))
            .await,
        Err("Instance is not assigned to a slave".to_owned())
    );
    for name in ["stop_instance", "create_save"] {
        assert_eq!(
            control.request(name, json!({"instance_id": 10})).await,
            Err("Instance ID 10 is not running".to_owned()),
            "{name}"
        );
    }
    assert_eq!(
        control
            .request("send_rcon", json!({"instance_id": 10, "command": "x"}))
            .await,
        Err("Instance ID 10 is not running".to_owned())
    );

    // Subscribed output: start, rcon, save and stop on instance 10.
    assert_eq!(
        control
            .request(
                "set_instance_output_subscriptions",
                json!({"instance_ids": [10, 40]})
            )
            .await,
        Ok(json!({}))
    );
    assert_eq!(
        control
            .request("start_instance", json!({"instance_id": 10}))
            .await,
        Ok(json!({}))
    );
    assert_eq!(
        one.received("start_instance").await,
        json!({"instance_id": 10})
    );
    let event = control.recv_type("instance_output_event").await;
    assert_eq!(event["data"]["instance_id"], 10);
    assert_eq!(event["data"]["output"]["message"], "Starting instance");
    assert_eq!(
        control
            .request(
                "send_rcon",
                json!({"instance_id": 10, "command": "/c game.print(1)"})
            )
            .await,
        Ok(json!({"result": "/c game.print(1)"}))
    );
    let event = control.recv_type("instance_output_event").await;
    let output = &event["data"]["output"];
    assert_eq!(
        (
            &event["data"]["instance_id"],
            &output["source"],
            &output["format"],
            &output["type"],
            &output["message"]
        ),
        (
            &json!(10),
            &json!("rcon"),
            &json!("none"),
            &json!("generic"),
            &json!("/c game.print(1)")
        )
    );
    assert!(output["received"].is_number());
    assert_eq!(
        control
            .request("create_save", json!({"instance_id": 10}))
            .await,
        Ok(json!({}))
    );
    assert_eq!(
        control.recv_type("instance_output_event").await["data"]["output"]["message"],
        "Saving game"
    );

    // Output of an instance nobody subscribed to does not reach the control.
    assert_eq!(
        control
            .request("start_instance", json!({"instance_id": 20}))
            .await,
        Ok(json!({}))
    );
    assert_eq!(
        control
            .request("start_instance", json!({"instance_id": 20}))
            .await,
        Err("Instance ID 20 is already running".to_owned())
    );

    // set_instance_config_field reaches the slave owning the instance.
    assert_eq!(
        control
            .request(
                "set_instance_config_field",
                json!({"instance_id": 10, "field": "instance.name", "value": "alpha2"})
            )
            .await,
        Ok(json!({}))
    );
    assert_eq!(
        instance(&one.received("assign_instance").await["serialized_config"]),
        json!({"id": 10, "name": "alpha2", "assigned_slave": 1})
    );
    assert_eq!(
        control
            .request("get_instance_config", json!({"instance_id": 10}))
            .await
            .map(|reply| instance(&reply["serialized_config"])),
        Ok(json!({"id": 10, "name": "alpha2", "assigned_slave": 1}))
    );
    assert_eq!(
        control
            .request("stop_instance", json!({"instance_id": 10}))
            .await,
        Ok(json!({}))
    );
    assert_eq!(
        control.recv_type("instance_output_event").await["data"]["output"]["message"],
        "Stopping instance"
    );

    // update_instances from a slave the master did not assign, then its output, in order.
    let mut three = Peer::slave(&url, 3, "three").await;
    three
        .send(
            "update_instances_event",
            json!({"instances": [{"serialized_config": config(40, "delta")}]}),
        )
        .await;
    // The master adopts it and answers as the real one does: by assigning it back.
    let assign = three.recv().await;
    assert_eq!(assign["type"], "assign_instance_request", "{assign}");
    assert_eq!(
        instance(&assign["data"]["serialized_config"]),
        json!({"id": 40, "name": "delta", "assigned_slave": 3})
    );
    three.answer(&assign).await;
    three
        .send(
            "instance_output_event",
            json!({"instance_id": 40, "output": {"source": "stdout", "format": "seconds",
                   "type": "log", "message": "hi", "received": 1.5, "level": "info"}}),
        )
        .await;
    let event = control.recv_type("instance_output_event").await;
    assert_eq!(
        event["data"],
        json!({"instance_id": 40, "output": {"source": "stdout", "format": "seconds",
               "type": "log", "message": "hi", "received": 1.5, "level": "info"}})
    );
    assert!(event["seq"].is_i64());
    let list = control.request("list_instances", json!({})).await.unwrap();
    assert!(
        list["list"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "delta", "id": 40, "assigned_slave": 3})),
        "{list}"
    );

    // delete_instance is forwarded to the slave.
    assert_eq!(
        control
            .request("delete_instance", json!({"instance_id": 20}))
            .await,
        Ok(json!({}))
    );
    assert_eq!(
        two.received("delete_instance").await,
        json!({"instance_id": 20})
    );

    // A slave that went away.
    assert_eq!(
        control
            .request(
                "assign_instance_command",
                json!({"instance_id": 30, "slave_id": 2})
            )
            .await,
        Ok(json!({}))
    );
    two.stop().await;
    line_where(&mut master.lines, |v| v["slave_disconnected"] == 2).await;
    for name in [
        "start_instance",
        "create_save",
        "stop_instance",
        "delete_instance",
    ] {
        assert_eq!(
            control.request(name, json!({"instance_id": 30})).await,
            Err("Slave containing instance is not connected".to_owned()),
            "{name}"
        );
    }
    assert_eq!(
        control
            .request("send_rcon", json!({"instance_id": 30, "command": "x"}))
            .await,
        Err("Slave containing instance is not connected".to_owned())
    );
    let slaves = control.request("list_slaves", json!({})).await.unwrap();
    assert_eq!(slaves["list"][1]["connected"], false, "{slaves}");
    assert!(
        !control.aside.iter().any(|f| f["data"]["instance_id"] == 20),
        "output of an unsubscribed instance: {:?}",
        control.aside
    );

    // The control command, one request each.
    assert_eq!(
        ctl(&url, &["get-config", "10"])
            .await
            .map(|reply| instance(&reply["serialized_config"])),
        Ok(json!({"id": 10, "name": "alpha2", "assigned_slave": 1}))
    );
    assert_eq!(
        ctl(
            &url,
            &["create-instance", "--name", "epsilon", "--id", "50"]
        )
        .await,
        Ok(json!({}))
    );
    assert_eq!(
        ctl(
            &url,
            &["assign-instance", "--instance", "50", "--slave", "1"]
        )
        .await,
        Ok(json!({}))
    );
    assert_eq!(ctl(&url, &["start-instance", "50"]).await, Ok(json!({})));
    assert_eq!(
        ctl(&url, &["send-rcon", "50", "/version"]).await,
        Ok(json!({"result": "/version"}))
    );
    let error = ctl(&url, &["stop-instance", "999"]).await.unwrap_err();
    assert!(
        error.contains("Instance with ID 999 does not exist"),
        "{error}"
    );

    one.stop().await;
    terminate(master).await;
}

#[tokio::test]
async fn subscribe_output_prints_events_until_interrupted() {
    let master = master().await;
    let url = master.url.clone();
    let _slave = SlaveProcess::start(&url, 1, "one").await;
    ctl(&url, &["create-instance", "--name", "a", "--id", "1"])
        .await
        .unwrap();
    ctl(
        &url,
        &["assign-instance", "--instance", "1", "--slave", "1"],
    )
    .await
    .unwrap();
    let token = token(SECRET, &["--control"]).await;
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_protolink"))
        .args(["clusterio", "ctl", "--url", &url, "--token", &token])
        .args(["subscribe-output", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    line_where(&mut lines, |v| v["subscribed"] == json!([1])).await;
    ctl(&url, &["start-instance", "1"]).await.unwrap();
    ctl(&url, &["send-rcon", "1", "hello"]).await.unwrap();
    let event = line_where(&mut lines, |v| v["output"]["message"] == "hello").await;
    assert_eq!(event["instance_id"], 1);
    let pid = watcher.id().unwrap().to_string();
    Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    let exit = tokio::time::timeout(WAIT, watcher.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    terminate(master).await;
}

#[tokio::test]
async fn handshake_failures_close_with_their_reasons() {
    let master = master().await;
    let url = master.url.clone();

    // Anything but a registration first.
    let mut peer = Peer::connect(&url).await;
    peer.send("list_slaves_request", json!({})).await;
    assert_eq!(
        peer.closed().await,
        json!({"seq": 2, "type": "close", "data": {"reason": "Invalid handshake"}})
    );

    // The real master accepts any HS256 token signed with its secret, whatever it claims (one
    // token serves slaves and controls), but checks `exp` and `nbf` when they are there.
    let sign = |secret: &str, claims: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let foreign = token("other secret", &["--control"]).await;
    let slave_one = token(SECRET, &["--slave", "1"]).await;
    let control = token(SECRET, &["--control"]).await;
    let register = async |r#type: &str, token: &str, id: Option<i64>| {
        let mut peer = Peer::connect(&url).await;
        let mut data = json!({"token": token, "agent": "probe", "version": "2.0.0-alpha"});
        if let Some(id) = id {
            data["name"] = json!("probe");
            data["id"] = json!(id);
        }
        peer.send(r#type, data).await;
        peer.recv().await
    };
    let accepted = [
        ("register_control", slave_one.clone(), None),
        ("register_slave", control.clone(), Some(7)),
        ("register_control", sign(SECRET, json!({})), None),
        (
            "register_control",
            sign(SECRET, json!({"exp": now + 3600})),
            None,
        ),
    ];
    for (r#type, token, id) in accepted {
        let answer = register(r#type, &token, id).await;
        assert_eq!(answer["type"], "ready", "{type} with {token}: {answer}");
    }
    let refused = [
        foreign.clone(),
        sign(SECRET, json!({"exp": now - 10})),
        sign(SECRET, json!({"nbf": now + 3600})),
        "not.a.jwt".to_owned(),
    ];
    for token in refused {
        let answer = register("register_control", &token, None).await;
        assert_eq!(
            answer,
            json!({"seq": 2, "type": "close", "data": {"reason": "Authentication failed"}}),
            "{token}"
        );
    }

    // The reference commands report it.
    let output = Command::new(env!("CARGO_BIN_EXE_protolink"))
        .args(["clusterio", "ctl", "--url", &url, "--token", &foreign])
        .arg("list-slaves")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("Authentication failed"), "{stderr}");
    terminate(master).await;
}

#[tokio::test]
async fn invalid_messages_close_the_link_with_the_reason() {
    let master = master().await;
    let url = master.url.clone();
    let cases: [(&str, &str); 5] = [
        (
            // A reply on a link where the master sends no requests: a message it does not know
            // (the real master's words, as for every unknown type).
            r#"{"seq": 2, "type": "list_slaves_response", "data": {"seq": 999, "list": []}}"#,
            "Invalid message: No validator for list_slaves_response on master-control",
        ),
        (
            r#"{"seq": 2, "type": "list_instances_request", "data": {"extra": 1}}"#,
            "Invalid message: Validation failed for list_instances_request",
        ),
        (
            // Valid from a slave, not from a control.
            r#"{"seq": 2, "type": "update_instances_event", "data": {"instances": []}}"#,
            "Invalid message: No validator for update_instances_event on master-control",
        ),
        (
            r#"{"seq": 2, "type": "no_such_thing_event", "data": {}}"#,
            "Invalid message: No validator for no_such_thing_event on master-control",
        ),
        (
            r#"{"seq": 2, "type": "get_instance_config_request", "data": {"instance_id": "7"}}"#,
            "Invalid message: Validation failed for get_instance_config_request",
        ),
    ];
    for (frame, reason) in cases {
        let mut control = Peer::control(&url).await;
        control.send_text(frame.to_owned()).await;
        assert_eq!(
            control.closed().await,
            json!({"seq": 3, "type": "close", "data": {"reason": reason}}),
            "{frame}"
        );
    }
    // Not JSON, an envelope without `seq`, one with a key too many, one without `data`.
    for frame in [
        "not json",
        r#"{"type": "list_slaves_request", "data": {}}"#,
        r#"{"seq": 2, "type": "list_slaves_request", "data": {}, "extra": 1}"#,
        r#"{"seq": 2, "type": "list_slaves_request"}"#,
    ] {
        let mut control = Peer::control(&url).await;
        control.send_text(frame.to_owned()).await;
        let close = control.closed().await;
        let reason = close["data"]["reason"].as_str().unwrap();
        assert!(reason.starts_with("Invalid message: "), "{frame}: {reason}");
    }
    // What the real master calls malformed: a key too many, a `seq` that is not an integer.
    for frame in [
        r#"{"seq": 2, "type": "list_slaves_request", "data": {}, "extra": 1}"#,
        r#"{"seq": "2", "type": "list_slaves_request", "data": {}}"#,
        r#"{"seq": 2.5, "type": "list_slaves_request", "data": {}}"#,
    ] {
        let mut control = Peer::control(&url).await;
        control.send_text(frame.to_owned()).await;
        assert_eq!(
            control.closed().await["data"]["reason"],
            "Invalid message: Malformed",
            "{frame}"
        );
    }
    // A slave sending what only the master sends.
    let mut slave = Peer::slave(&url, 4, "four").await;
    slave
        .send_text(r#"{"seq": 2, "type": "list_slaves_request", "data": {}}"#.to_owned())
        .await;
    assert_eq!(
        slave.closed().await["data"]["reason"],
        "Invalid message: No validator for list_slaves_request on master-slave"
    );
    terminate(master).await;
}

#[tokio::test]
async fn a_slave_registering_again_replaces_the_old_link() {
    let master = master().await;
    let url = master.url.clone();
    let mut control = Peer::control(&url).await;
    let mut first = Peer::slave(&url, 5, "first").await;
    let mut second = Peer::slave(&url, 5, "second").await;
    assert_eq!(
        first.closed().await["data"],
        json!({"reason": "Registered from another connection"})
    );
    assert_eq!(
        control.request("list_slaves", json!({})).await,
        Ok(
            json!({"list": [{"agent": "probe", "version": "2.0.0-alpha", "name": "second",
                             "id": 5, "connected": true}]})
        )
    );
    // The master talks to the new link.
    control
        .request(
            "create_instance",
            json!({"serialized_config": config(51, "x")}),
        )
        .await
        .unwrap();
    let seq = control
        .send(
            "assign_instance_command_request",
            json!({"instance_id": 51, "slave_id": 5}),
        )
        .await;
    let assign = second.recv().await;
    assert_eq!(assign["type"], "assign_instance_request");
    assert_eq!(
        instance(&assign["data"]["serialized_config"]),
        json!({"id": 51, "name": "x", "assigned_slave": 5})
    );
    second.answer(&assign).await;
    assert_eq!(
        control.recv_type("assign_instance_command_response").await["data"],
        json!({"seq": seq})
    );
    terminate(master).await;
}

#[tokio::test]
async fn requests_pending_on_a_dropped_slave_fail_at_once() {
    let master = master().await;
    let url = master.url.clone();
    let mut control = Peer::control(&url).await;
    let mut slave = Peer::slave(&url, 7, "seven").await;
    control
        .request(
            "create_instance",
            json!({"serialized_config": config(70, "x")}),
        )
        .await
        .unwrap();
    let seq = control
        .send(
            "assign_instance_command_request",
            json!({"instance_id": 70, "slave_id": 7}),
        )
        .await;
    let assign = slave.recv().await;
    slave.answer(&assign).await;
    assert_eq!(
        control.recv_type("assign_instance_command_response").await["data"],
        json!({"seq": seq})
    );

    // The slave receives the forwarded request and goes away without answering.
    let seq = control
        .send("start_instance_request", json!({"instance_id": 70}))
        .await;
    let start = slave.recv().await;
    assert_eq!(start["type"], "start_instance_request");
    assert_eq!(start["data"], json!({"instance_id": 70}));
    drop(slave);
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        control.recv_type("start_instance_response"),
    )
    .await
    .expect("the request failed well before its timeout");
    assert_eq!(reply["data"]["seq"], seq);
    let error = reply["data"]["error"].as_str().unwrap();
    assert!(error.contains("closed"), "{error}");
    terminate(master).await;
}

/// The master holds the runtime's limits like every server: a message over 16 MiB (here sent as
/// one frame) is refused with 1009, after the protocol's `close` message.
#[tokio::test]
async fn the_master_refuses_an_oversized_message_with_1009() {
    let master = master().await;
    let mut peer = Peer::control(&master.url).await;
    let big = format!(
        r#"{{"seq":1,"type":"list_slaves_request","data":{{"pad":"{}"}}}}"#,
        "x".repeat(17 << 20)
    );
    // The send itself may fail once the master has closed; its close frame must still come.
    let _ = peer.ws.send(Ws::text(big)).await;
    let code = loop {
        match tokio::time::timeout(WAIT, peer.ws.next()).await.unwrap() {
            Some(Ok(Ws::Text(t))) => {
                let frame: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!(frame["type"], "close", "{frame}");
            }
            Some(Ok(Ws::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(1009));
    terminate(master).await;
}
