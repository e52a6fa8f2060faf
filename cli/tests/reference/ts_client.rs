//! The generated TypeScript clients against the reference servers: `protolink ts` output and
//! `ts/test/live.ts` compiled with `tsc --strict`, then run by Node (with the `ws` package as its
//! WebSocket) against `protolink serve skynet | litecord | socketcluster`, which the script
//! starts on 127.0.0.1 port 0 and restarts on the same port for the reconnect.

use std::process::Command;

use super::tools::{fresh, protolink, workspace};

#[test]
fn ts_clients_talk_to_the_reference_servers() {
    let root = workspace();
    let modules = root.join("interop/node_modules");
    let tsc = modules.join("typescript/bin/tsc");
    assert!(
        tsc.is_file() && modules.join("ws").is_dir(),
        "typescript or ws is missing: run `npm ci --prefix interop` (scripts/test.sh does)"
    );
    let out = fresh("ts-clients");
    let run = protolink(&["ts", "protocol-defs", "--out", out.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::copy(root.join("ts/test/live.ts"), out.join("live.ts")).unwrap();
    let compiled = Command::new("node")
        .arg(&tsc)
        .args([
            "--strict",
            "--target",
            "es2022",
            "--module",
            "es2022",
            "--moduleResolution",
            "bundler",
            "--outDir",
            "js",
            "live.ts",
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
    // Node reads the compiled files as ES modules.
    std::fs::write(out.join("js/package.json"), "{\"type\": \"module\"}\n").unwrap();
    let live = Command::new("node")
        .arg("js/live.js")
        .env("PROTOLINK_BIN", env!("CARGO_BIN_EXE_protolink"))
        .env("WS_MODULE", modules.join("ws/wrapper.mjs"))
        .current_dir(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&live.stdout);
    assert!(
        live.status.success(),
        "live.ts failed:\n{stdout}{}",
        String::from_utf8_lossy(&live.stderr)
    );
    for protocol in ["skynet:", "litecord:", "socketcluster:", "clusterio:"] {
        assert!(
            stdout.contains(protocol),
            "{protocol} did not run: {stdout}"
        );
    }
}
