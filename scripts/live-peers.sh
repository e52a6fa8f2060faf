#!/usr/bin/env bash
# Re-records the conversation transcripts (interop/transcripts/) from the live real peers.
# Not run by CI: it needs the peers' repositories, Node (20) and npm.
#
# Usage:
#   scripts/live-peers.sh [SYSTEM...]            SYSTEM: skynet, socketcluster, socketcluster14, clusterio
#                                                (default: every system whose peer is available)
#   scripts/live-peers.sh skynet SKYNET_DIR=../skynet      VAR=VALUE arguments set the variables below
#
# Peers (environment variables or VAR=VALUE arguments):
#   SKYNET_DIR      a checkout of osmarks/skynet at commit b802d25 (git clone, then git checkout b802d25).
#   SKYNET_DEPS     a folder whose node_modules holds the server's runtime packages; default: installed
#                   into the work folder with `npm install express@4.16.3 express-ws@4.0.0 cors@2.8.4
#                   cuid@2.1.4 ws@6.0.0` (the checkout's own lockfile pins event-stream 3.3.6, which
#                   the registry no longer serves, so `npm ci` in the checkout fails).
#   SC14_DEPS       a folder whose node_modules holds socketcluster-server 14.x; default: installed into
#                   the work folder with `npm install socketcluster-server@14`.
#   CLUSTERIO_DIR   a checkout of clusterio/factorioClusterio at commit 677512512ece with its packages
#                   installed (`npm install --ignore-scripts` in it; Factorio is not needed).
#   WORK_DIR        where stubs, the small server apps and installs go (default: a new temporary folder,
#                   removed at the end unless KEEP_WORK=1).
#
# What it runs, all on 127.0.0.1:
#   skynet          server.js of the checkout (`node src/index.js`, PORT set), a fresh server for every
#                   scenario (its message log is global). `level` and `gitlog` are replaced by stubs
#                   written into WORK_DIR/skynet-stubs/node_modules and found through NODE_PATH:
#                   `level` returns an object with no-op methods (the server never uses the db),
#                   `gitlog` answers the abbreviated hash of the checkout's HEAD via git.
#                   Scenarios: interop/record/scenarios/skynet/*.json -> interop/transcripts/skynet/.
#   socketcluster   interop/node_modules' socketcluster-server 20.x and socketcluster14: 14.x, each
#                   running the small app WORK_DIR/sc-app.js written by this script (see sc_app below):
#                   procedures `sum` (a+b), `fail` (error MyError "nope" code 42), `nothing` (no
#                   data), `login` (socket.setAuthToken({user}) then reply without data), `logout`
#                   (socket.deauthenticate()), `kick` (socket.disconnect(4321, "bye")); event `shout`
#                   transmitted back as `shouted`; publishing to any channel allowed.
#                   Scenarios: interop/record/scenarios/socketcluster{,14}/*.json.
#   clusterio       master.js of the checkout (`node master.js --config CONFIG run`, run in the checkout,
#                   which it needs for its plugins), a fresh master with an empty database for every
#                   scenario. Its config (written by clusterio_config below) sets http_port, no https,
#                   and the auth secret interop-secret-0123456789, which signed the tokens in the
#                   scenarios (HS256, claims {"id":"api"}, no iat). The master at this commit has no
#                   bind-address option and listens on every interface: WORK_DIR/bind-loopback.js,
#                   preloaded with `node -r`, makes a listen on a bare port listen on 127.0.0.1.
#                   Scenarios: interop/record/scenarios/clusterio/*.json. Then the real slave
#                   (client.js, slave 1, no Factorio: its factorio_directory does not exist) and
#                   clusterctl talk to a fresh master through the recording proxy (one transcript,
#                   clusterio/real-slave-and-clusterctl.json): the slave registers; clusterctl runs
#                   create-instance, list-slaves, assign-instance, set-instance-config --field
#                   instance.name, list-instance-config, start-instance (fails with the slave's
#                   ENOENT); last, GET /metrics makes the master ask the slave for its metrics.
#
# The client side of every scenario is interop/record/record.js (needs `npm ci --prefix interop`).
# Transcripts recorded with real clients through the recording proxy (the Lua client, the web page,
# the PyPI SocketCluster clients, Litecord's rest-py) are not refreshed here: see
# interop/record/README.md for how they were made.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RECORD="$ROOT/interop/record/record.js"
SCEN="$ROOT/interop/record/scenarios"
OUT="$ROOT/interop/transcripts"

systems=()
for arg in "$@"; do
  case "$arg" in
    *=*) export "${arg%%=*}=${arg#*=}" ;;
    *) systems+=("$arg") ;;
  esac
done

if [ ! -d "$ROOT/interop/node_modules/ws" ]; then
  npm ci --prefix "$ROOT/interop" --no-audit --no-fund
fi

if [ -z "${WORK_DIR:-}" ]; then
  WORK_DIR="$(mktemp -d)"
  [ "${KEEP_WORK:-0}" = 1 ] || trap 'rm -rf "$WORK_DIR"' EXIT
fi
mkdir -p "$WORK_DIR"

pids=()
cleanup_pids() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; pids=(); }
trap 'cleanup_pids' INT TERM

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Waits (up to 10 s) until something accepts TCP connections on 127.0.0.1:$1.
wait_port() {
  local i
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# ---- Skynet --------------------------------------------------------------------------------------

skynet_stubs() {
  local dir="$WORK_DIR/skynet-stubs/node_modules"
  mkdir -p "$dir/level" "$dir/gitlog"
  cat > "$dir/level/index.js" <<'EOF'
// Stub of `level` for running skynet's server without the native leveldown build: the server only opens the db.
module.exports = () => ({ get() {}, put() {}, del() {}, close() {} })
EOF
  cat > "$dir/gitlog/index.js" <<'EOF'
// Stub of `gitlog`: the server only reads the abbreviated hash of the last commit for its banner.
const { execFileSync } = require("child_process")
module.exports = opts => [{ abbrevHash: execFileSync("git", ["-C", opts.repo, "log", "-1", "--format=%h"]).toString().trim() }]
EOF
}

skynet_deps() {
  if [ -n "${SKYNET_DEPS:-}" ]; then return; fi
  SKYNET_DEPS="$WORK_DIR/skynet-deps"
  if [ ! -d "$SKYNET_DEPS/node_modules/express-ws" ]; then
    mkdir -p "$SKYNET_DEPS"
    echo '{"name":"skynet-deps","private":true}' > "$SKYNET_DEPS/package.json"
    npm install --prefix "$SKYNET_DEPS" --no-audit --no-fund --ignore-scripts \
      express@4.16.3 express-ws@4.0.0 cors@2.8.4 cuid@2.1.4 ws@6.0.0
  fi
}

# Starts the real Skynet server; sets SKYNET_PORT and SKYNET_PID.
skynet_start() {
  SKYNET_PORT="$(free_port)"
  (cd "$SKYNET_DIR" && PORT="$SKYNET_PORT" \
    NODE_PATH="$WORK_DIR/skynet-stubs/node_modules:$SKYNET_DEPS/node_modules" \
    exec node src/index.js) > "$WORK_DIR/skynet.log" 2>&1 &
  SKYNET_PID=$!
  pids+=("$SKYNET_PID")
  wait_port "$SKYNET_PORT"
}

record_skynet() {
  : "${SKYNET_DIR:?set SKYNET_DIR to a checkout of osmarks/skynet at b802d25}"
  SKYNET_DIR="$(cd "$SKYNET_DIR" && pwd)"
  skynet_stubs
  skynet_deps
  local head
  head="$(git -C "$SKYNET_DIR" log -1 --format=%h)"
  local with="osmarks/skynet $head, src/index.js on Node $(node -e 'console.log(process.versions.node.split(".")[0])') (level and gitlog stubbed); the client side is interop/record"
  local f rc=0
  for f in "$SCEN"/skynet/*.json; do
    skynet_start
    node "$RECORD" client --url "ws://127.0.0.1:$SKYNET_PORT" --out-root "$OUT" \
      --recorded-with "$with" "$f" || rc=1
    kill "$SKYNET_PID" 2>/dev/null || true
    wait "$SKYNET_PID" 2>/dev/null || true
  done
  return $rc
}

# ---- SocketCluster -------------------------------------------------------------------------------

# The small server app for both socketcluster-server versions (its procedures are listed at the top).
sc_app() {
  cat > "$WORK_DIR/sc-app.js" <<'EOF'
// A tiny SocketCluster server app for recording transcripts, for socketcluster-server 14.x or 20.x.
//   node sc-app.js MODULE_DIR   (MODULE_DIR: a node_modules holding socketcluster-server)
// Prints `listening on ws://127.0.0.1:PORT/socketcluster/`. Procedures: sum {a,b} -> a+b;
// fail -> error {name: MyError, message: nope, code: 42}; nothing -> no data;
// login {user} -> socket.setAuthToken({user}) then reply without data; logout -> socket.deauthenticate();
// kick -> socket.disconnect(4321, "bye"). Event shout -> transmits `shouted` back with the data.
const http = require('http');
const path = require('path');
const scs = require(path.join(process.argv[2], 'socketcluster-server'));
const major = Number(require(path.join(process.argv[2], 'socketcluster-server/package.json')).version.split('.')[0]);
const httpServer = http.createServer();
const server = scs.attach(httpServer, { authKey: 'interop-secret', pingInterval: 8000, pingTimeout: 20000 });

const handlers = {
  sum: (socket, data) => data.a + data.b,
  fail: () => { const e = new Error('nope'); e.name = 'MyError'; e.code = 42; throw e; },
  nothing: () => undefined,
  login: (socket, data) => { socket.setAuthToken({ user: data.user }); return undefined; },
  logout: (socket) => { socket.deauthenticate(); return undefined; },
  kick: (socket) => { socket.disconnect(4321, 'bye'); return undefined; },
};

if (major >= 15) {
  (async () => {
    for await (const { socket } of server.listener('connection')) {
      for (const [name, handle] of Object.entries(handlers)) {
        (async () => {
          for await (const request of socket.procedure(name)) {
            try { const out = handle(socket, request.data); if (name !== 'kick') request.end(out); } catch (e) { request.error(e); }
          }
        })();
      }
      (async () => { for await (const data of socket.receiver('shout')) socket.transmit('shouted', data); })();
    }
  })();
} else {
  server.on('connection', (socket) => {
    for (const [name, handle] of Object.entries(handlers)) {
      socket.on(name, (data, res) => {
        try { const out = handle(socket, data); if (name !== 'kick') res(null, out); } catch (e) { res(e); }
      });
    }
    socket.on('shout', (data) => socket.emit('shouted', data));
  });
}
httpServer.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening on ws://127.0.0.1:${httpServer.address().port}/socketcluster/`);
});
EOF
}

# record_socketcluster 20|14: the same scenarios against each version; 14.x's transcripts get "-v14".
record_socketcluster() {
  local major=$1 modules suffix=""
  if [ "$major" = 20 ]; then
    modules="$ROOT/interop/node_modules"
  else
    suffix="-v14"
    if [ -z "${SC14_DEPS:-}" ]; then
      SC14_DEPS="$WORK_DIR/sc14"
      mkdir -p "$SC14_DEPS"
      echo '{"name":"sc14","private":true}' > "$SC14_DEPS/package.json"
      npm install --prefix "$SC14_DEPS" --no-audit --no-fund socketcluster-server@14
    fi
    modules="$SC14_DEPS/node_modules"
  fi
  sc_app
  local version
  version="$(node -e "console.log(require('$modules/socketcluster-server/package.json').version)")"
  local with="socketcluster-server $version on Node $(node -e 'console.log(process.versions.node.split(".")[0])'), running the small app of scripts/live-peers.sh (authKey interop-secret, pingInterval 8000, pingTimeout 20000); the client side is interop/record"
  local f rc=0 log="$WORK_DIR/sc-app.out" pid url i
  for f in "$SCEN"/socketcluster/*.json; do
    rm -f "$log"
    node "$WORK_DIR/sc-app.js" "$modules" > "$log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for i in $(seq 1 100); do grep -q '^listening on' "$log" 2>/dev/null && break; sleep 0.1; done
    url="$(sed -n 's|^listening on \(ws://[0-9.:]*\)/.*|\1|p' "$log")"
    node "$RECORD" client --url "$url" --out-root "$OUT" --suffix "$suffix" --recorded-with "$with" "$f" || rc=1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  return $rc
}

# ---- Clusterio -----------------------------------------------------------------------------------

clusterio_config() {
  local port=$1 db=$2
  cat > "$WORK_DIR/bind-loopback.js" <<'EOF2'
// Makes a server listening on a bare port listen on 127.0.0.1 (the 2020-03 master has no bind option).
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^[0-9]+$/.test(args[0]))) {
    const cb = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
    return listen.call(this, Number(args[0]), '127.0.0.1', ...(cb ? [cb] : []));
  }
  return listen.apply(this, args);
};
EOF2
  cat > "$WORK_DIR/clusterio-master.json" <<EOF2
{"groups": [
  {"name": "master", "fields": {"database_directory": "$db", "factorio_directory": "factorio",
   "http_port": $port, "https_port": null, "tls_certificate": "database/certificates/cert.crt",
   "tls_private_key": "database/certificates/cert.key", "auth_secret": "interop-secret-0123456789"}},
  {"name": "global_chat", "fields": {"enabled": true}},
  {"name": "research_sync", "fields": {"enabled": true}},
  {"name": "statistics_exporter", "fields": {"enabled": true}},
  {"name": "subspace_storage", "fields": {"enabled": true, "autosave_interval": 60,
   "division_method": "simple", "log_item_transfers": false}}
]}
EOF2
}

# Starts the real master with an empty database; sets CLUSTERIO_PORT and CLUSTERIO_PID.
clusterio_start() {
  CLUSTERIO_PORT="$(free_port)"
  local db="$WORK_DIR/clusterio-db-$CLUSTERIO_PORT"
  clusterio_config "$CLUSTERIO_PORT" "$db"
  (cd "$CLUSTERIO_DIR" && exec node -r "$WORK_DIR/bind-loopback.js" master.js \
    --config "$WORK_DIR/clusterio-master.json" run) > "$WORK_DIR/clusterio-master.log" 2>&1 &
  CLUSTERIO_PID=$!
  pids+=("$CLUSTERIO_PID")
  wait_port "$CLUSTERIO_PORT"
}

record_clusterio() {
  : "${CLUSTERIO_DIR:?set CLUSTERIO_DIR to a checkout of clusterio/factorioClusterio at 677512512ece}"
  CLUSTERIO_DIR="$(cd "$CLUSTERIO_DIR" && pwd)"
  local head
  head="$(git -C "$CLUSTERIO_DIR" log -1 --format=%h 2>/dev/null || echo 677512512ece)"
  local with="clusterio/factorioClusterio $head, master.js on Node $(node -e 'console.log(process.versions.node.split(".")[0])') (bound to 127.0.0.1); the client side is interop/record"
  local f rc=0
  for f in "$SCEN"/clusterio/*.json; do
    clusterio_start
    node "$RECORD" client --url "ws://127.0.0.1:$CLUSTERIO_PORT" --out-root "$OUT" --timeout 15000 \
      --recorded-with "$with" "$f" || rc=1
    kill "$CLUSTERIO_PID" 2>/dev/null || true
    wait "$CLUSTERIO_PID" 2>/dev/null || true
  done
  clusterio_real_peers "${with%%;*}" || rc=1
  return $rc
}

# The real slave and clusterctl against the real master, through the recording proxy.
clusterio_real_peers() {
  local with="$1, with its slave (client.js) and clusterctl, through the recording proxy" rc=0
  local token="eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6ImFwaSJ9.8xhtA9sgnOq7g_h14JNt1OSIqVeNkCwyPe1IZbD5r1w"
  local log="$WORK_DIR/clusterio-proxy.log" url i
  clusterio_start
  rm -f "$log"
  node "$RECORD" proxy --upstream "ws://127.0.0.1:$CLUSTERIO_PORT" --protocol clusterio \
    --out "$OUT/clusterio/real-slave-and-clusterctl.json" --real client --stdin-stop no \
    --scenario real-slave-and-clusterctl --recorded-with "$with" \
    --about "The real slave and clusterctl against the real master: registration and update_instances, create-instance, list-slaves, assign-instance, set-instance-config --field instance.name (pushed to the slave), list-instance-config, start-instance failing with the slave's ENOENT (no Factorio), and last the master's statistics_exporter:get_metrics_request (GET /metrics)." \
    > "$log" 2>&1 &
  local proxy=$!
  pids+=("$proxy")
  for i in $(seq 1 100); do grep -q '^proxy listening' "$log" 2>/dev/null && break; sleep 0.1; done
  url="$(sed -n 's|^proxy listening on ws://\(.*\)$|http://\1/|p' "$log")"
  cat > "$WORK_DIR/clusterio-slave.json" <<EOF2
{"groups": [{"name": "slave", "fields": {"name": "one", "id": 1, "factorio_directory": "factorio-absent",
  "instances_directory": "$WORK_DIR/clusterio-instances", "master_url": "$url",
  "master_token": "$token", "public_address": "localhost"}}]}
EOF2
  cat > "$WORK_DIR/clusterio-control.json" <<EOF2
{"groups": [{"name": "control", "fields": {"master_url": "$url", "master_token": "$token"}}]}
EOF2
  (cd "$CLUSTERIO_DIR" && exec node client.js --config "$WORK_DIR/clusterio-slave.json" start) \
    > "$WORK_DIR/clusterio-slave.log" 2>&1 &
  local slave=$!
  pids+=("$slave")
  for i in $(seq 1 100); do grep -q 'received ready' "$WORK_DIR/clusterio-slave.log" 2>/dev/null && break; sleep 0.1; done
  ctl() { (cd "$CLUSTERIO_DIR" && node clusterctl.js --config "$WORK_DIR/clusterio-control.json" "$@") >> "$WORK_DIR/clusterio-ctl.log" 2>&1; }
  ctl create-instance --name alpha --id 7 || rc=1
  ctl list-slaves || rc=1
  ctl assign-instance --instance 7 --slave 1 || rc=1
  ctl set-instance-config --instance 7 --field instance.name --value beta || rc=1
  ctl list-instance-config --instance 7 || rc=1
  ctl start-instance --instance 7 && rc=1   # fails: no Factorio
  # Last, so that the frames after it are numbered alike by a master that never asks.
  curl -s "http://127.0.0.1:$CLUSTERIO_PORT/metrics" > /dev/null || rc=1
  kill -INT "$slave" 2>/dev/null || true
  wait "$slave" 2>/dev/null || true
  sleep 0.5
  kill "$proxy" 2>/dev/null || true
  wait "$proxy" 2>/dev/null || true
  kill "$CLUSTERIO_PID" 2>/dev/null || true
  wait "$CLUSTERIO_PID" 2>/dev/null || true
  return $rc
}

# ---- main ----------------------------------------------------------------------------------------

if [ ${#systems[@]} -eq 0 ]; then
  [ -n "${SKYNET_DIR:-}" ] && systems+=(skynet)
  systems+=(socketcluster)
  [ -n "${SC14_DEPS:-}" ] && systems+=(socketcluster14)
  [ -n "${CLUSTERIO_DIR:-}" ] && systems+=(clusterio)
fi

status=0
for system in "${systems[@]}"; do
  echo "== $system"
  case "$system" in
    skynet) record_skynet || status=1 ;;
    socketcluster) record_socketcluster 20 || status=1 ;;
    socketcluster14) record_socketcluster 14 || status=1 ;;
    clusterio) record_clusterio || status=1 ;;
    *) echo "unknown system $system" >&2; status=2 ;;
  esac
done
cleanup_pids
exit $status
