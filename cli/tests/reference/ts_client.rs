//! The generated TypeScript clients, run: `protolink ts` output and a script of `ts/test/`
//! compiled with `tsc --strict`, then run by Node.
//!
//! - `live.ts`: the clients (with the `ws` package as their WebSocket) against `protolink serve
//!   skynet | litecord | socketcluster | clusterio`, which the script starts on 127.0.0.1 port 0
//!   and restarts on the same port for the reconnect.
//! - `runtime.ts`: the runtime's reading of what a peer sends (binary frames, sequence numbers,
//!   `strict`, the `invalid` rules and their close codes) and a first connect retried, over an
//!   in-memory socket.
//! - `browser.ts`: `page.ts` in headless Chromium (driven with puppeteer-core), on the browser's
//!   own WebSocket, against the Skynet and SocketCluster reference servers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::tools::{fresh, protolink, workspace};

/// A fresh folder holding `protolink ts protocol-defs` output and `scripts` (with the harness
/// the scripts share), compiled into `js/`.
fn compiled(name: &str, scripts: &[&str]) -> PathBuf {
    let root = workspace();
    let modules = root.join("interop/node_modules");
    let tsc = modules.join("typescript/bin/tsc");
    assert!(
        tsc.is_file() && modules.join("ws").is_dir() && modules.join("puppeteer-core").is_dir(),
        "typescript, ws or puppeteer-core is missing: run `npm ci --prefix interop` (scripts/test.sh does)"
    );
    let out = fresh(name);
    let run = protolink(&["ts", "protocol-defs", "--out", out.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for file in scripts.iter().chain(&["harness.ts"]) {
        std::fs::copy(root.join("ts/test").join(file), out.join(file)).unwrap();
    }
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
        ])
        .args(scripts)
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
    out
}

/// Runs `js/SCRIPT.js` in `dir` with Node, and asserts that it passed and printed each of
/// `lines`' starts.
fn node(dir: &Path, script: &str, env: &[(&str, &Path)], lines: &[&str]) -> Output {
    let mut command = Command::new("node");
    command
        .arg(format!("js/{script}.js"))
        .env("PROTOLINK_BIN", env!("CARGO_BIN_EXE_protolink"))
        .current_dir(dir);
    for (key, value) in env {
        command.env(key, value);
    }
    let run = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{script}.ts failed:\n{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for line in lines {
        assert!(stdout.contains(line), "{line} did not run: {stdout}");
    }
    run
}

#[test]
fn ts_clients_talk_to_the_reference_servers() {
    let dir = compiled("ts-clients", &["live.ts"]);
    let ws = workspace().join("interop/node_modules/ws/wrapper.mjs");
    node(
        &dir,
        "live",
        &[("WS_MODULE", &ws)],
        &["skynet:", "litecord:", "socketcluster:", "clusterio:"],
    );
}

#[test]
fn ts_runtime_reads_what_peers_send_as_the_rust_link_does() {
    let dir = compiled("ts-runtime", &["runtime.ts"]);
    node(
        &dir,
        "runtime",
        &[],
        &[
            "binary:",
            "invalid:",
            "sequence:",
            "connect:",
            "payloads:",
            "hostile:",
        ],
    );
}

/// Chromium: `CHROMIUM` when set, else `chromium` on the `PATH` (Debian's package).
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("chromium"))
                .find(|path| path.is_file())
        })
        .expect("chromium is missing: install Debian's `chromium` (scripts/test.sh does)")
}

#[test]
fn ts_clients_run_in_headless_chromium() {
    let dir = compiled("ts-browser", &["browser.ts", "page.ts"]);
    std::fs::copy(workspace().join("ts/test/page.html"), dir.join("page.html")).unwrap();
    let puppeteer =
        workspace().join("interop/node_modules/puppeteer-core/lib/esm/puppeteer/puppeteer-core.js");
    let shot = dir.join("page.png");
    node(
        &dir,
        "browser",
        &[
            ("PUPPETEER_MODULE", &puppeteer),
            ("CHROMIUM", &chromium()),
            ("SCREENSHOT", &shot),
        ],
        &[
            "page: skynet: the other client hears the message",
            "browser:",
        ],
    );
    assert!(shot.is_file(), "no screenshot of the page");
}
