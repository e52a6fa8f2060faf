#!/usr/bin/env bash
# Runs every test of the workspace. On a fresh machine it first installs what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

# The SocketCluster interop tests run the real socketcluster-server (20.x and 14.x) and -client
# (Node 20+); the schema tests validate frames with ajv, parse AsyncAPI documents with
# @asyncapi/parser, compile the TypeScript types and clients with tsc, run the clients with
# ws as their WebSocket and drive a page built on them in Chromium with puppeteer-core (which
# downloads no browser). All are pinned by
# interop/package-lock.json (installed again when a package it pins is missing).
if [ ! -d interop/node_modules/socketcluster-server-14 ] || [ ! -d interop/node_modules/ws ] \
    || [ ! -d interop/node_modules/ajv ] || [ ! -d interop/node_modules/@asyncapi/parser ] \
    || [ ! -d interop/node_modules/typescript ] || [ ! -d interop/node_modules/puppeteer-core ]; then
    npm ci --prefix interop --no-audit --no-fund
fi

# The cluster tests (cli/tests/reference/cluster.rs) start their own redis-server, Debian's; the
# browser test (cli/tests/reference/ts_client.rs) runs Debian's chromium headless.
if ! command -v redis-server >/dev/null || ! command -v chromium >/dev/null; then
    apt-get update -qq
    command -v redis-server >/dev/null || apt-get install -y -qq redis-server
    command -v chromium >/dev/null || apt-get install -y -qq chromium
fi

cargo test --workspace --locked
# The generated-code snapshots must match what the generator writes today (UPDATE_SNAPSHOTS=1
# rewrites them); the test above checks it, and the docs build must be warning-free.
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked --quiet
