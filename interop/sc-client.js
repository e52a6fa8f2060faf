#!/usr/bin/env node
// The real socketcluster-client 20.x, running a scripted scenario for protolink's interop tests.
//
//   node sc-client.js URL [--protocol-version 1|2] [--stay MS] [--timeout MS]
//
// Prints one JSON line per step ({"step": NAME, ...}) and per thing that arrived unasked
// ({"received": ...}); the last line is {"step": "done"}. A step that gets no answer within
// --timeout (default 5000 ms) prints {"step": NAME, "timeout": true} and exits with 1. The
// procedures and events are those of protocol-defs/socketcluster_chat.protocol's interop part.
'use strict';

const socketClusterClient = require('socketcluster-client');

function parseArgs(argv) {
  const opts = { url: null, protocolVersion: 2, stay: 0, timeout: 5000 };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case '--protocol-version': opts.protocolVersion = Number(value); i++; break;
      case '--stay': opts.stay = Number(value); i++; break;
      case '--timeout': opts.timeout = Number(value); i++; break;
      default:
        if (opts.url == null && !argv[i].startsWith('--')) {
          opts.url = argv[i];
        } else {
          console.error(`unknown argument ${argv[i]}`);
          process.exit(2);
        }
    }
  }
  if (opts.url == null) {
    console.error('usage: sc-client.js URL [--protocol-version N] [--stay MS] [--timeout MS]');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const log = (line) => process.stdout.write(JSON.stringify(line) + '\n');
const errorObject = (err) => {
  const out = { name: err.name, message: err.message };
  for (const key of Object.keys(err)) {
    if (key !== 'stack') out[key] = err[key];
  }
  return out;
};

// Everything that arrives unasked goes here; steps wait on it with a timeout.
const inbox = [];
let wake = null;
function push(item) {
  inbox.push(item);
  log({ received: item });
  if (wake) wake();
}

async function waitFor(step, predicate) {
  const deadline = Date.now() + opts.timeout;
  for (;;) {
    const index = inbox.findIndex(predicate);
    if (index >= 0) {
      return inbox.splice(index, 1)[0];
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      fail(step);
    }
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, left);
      wake = () => { clearTimeout(timer); resolve(); };
    });
    wake = null;
  }
}

function fail(step) {
  log({ step, timeout: true });
  process.exit(1);
}

async function withTimeout(step, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('timed out'), { stepTimeout: true })), opts.timeout);
  });
  try {
    return await Promise.race([promise, timeout]);
  } catch (err) {
    if (err.stepTimeout) fail(step);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

const url = new URL(opts.url);
const socket = socketClusterClient.create({
  hostname: url.hostname,
  port: Number(url.port),
  path: url.pathname,
  secure: url.protocol === 'wss:',
  protocolVersion: opts.protocolVersion,
  autoReconnect: false,
  ackTimeout: opts.timeout,
});

(async () => {
  for await (const { code, reason } of socket.listener('close')) push({ close: code, reason });
})();
(async () => {
  for await (const { error } of socket.listener('error')) log({ error: errorObject(error) });
})();
(async () => {
  for await (const data of socket.receiver('shouted')) push({ shouted: data });
})();
(async () => {
  for await (const data of socket.receiver('askClientResult')) push({ askClientResult: data });
})();
(async () => {
  for await (const request of socket.procedure('askClient')) {
    push({ askClient: request.data });
    request.end({ a: 'ok', q: request.data && request.data.q });
  }
})();
(async () => {
  for await (const { authToken, signedAuthToken } of socket.listener('authenticate')) {
    push({ authenticate: authToken, signed: typeof signedAuthToken === 'string' });
  }
})();
(async () => {
  for await (const { oldAuthToken } of socket.listener('deauthenticate')) {
    push({ deauthenticate: oldAuthToken });
  }
})();
const subscribed = (name) => {
  const channel = socket.subscribe(name);
  (async () => {
    for await (const data of channel) push({ publish: { channel: name, data } });
  })();
  (async () => {
    for await (const _ of channel.listener('subscribe')) push({ subscribed: name });
  })();
  return channel;
};

async function invokeStep(step, event, data) {
  try {
    const reply = await withTimeout(step, socket.invoke(event, data));
    const line = { step, data: reply === undefined ? null : reply, hasData: reply !== undefined };
    log(line);
    return reply;
  } catch (err) {
    log({ step, error: errorObject(err) });
    return undefined;
  }
}

(async () => {
  const status = await withTimeout('handshake', socket.listener('connect').once());
  log({ step: 'handshake', id: typeof status.id, isAuthenticated: status.isAuthenticated, pingTimeout: status.pingTimeout });

  // The server invokes `askClient {"q": 1}` unprompted right after the connection, then
  // transmits our reply back as `askClientResult`.
  const result = await waitFor('askClientResult', (m) => 'askClientResult' in m);
  log({ step: 'askClientResult', data: result.askClientResult });

  socket.transmit('shout', { x: 1 });
  const shouted = await waitFor('shout', (m) => 'shouted' in m);
  log({ step: 'shout', data: shouted.shouted });

  await invokeStep('sum', 'sum', { a: 2, b: 3 });
  await invokeStep('fail', 'fail', { why: 'test' });
  await invokeStep('nothing', 'nothing', {});
  await invokeStep('callMe', 'callMe', { q: 2 });

  subscribed('news');
  await waitFor('subscribe', (m) => m.subscribed === 'news');
  log({ step: 'subscribe', channel: 'news' });

  await socket.transmitPublish('news', { t: 'hi' });
  const first = await waitFor('publish', (m) => m.publish && m.publish.channel === 'news');
  log({ step: 'publish', data: first.publish.data });

  await withTimeout('invokePublish', socket.invokePublish('news', 'hi2'));
  log({ step: 'invokePublish', acked: true });
  const second = await waitFor('invokePublish', (m) => m.publish && m.publish.channel === 'news');
  log({ step: 'publishReceived', data: second.publish.data });

  socket.unsubscribe('news');
  await withTimeout('publishAfterUnsubscribe', socket.invokePublish('news', 'gone'));
  subscribed('other');
  await waitFor('subscribeOther', (m) => m.subscribed === 'other');
  await socket.transmitPublish('other', 'after');
  const after = await waitFor('unsubscribe', (m) => m.publish);
  log({ step: 'unsubscribe', next: after.publish });

  await invokeStep('login', 'login', { user: 'alice' });
  const auth = await waitFor('authenticated', (m) => 'authenticate' in m);
  const token = socket.signedAuthToken;
  log({ step: 'authenticated', authToken: auth.authenticate, state: socket.authState });

  await invokeStep('logout', 'logout', {});
  await waitFor('deauthenticated', (m) => 'deauthenticate' in m);
  log({ step: 'deauthenticated', state: socket.authState });

  try {
    const result = await withTimeout('authenticate', socket.authenticate(token));
    log({ step: 'authenticate', isAuthenticated: result.isAuthenticated, state: socket.authState });
  } catch (err) {
    log({ step: 'authenticate', error: errorObject(err) });
  }
  await waitFor('reauthenticated', (m) => 'authenticate' in m);

  await withTimeout('deauthenticate', socket.deauthenticate());
  await waitFor('selfDeauthenticated', (m) => 'deauthenticate' in m);
  log({ step: 'deauthenticate', state: socket.authState });

  try {
    const result = await withTimeout('badToken', socket.authenticate('not.a.token'));
    log({ step: 'badToken', result });
  } catch (err) {
    log({ step: 'badToken', error: errorObject(err) });
  }

  if (opts.stay > 0) {
    // Staying connected is what is checked here: the heartbeat must keep the socket open.
    await new Promise((resolve) => setTimeout(resolve, opts.stay));
    const closed = inbox.find((m) => 'close' in m);
    log({ step: 'stay', state: socket.state, closed: closed ? closed.close : null });
  }

  socket.disconnect(1000, 'done');
  log({ step: 'done' });
  process.exit(0);
})().catch((err) => {
  log({ step: 'crashed', error: errorObject(err) });
  process.exit(1);
});
