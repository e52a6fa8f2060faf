#!/usr/bin/env node
// Records conversations with real peers as transcripts (see ../transcripts/README.md).
//
// Scripted client: runs scenario files against a server and writes one transcript per scenario.
//
//   node record.js client --url ws://127.0.0.1:PORT --out-root DIR [--recorded-with TEXT]
//                         [--quiet MS] [--timeout MS] [--partial yes] [--suffix TEXT] SCENARIO.json...
//
//   A scenario file is either a JSON list of steps or an object
//     {"protocol": P, "scenario": NAME, "about": TEXT, "mask": [KEY...],
//      "prefix": {KEY: BEGINNING}, "steps": [...]}
//   (protocol and scenario default to the file's folder and name; --suffix is appended to the
//   scenario's name, e.g. to record the same scenarios from two versions of a server). Steps:
//     {"conn": C, "connect": PATH}             open a WebSocket (URL's origin + PATH)
//     {"conn": C, "connect": PATH, "headers": {...}, "protocols": [...]}
//     {"conn": C, "send": TEXT}                send a text frame; "send_binary" for a binary one
//     {"conn": C, "send_json": VALUE}          send JSON.stringify(VALUE) as text
//     {"conn": C, "close": CODE, "reason": R}  close (CODE null: close without a status code)
//     {"conn": C, "expect": N}                 wait for N more frames (a close counts) on C
//     {"quiet": MS}                            wait until no frame arrived on any connection for MS
//   After the last step the recorder waits for a quiet period, then closes with 1000 every
//   connection still open (recorded as a `close` step). Every frame and close the server sent is
//   recorded, in the order it arrived. Values under a key named in "mask" (any depth) become
//   "$masked:string" / "$masked:number" (other JSON types are kept); a string under a key named in
//   "prefix" that starts with the given beginning becomes "$prefix:BEGINNING".
//   The transcript goes to OUT-ROOT/PROTOCOL/SCENARIO.json. A scenario that fails (a timeout, a step
//   on a connection the server closed) writes nothing, unless --partial yes (for comparing servers):
//   then what happened up to the failure is written, with "incomplete": the error.
//
// Recording proxy: forwards every connection to an upstream server and writes what went both ways.
//
//   node record.js proxy --upstream ws://127.0.0.1:PORT [--port N] --protocol P
//                        (--out FILE | --out-dir DIR [--name-prefix NAME])
//                        [--real client|server] [--scenario NAME] [--about TEXT]
//                        [--recorded-with TEXT] [--mask KEYS] [--mask-client KEYS]
//                        [--prefix KEY=BEGINNING] [--serve URLPREFIX=DIR] [--rewrite FROM=TO]
//                        [--connections N] [--events yes] [--stdin-stop no]
//
//   Listens on 127.0.0.1 (port 0 unless --port) and prints `proxy listening on ws://127.0.0.1:PORT`
//   first. A connection to PATH is forwarded to the upstream's origin + PATH. With --out-dir every
//   connection is written as NAME-N.json when it ends; with --out all connections go into one
//   transcript, written when the proxy gets SIGINT/SIGTERM or its stdin ends, or (with
//   --connections N) once N connections have ended. --mask masks the
//   server's frames, --mask-client the client's. When the real side is the client and the server
//   spoke first on a connection, its frames are written as server_send/server_recv. Plain HTTP
//   requests are forwarded to the upstream too (or served from DIR under URLPREFIX with --serve, the
//   first matching prefix winning; a folder serves its index.html);
//   --rewrite replaces a text in forwarded HTML bodies (to point a page at locally served scripts).
//   --events yes prints every recorded step as a JSON line (for drivers that wait on frames);
//   --stdin-stop no keeps the proxy running when its stdin ends.
'use strict';

const fs = require('fs');
const path = require('path');
const http = require('http');
const WebSocket = require('ws');

function usage(message) {
  if (message) console.error(message);
  console.error('usage: record.js client --url URL --out-root DIR SCENARIO.json...');
  console.error('       record.js proxy --upstream URL --protocol P (--out FILE | --out-dir DIR)');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { _: [], mask: [], maskClient: [], prefix: {}, serve: [], rewrite: [] };
  const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) { opts._.push(arg); continue; }
    const value = argv[++i];
    if (value === undefined) usage(`${arg} needs a value`);
    switch (arg) {
      case '--mask': opts.mask.push(...list(value)); break;
      case '--mask-client': opts.maskClient.push(...list(value)); break;
      case '--prefix': { const [k, ...b] = value.split('='); opts.prefix[k] = b.join('='); break; }
      case '--serve': { const [p, ...d] = value.split('='); opts.serve.push([p, d.join('=')]); break; }
      case '--rewrite': { const [f, ...t] = value.split('='); opts.rewrite.push([f, t.join('=')]); break; }
      default: opts[arg.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = value;
    }
  }
  return opts;
}

// ---- masking ---------------------------------------------------------------------------------

function maskValue(value, mask, prefix, state) {
  if (Array.isArray(value)) return value.map((v) => maskValue(v, mask, prefix, state));
  if (value === null || typeof value !== 'object') return value;
  const out = {};
  for (const [k, v] of Object.entries(value)) {
    if (mask.has(k) && (typeof v === 'string' || typeof v === 'number')) {
      out[k] = `$masked:${typeof v}`;
      state.changed = true;
    } else if (typeof v === 'string' && Object.prototype.hasOwnProperty.call(prefix, k) && v.startsWith(prefix[k])) {
      out[k] = `$prefix:${prefix[k]}`;
      state.changed = true;
    } else {
      out[k] = maskValue(v, mask, prefix, state);
    }
  }
  return out;
}

// Returns the frame text with masked values; the exact text when nothing was masked.
function maskText(text, mask, prefix) {
  if (mask.size === 0 && Object.keys(prefix).length === 0) return text;
  let value;
  try { value = JSON.parse(text); } catch (_) { return text; }
  const state = { changed: false };
  const masked = maskValue(value, mask, prefix, state);
  return state.changed ? JSON.stringify(masked) : text;
}

function frameText(data, isBinary) {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return String(data);
}

function writeTranscript(file, transcript) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const lines = transcript.steps.map((s) => '    ' + JSON.stringify(s));
  const head = Object.entries(transcript)
    .filter(([k, v]) => k !== 'steps' && v !== undefined)
    .map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
  const text = `{\n${head.join(',\n')},\n  "steps": [\n${lines.join(',\n')}\n  ]\n}\n`;
  fs.writeFileSync(file, text);
}

// ---- scripted client -------------------------------------------------------------------------

class Recorder {
  constructor() {
    this.steps = [];
    this.lastActivity = Date.now();
    this.waiters = new Set();
  }
  push(step) {
    this.steps.push(step);
    this.lastActivity = Date.now();
    for (const w of [...this.waiters]) w();
  }
}

function closeStep(key, code, reason) {
  // 1005: a close frame without a status code; 1006: no close frame at all (written as null).
  const step = { [key]: code === 1006 ? null : code };
  if (step[key] !== null && step[key] !== 1005 && reason) step.reason = reason;
  return step;
}

async function runScenario(file, opts) {
  const raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  const scenario = Array.isArray(raw) ? { steps: raw } : raw;
  const protocol = scenario.protocol || path.basename(path.dirname(file));
  const name = (scenario.scenario || path.basename(file, '.json')) + (opts.suffix || '');
  const mask = new Set(scenario.mask || opts.mask);
  const prefix = scenario.prefix || opts.prefix;
  const timeoutMs = Number(opts.timeout || 5000);
  const quietMs = Number(opts.quiet || 300);
  const origin = new URL(opts.url);
  const rec = new Recorder();
  const conns = new Map();

  const waitFor = (pred, what) => new Promise((resolve, reject) => {
    if (pred()) return resolve();
    const timer = setTimeout(() => { rec.waiters.delete(check); reject(new Error(`${file}: timed out waiting for ${what}`)); }, timeoutMs);
    const check = () => { if (pred()) { clearTimeout(timer); rec.waiters.delete(check); resolve(); } };
    rec.waiters.add(check);
  });
  const waitQuiet = (ms) => new Promise((resolve) => {
    const tick = () => {
      const idle = Date.now() - rec.lastActivity;
      if (idle >= ms) resolve(); else setTimeout(tick, ms - idle);
    };
    tick();
  });

  let failure = null;
  for (const step of scenario.steps) {
    if (failure) break;
    try { await runStep(step); } catch (err) { failure = err; }
  }
  async function runStep(step) {
    if (step.quiet !== undefined) { await waitQuiet(step.quiet); return; }
    const c = step.conn;
    if (step.connect !== undefined) {
      const url = `${origin.protocol}//${origin.host}${step.connect}`;
      const ws = new WebSocket(url, step.protocols || [], { headers: step.headers || {} });
      const conn = { ws, received: 0, consumed: 0, open: false, done: false, clientClosed: false };
      conns.set(c, conn);
      rec.push({ conn: c, connect: step.connect });
      const connectStep = rec.steps[rec.steps.length - 1];
      // Handlers first: a server that speaks first (Clusterio's hello) can send its frame in the
      // same packet as the upgrade response, and ws emits it right after 'open'.
      ws.on('message', (data, isBinary) => {
        const text = maskText(frameText(data, isBinary), mask, prefix);
        conn.received++;
        rec.push({ conn: c, [isBinary ? 'recv_binary' : 'recv']: text });
      });
      ws.on('close', (code, reason) => {
        if (connectStep.status !== undefined) return; // the upgrade was refused
        conn.done = true;
        if (!conn.clientClosed) {
          conn.received++;
          rec.push(Object.assign({ conn: c }, closeStep('closed', code, reason.toString())));
        } else {
          rec.push({ _internal: true });
        }
      });
      await new Promise((resolve, reject) => {
        ws.on('open', () => { conn.open = true; resolve(); });
        ws.on('unexpected-response', (req, res) => {
          connectStep.status = res.statusCode;
          conn.done = true;
          res.resume();
          req.destroy();
          resolve();
        });
        ws.on('error', (err) => { if (!conn.open && !conn.done) reject(err); });
      });
      return;
    }
    const conn = conns.get(c);
    if (!conn) throw new Error(`${file}: step on unknown connection ${c}`);
    if (conn.done && step.expect === undefined) throw new Error(`${file}: connection ${c} is closed (${JSON.stringify(step)})`);
    if (step.send !== undefined || step.send_json !== undefined) {
      const text = step.send !== undefined ? step.send : JSON.stringify(step.send_json);
      rec.push({ conn: c, send: text });
      conn.ws.send(text, { binary: false });
    } else if (step.send_binary !== undefined) {
      rec.push({ conn: c, send_binary: step.send_binary });
      conn.ws.send(Buffer.from(step.send_binary, 'utf8'), { binary: true });
    } else if (step.close !== undefined) {
      if (conn.done) throw new Error(`${file}: connection ${c} already closed by the server`);
      conn.clientClosed = true;
      const s = { conn: c, close: step.close };
      if (step.reason) s.reason = step.reason;
      rec.push(s);
      if (step.close === null) conn.ws.close(); else conn.ws.close(step.close, step.reason || '');
    } else if (step.expect !== undefined) {
      const target = conn.consumed + step.expect;
      await waitFor(() => conn.received >= target, `${step.expect} frame(s) on ${c}`);
      conn.consumed = target;
    } else {
      throw new Error(`${file}: unknown step ${JSON.stringify(step)}`);
    }
  }
  await waitQuiet(quietMs);
  for (const [c, conn] of conns) {
    if (!conn.done && !conn.clientClosed) {
      conn.clientClosed = true;
      rec.push({ conn: c, close: 1000 });
      conn.ws.close(1000);
    }
  }
  await Promise.all([...conns.values()].map((conn) => conn.done ? null
    : new Promise((resolve) => { conn.ws.once('close', resolve); setTimeout(() => { conn.ws.terminate(); resolve(); }, timeoutMs); })));

  const transcript = {
    protocol,
    scenario: name,
    real: 'server',
    recorded_with: scenario.recorded_with || opts.recordedWith || 'the client side is interop/record',
    about: scenario.about || '',
    steps: rec.steps.filter((s) => !s._internal),
  };
  if (failure && opts.partial !== 'yes') throw failure;
  if (failure) transcript.incomplete = failure.message;
  const out = path.join(opts.outRoot, protocol, `${name}.json`);
  writeTranscript(out, transcript);
  console.log(`wrote ${out} (${transcript.steps.length} steps)`);
}

async function clientMain(opts) {
  if (!opts.url || !opts.outRoot || opts._.length === 0) usage('client needs --url, --out-root and scenario files');
  let failed = 0;
  for (const file of opts._) {
    try { await runScenario(file, opts); } catch (err) { failed++; console.error(`FAILED ${file}: ${err.message}`); }
  }
  process.exit(failed ? 1 : 0);
}

// ---- recording proxy -------------------------------------------------------------------------

function proxyMain(opts) {
  if (!opts.upstream || !opts.protocol || !(opts.out || opts.outDir)) usage('proxy needs --upstream, --protocol and --out or --out-dir');
  const upstream = new URL(opts.upstream);
  const real = opts.real || 'client';
  const maskServer = new Set(opts.mask);
  const maskClient = new Set(opts.maskClient);
  const all = []; // [{name, steps, serverFirst}]
  let counter = 0;
  let pending = 0;

  const meta = (scenario) => ({
    protocol: opts.protocol,
    scenario,
    real,
    recorded_with: opts.recordedWith || 'recorded through interop/record/record.js proxy',
    about: opts.about || '',
  });

  // Rewrites send/recv into server_send/server_recv for a connection on which the server spoke first.
  const finalSteps = (conn) => {
    if (!(real === 'client' && conn.serverFirst)) return conn.steps;
    return conn.steps.map((s) => {
      if (s.recv !== undefined) { const { recv, ...rest } = s; return { ...rest, server_send: recv }; }
      if (s.recv_binary !== undefined) { const { recv_binary, ...rest } = s; return { ...rest, server_send_binary: recv_binary }; }
      if (s.send !== undefined) { const { send, ...rest } = s; return { ...rest, server_recv: send }; }
      if (s.send_binary !== undefined) { const { send_binary, ...rest } = s; return { ...rest, server_recv_binary: send_binary }; }
      return s;
    });
  };

  const writeAll = () => {
    if (!opts.out) return;
    // All connections' steps, in the order they happened.
    const steps = all.flatMap((conn) => finalSteps(conn).map((s) => [s._t, s]))
      .sort((a, b) => a[0] - b[0]).map(([, s]) => { const { _t, ...rest } = s; return rest; });
    writeTranscript(opts.out, { ...meta(opts.scenario || path.basename(opts.out, '.json')), steps });
    console.log(`wrote ${opts.out} (${steps.length} steps)`);
  };

  let seq = 0;
  const server = http.createServer((req, res) => {
    for (const [prefix, dir] of opts.serve) {
      if (req.url.startsWith(prefix)) {
        let file = path.join(dir, decodeURIComponent(req.url.slice(prefix.length).split('?')[0]));
        if (!file.startsWith(path.resolve(dir))) { res.writeHead(403); res.end(); return; }
        if (file.endsWith(path.sep) || file === path.resolve(dir)) file = path.join(file, 'index.html');
        fs.readFile(file, (err, body) => {
          if (err) { res.writeHead(404); res.end(); return; }
          const html = file.endsWith('.html');
          if (html) {
            let text = body.toString('utf8');
            for (const [from, to] of opts.rewrite) text = text.split(from).join(to);
            body = Buffer.from(text, 'utf8');
          }
          res.writeHead(200, { 'content-type': html ? 'text/html' : file.endsWith('.js') ? 'application/javascript' : 'application/octet-stream' });
          res.end(body);
        });
        return;
      }
    }
    const up = http.request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (upRes) => {
      const chunks = [];
      upRes.on('data', (d) => chunks.push(d));
      upRes.on('end', () => {
        let body = Buffer.concat(chunks);
        const headers = { ...upRes.headers };
        if (/text\/html/.test(headers['content-type'] || '') && opts.rewrite.length) {
          let text = body.toString('utf8');
          for (const [from, to] of opts.rewrite) text = text.split(from).join(to);
          body = Buffer.from(text, 'utf8');
          headers['content-length'] = String(body.length);
          delete headers.etag;
        }
        res.writeHead(upRes.statusCode, headers);
        res.end(body);
      });
    });
    up.on('error', () => { res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  const wss = new WebSocket.Server({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    const name = `${opts.namePrefix || 'conn'}-${++counter}`;
    const connName = opts.out ? `c${counter}` : 'a';
    const conn = { name, steps: [], serverFirst: false, anyFrame: false, ended: false };
    all.push(conn);
    pending++;
    const push = (step) => {
      step._t = ++seq;
      conn.steps.push({ conn: connName, ...step });
      if (opts.events === 'yes') { const { _t, ...shown } = step; console.log(JSON.stringify({ conn: connName, ...shown })); }
    };
    const url = `${upstream.protocol}//${upstream.host}${req.url}`;
    const protocols = (req.headers['sec-websocket-protocol'] || '').split(',').map((s) => s.trim()).filter(Boolean);
    const up = new WebSocket(url, protocols);
    const clientQueue = [];
    let client = null;
    let clientClosing = false;
    let upClosing = false;
    const finish = () => {
      if (conn.ended) return;
      conn.ended = true;
      pending--;
      if (opts.outDir) {
        const file = path.join(opts.outDir, `${name}.json`);
        const steps = finalSteps(conn).map(({ _t, ...rest }) => rest);
        writeTranscript(file, { ...meta(name), steps });
        console.log(`wrote ${file} (${steps.length} steps)`);
      }
      if (opts.connections && all.length >= Number(opts.connections) && all.every((x) => x.ended)) stop();
    };
    push({ connect: req.url });
    up.on('unexpected-response', (upReq, upRes) => {
      conn.steps[0].status = upRes.statusCode;
      socket.write(`HTTP/1.1 ${upRes.statusCode} ${upRes.statusMessage}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      socket.destroy();
      upReq.destroy();
      finish();
    });
    up.on('error', (err) => { if (!client) { socket.destroy(); finish(); } else console.error(`${name}: upstream error ${err.message}`); });
    up.on('open', () => {
      wss.handleUpgrade(req, socket, head, (ws) => {
        client = ws;
        ws.on('message', (data, isBinary) => {
          const text = frameText(data, isBinary);
          if (!conn.anyFrame) conn.anyFrame = true;
          push({ [isBinary ? 'send_binary' : 'send']: maskText(text, maskClient, {}) });
          if (up.readyState === WebSocket.OPEN) up.send(data, { binary: isBinary });
        });
        ws.on('close', (code, reason) => {
          if (!upClosing) {
            clientClosing = true;
            push(closeStep('close', code, reason.toString()));
            if (up.readyState === WebSocket.OPEN) {
              if (code === 1005 || code === 1006) up.close(); else up.close(code, reason);
            } else if (up.readyState === WebSocket.CONNECTING) up.terminate();
          }
          if (up.readyState === WebSocket.CLOSED) finish();
        });
        ws.on('error', (err) => console.error(`${name}: client error ${err.message}`));
        for (const [data, isBinary] of clientQueue) ws.send(data, { binary: isBinary });
      });
    });
    up.on('message', (data, isBinary) => {
      const text = frameText(data, isBinary);
      if (!conn.anyFrame) { conn.anyFrame = true; conn.serverFirst = true; }
      push({ [isBinary ? 'recv_binary' : 'recv']: maskText(text, maskServer, opts.prefix) });
      if (client && client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
      else if (!client) clientQueue.push([data, isBinary]);
    });
    up.on('close', (code, reason) => {
      if (!clientClosing && client) {
        upClosing = true;
        push(closeStep('closed', code, reason.toString()));
        if (client.readyState === WebSocket.OPEN) {
          if (code === 1005 || code === 1006) client.terminate(); else client.close(code, reason);
        }
      }
      if (!client || client.readyState === WebSocket.CLOSED) finish();
      else client.once('close', finish);
    });
  });
  server.listen(Number(opts.port || 0), '127.0.0.1', () => {
    console.log(`proxy listening on ws://127.0.0.1:${server.address().port}`);
  });
  let stopping = false;
  function stop() {
    if (stopping) return;
    stopping = true;
    writeAll();
    process.exit(0);
  }
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  if (opts.stdinStop !== 'no') { process.stdin.on('end', stop); process.stdin.resume(); }
}

const opts = parseArgs(process.argv.slice(2));
const mode = opts._.shift();
if (mode === 'client') clientMain(opts);
else if (mode === 'proxy') proxyMain(opts);
else usage();
