#!/usr/bin/env node
// The real socketcluster-server 20.x (or 14.x with --major 14), scripted for protolink's interop
// tests.
//
//   node sc-server.js [--major 20|14] [--port N] [--protocol-version 1|2] [--auth-key KEY]
//                     [--ping-interval MS] [--ping-timeout MS] [--scc-state HOST:PORT]
//
// With --scc-state (20.x only) the server joins an SCC cluster: scc-broker-client attached to its
// broker engine, through the state server at HOST:PORT (`node scc-cluster.js` starts one, with a
// broker), so a publish on any server of the cluster reaches subscribers on all of them. It then
// prints its `listening on` line only once the state server has told it of a broker.
//
// Prints `listening on ws://127.0.0.1:PORT/socketcluster/` first, then one JSON line for each
// thing a client did that the tests look at ({"shout": ...}, {"askClient": ...}, ...). The
// procedures and events are those of protocol-defs/socketcluster_chat.protocol's interop part:
//
//   sum {a, b}          -> a + b
//   fail                -> error {name: "MyError", message: "nope", code: 42}
//   nothing             -> {"rid": N} (no data)
//   shout (event)       -> transmits `shouted` back with the same data
//   callMe DATA         -> invokes `askClient` DATA on the client, answers with its reply
//   login {user}        -> setAuthToken({user}), answered without data
//   logout              -> deauthenticate(), answered without data
//   kick                -> disconnect(4321, "bye"), never answered
//
// Right after each connection the server invokes `askClient {"q": 1}` on the client and transmits
// `askClientResult` with the reply.
'use strict';

const http = require('http');

function parseArgs(argv) {
  const opts = { major: 20, port: 0, protocolVersion: 2, authKey: 'interop-secret', pingInterval: 8000, pingTimeout: 20000, sccState: null };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case '--major': opts.major = Number(value); i++; break;
      case '--port': opts.port = Number(value); i++; break;
      case '--protocol-version': opts.protocolVersion = Number(value); i++; break;
      case '--auth-key': opts.authKey = value; i++; break;
      case '--ping-interval': opts.pingInterval = Number(value); i++; break;
      case '--ping-timeout': opts.pingTimeout = Number(value); i++; break;
      case '--scc-state': opts.sccState = value; i++; break;
      default:
        console.error(`unknown argument ${argv[i]}`);
        process.exit(2);
    }
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
// 14.x is installed beside 20.x under an alias (interop/package.json).
const socketClusterServer = require(opts.major === 14 ? 'socketcluster-server-14' : 'socketcluster-server');
const log = (line) => process.stdout.write(JSON.stringify(line) + '\n');

const httpServer = http.createServer();
const agServer = socketClusterServer.attach(httpServer, {
  protocolVersion: opts.protocolVersion,
  authKey: opts.authKey,
  pingInterval: opts.pingInterval,
  pingTimeout: opts.pingTimeout,
});

function serveProcedure(socket, name, handle) {
  (async () => {
    for await (const request of socket.procedure(name)) {
      try {
        await handle(request);
      } catch (err) {
        request.error(err);
      }
    }
  })();
}

function serveSocket(socket) {
  serveProcedure(socket, 'sum', (request) => request.end(request.data.a + request.data.b));
  serveProcedure(socket, 'fail', (request) => {
    const error = new Error('nope');
    error.name = 'MyError';
    error.code = 42;
    request.error(error);
  });
  serveProcedure(socket, 'nothing', (request) => request.end());
  serveProcedure(socket, 'callMe', async (request) => {
    const reply = await socket.invoke('askClient', request.data);
    request.end(reply);
  });
  serveProcedure(socket, 'login', async (request) => {
    await socket.setAuthToken({ user: request.data.user });
    request.end();
  });
  serveProcedure(socket, 'logout', (request) => {
    socket.deauthenticate();
    request.end();
  });
  serveProcedure(socket, 'kick', () => socket.disconnect(4321, 'bye'));
  (async () => {
    for await (const data of socket.receiver('shout')) {
      log({ shout: data });
      socket.transmit('shouted', data);
    }
  })();
  (async () => {
    try {
      const reply = await socket.invoke('askClient', { q: 1 });
      log({ askClient: reply });
      socket.transmit('askClientResult', reply);
    } catch (err) {
      log({ askClientError: err.name });
    }
  })();
  (async () => {
    for await (const { code } of socket.listener('close')) {
      log({ closed: code });
    }
  })();
}

// 14.x: callbacks instead of async iterators, `emit` for both transmit and invoke.
function serveSocket14(socket) {
  const procedure = (name, handle) => socket.on(name, (data, respond) => {
    try {
      handle(data, respond);
    } catch (err) {
      respond(err);
    }
  });
  procedure('sum', (data, respond) => respond(null, data.a + data.b));
  procedure('fail', (data, respond) => {
    const error = new Error('nope');
    error.name = 'MyError';
    error.code = 42;
    respond(error);
  });
  procedure('nothing', (data, respond) => respond());
  procedure('callMe', (data, respond) => socket.emit('askClient', data, respond));
  procedure('login', (data, respond) => {
    socket.setAuthToken({ user: data.user });
    respond();
  });
  procedure('logout', (data, respond) => {
    socket.deauthenticate();
    respond();
  });
  procedure('kick', () => socket.disconnect(4321, 'bye'));
  socket.on('shout', (data) => {
    log({ shout: data });
    socket.emit('shouted', data);
  });
  socket.emit('askClient', { q: 1 }, (err, reply) => {
    if (err) {
      log({ askClientError: err.name });
    } else {
      log({ askClient: reply });
      socket.emit('askClientResult', reply);
    }
  });
  socket.on('close', (code) => log({ closed: code }));
}

if (opts.major === 14) {
  agServer.on('connection', serveSocket14);
  agServer.on('error', (error) => log({ serverError: error.name, message: error.message }));
} else {
  (async () => {
    for await (const { socket } of agServer.listener('connection')) {
      serveSocket(socket);
    }
  })();
  (async () => {
    for await (const { error } of agServer.listener('error')) {
      log({ serverError: error.name, message: error.message });
    }
  })();
}

// Joins the SCC cluster whose state server is at `address`; resolves once it knows a broker.
async function joinCluster(address, instancePort) {
  if (opts.major === 14) throw new Error('--scc-state needs --major 20');
  const at = address.lastIndexOf(':');
  const stateServerPort = Number(address.slice(at + 1));
  if (at <= 0 || !Number.isInteger(stateServerPort)) throw new Error(`--scc-state ${address}: expected HOST:PORT`);
  const clusterClient = require('scc-broker-client').attach(agServer.brokerEngine, {
    stateServerHost: address.slice(0, at),
    stateServerPort,
    instanceId: require('crypto').randomUUID(),
    instanceIp: '127.0.0.1',
    instancePort,
  });
  (async () => {
    for await (const { error } of clusterClient.listener('error')) {
      log({ sccError: error && error.name, message: error && error.message });
    }
  })();
  for await (const { brokerURIs } of clusterClient.listener('updateBrokers')) {
    if (brokerURIs.length > 0) return;
  }
}

httpServer.listen(opts.port, '127.0.0.1', async () => {
  const { port } = httpServer.address();
  if (opts.sccState) {
    try {
      await joinCluster(opts.sccState, port);
    } catch (error) {
      console.error(`cannot join the SCC cluster: ${error.message}`);
      process.exit(1);
    }
  }
  process.stdout.write(`listening on ws://127.0.0.1:${port}/socketcluster/\n`);
});

const stop = () => {
  if (agServer.close) agServer.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
