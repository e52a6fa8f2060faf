//! The definition tools as a user runs them: `protolink schema`, `asyncapi`, `docs`, `ts` and
//! `diff` on the seed protocols, their output read by real consumers (the AsyncAPI documents by
//! the official `@asyncapi/parser`, the TypeScript by `tsc --strict`), and their errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub(crate) fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

pub(crate) fn protolink(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_protolink"))
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap()
}

/// A fresh folder under the target's temporary folder.
pub(crate) fn fresh(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn schema_writes_every_direction_and_message() {
    let out = fresh("tools-schema");
    let run = protolink(&["schema", "protocol-defs", "--out", out.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let listed = String::from_utf8(run.stdout).unwrap();
    for file in [
        "skynet/client-to-server.schema.json",
        "skynet/server-to-client.schema.json",
        "clusterio/control-to-master.schema.json",
        "litecord_example/messages/TOKEN_VALIDATE.reply.schema.json",
        "chat/messages/join.schema.json",
    ] {
        let path = out.join(file);
        assert!(listed.contains(file), "{file} is listed");
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }
}

#[test]
fn tools_report_broken_definitions() {
    let broken = workspace().join("codegen/tests/diagnostics/e0101_unknown_type.protocol");
    assert!(broken.is_file(), "{} exists", broken.display());
    let out = fresh("tools-broken");
    for args in [
        vec![
            "schema",
            broken.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        vec!["asyncapi", broken.to_str().unwrap()],
        vec![
            "docs",
            broken.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    ] {
        let run = protolink(&args);
        assert_eq!(run.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains("error[E0101]"), "{args:?}: {stderr}");
    }
    assert!(!out.exists(), "nothing is written for a broken definition");
    let run = protolink(&["asyncapi", "protocol-defs", "--protocol", "nope"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no protocol \"nope\""));
}

#[test]
fn asyncapi_documents_pass_the_official_parser() {
    let interop = workspace().join("interop");
    assert!(
        interop.join("node_modules/@asyncapi/parser").is_dir(),
        "@asyncapi/parser is missing: run `npm ci --prefix interop` (scripts/test.sh does)"
    );
    let out = fresh("tools-asyncapi");
    let run = protolink(&[
        "asyncapi",
        "protocol-defs",
        "--out",
        out.to_str().unwrap(),
        "--path",
        "/socket",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut documents: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    documents.sort();
    assert_eq!(documents.len(), 6, "one document per seed protocol");
    let checked = Command::new("node")
        .arg(interop.join("asyncapi-check.js"))
        .args(&documents)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&checked.stdout).unwrap();
    for result in &results {
        let file = result["file"].as_str().unwrap();
        assert_eq!(result["errors"], serde_json::json!([]), "{file}");
        assert_eq!(result["warnings"], serde_json::json!([]), "{file}");
        assert!(result["channels"].as_u64().unwrap() >= 1, "{file}");
        assert!(result["operations"].as_u64().unwrap() >= 4, "{file}");
    }
    // The server's path, and a request with its reply.
    let skynet: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("skynet.asyncapi.json")).unwrap())
            .unwrap();
    assert_eq!(skynet["servers"]["reference"]["pathname"], "/socket");
    let open = &skynet["operations"]["server_receives_open_from_client"];
    assert_eq!(open["action"], "receive");
    assert_eq!(
        open["reply"]["messages"][0]["$ref"],
        "#/channels/client-server/messages/open.reply"
    );
}

#[test]
fn docs_write_markdown_and_a_page() {
    let out = fresh("tools-docs");
    let run = protolink(&["docs", "protocol-defs", "--out", out.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let markdown = std::fs::read_to_string(out.join("litecord.md")).unwrap();
    for part in [
        "## Envelope",
        "## Handshake",
        "## Heartbeat",
        "## Close codes",
        "### Hello",
    ] {
        assert!(markdown.contains(part), "litecord.md has {part}");
    }
    assert!(markdown.contains("| 4003 | `HeartbeatTimeout` | Heartbeat timeout |"));
    let page = std::fs::read_to_string(out.join("skynet.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<style>"));
    assert!(page.contains("<h3 id=\"open\">open</h3>"));
}

#[test]
fn diff_exits_by_its_verdict() {
    let dir = fresh("tools-diff");
    std::fs::create_dir_all(&dir).unwrap();
    let seed = workspace().join("protocol-defs/skynet.protocol");
    let old = std::fs::read_to_string(&seed).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let same = write("same.protocol", &old);
    let compatible = write(
        "compatible.protocol",
        &old.replace(
            "    start: any?,",
            "    start: any?,\n    /// A label.\n    label: string?,",
        ),
    );
    let breaking = write(
        "breaking.protocol",
        &old.replace(
            "    id as \"ID\": string,\n    /// When the server received it",
            "    id as \"ID\": string,\n    sender: string,\n    /// When the server received it",
        ),
    );
    let broken = write("broken.protocol", "protocol nope {");
    let seed = seed.to_str().unwrap();

    let run = protolink(&["diff", seed, &same]);
    assert_eq!(run.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "0 breaking changes, 0 compatible changes\n"
    );

    let run = protolink(&["diff", seed, &compatible]);
    assert_eq!(run.status.code(), Some(0));
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        out.contains("note[N0002]: the payload of `log` has a new optional field `label`"),
        "{out}"
    );

    let run = protolink(&["diff", seed, &breaking]);
    assert_eq!(run.status.code(), Some(1));
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        out.contains("error[B0005]: the type `SentMessage` has a new required field `sender`"),
        "{out}"
    );
    assert!(out.contains("breaking.protocol:"), "{out}");

    let run = protolink(&["diff", seed, &broken]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("error[E0"));
}

/// Real frames typed with the generated direction unions, and frames the types must refuse.
const TS_CHECK: &str = r##"import * as skynet from "./skynet";
import * as sc from "./socketcluster";
import * as litecord from "./litecord";
import * as lce from "./litecord_example";
import * as clusterio from "./clusterio";
import * as chat from "./chat";

const open: skynet.ClientToServer = { type: "open", channel: 42 };
const result: skynet.ServerToClient = { channels: [42], type: "result", for: "open" };
const failed: skynet.ServerToClient = { type: "error", error: "Error: Channel 99 not open." };
const handshake: sc.ClientToServer = { event: "#handshake", data: { authToken: null }, cid: 1 };
const hello: litecord.ServerToClient = { op: 0, hb_interval: 500 };
const verdict: lce.ClientToServer = { op: 5, r: [false, "user not found"], n: "ab12cd34" };
const validate: lce.ServerToClient = { op: 4, w: "TOKEN_VALIDATE", a: ["dXNlcg.x.y"], n: "ab12cd34" };
const listed: clusterio.MasterToControl = {
  seq: 3,
  type: "list_slaves_response",
  data: { list: [{ agent: "probe", version: "2.0.0-alpha", id: 123, name: "Foo", connected: false }], seq: 2 },
};
const sent: chat.ClientToServer = { event: "sendMessage", data: { room: "lobby", text: "hi" }, cid: 9 };
const code: chat.CloseCode = chat.CloseCode.HandshakeRequired;
// SocketCluster batches: one frame holding several packets.
const batch: sc.ClientToServer = [
  { event: "#subscribe", data: { channel: "news" }, cid: 2 },
  { event: "#publish", data: { channel: "news", data: 1 } },
];
const packet: sc.ClientToServerPacket = { event: "#unsubscribe", data: "news", cid: 3 };
// The extension exports its base's types again.
const inherited: chat.SubscribeFrame = { event: "#subscribe", data: { channel: "x" }, cid: 4 };

// @ts-expect-error: `open` needs its channel
const noChannel: skynet.ClientToServer = { type: "open" };
// @ts-expect-error: the server sends no `open`
const wrongWay: skynet.ServerToClient = { type: "open", channel: 42 };
// @ts-expect-error: Clusterio frames hold no other keys
const extra: clusterio.ControlToMaster = { seq: 2, type: "list_slaves_request", data: {}, more: 1 };
// @ts-expect-error: HELLO's interval is a number
const wrongType: litecord.ServerToClient = { op: 0, hb_interval: "500" };
// @ts-expect-error: Skynet never batches
const skynetBatch: skynet.ClientToServer = [{ type: "open", channel: 42 }];
// @ts-expect-error: a batch holds packets, not batches
const nested: sc.ClientToServer = [[{ event: "#publish", data: { channel: "news" } }]];
// @ts-expect-error: a batch's packets are typed
const badPacket: sc.ClientToServer = [{ event: "#subscribe", data: { channel: 5 }, cid: 2 }];

export const frames = [open, result, failed, handshake, hello, verdict, validate, listed, sent, code,
  batch, packet, inherited, noChannel, wrongWay, extra, wrongType, skynetBatch, nested, badPacket];
"##;

#[test]
fn ts_types_compile_strictly_and_type_real_frames() {
    let tsc = workspace().join("interop/node_modules/typescript/bin/tsc");
    assert!(
        tsc.is_file(),
        "typescript is missing: run `npm ci --prefix interop` (scripts/test.sh does)"
    );
    let out = fresh("tools-ts");
    let run = protolink(&["ts", "protocol-defs", "--out", out.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::write(out.join("check.ts"), TS_CHECK).unwrap();
    let compiled = Command::new("node")
        .arg(&tsc)
        .args([
            "--strict",
            "--noEmit",
            "--target",
            "es2020",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            "check.ts",
        ])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "tsc: {}{}",
        String::from_utf8_lossy(&compiled.stdout),
        String::from_utf8_lossy(&compiled.stderr)
    );
}
