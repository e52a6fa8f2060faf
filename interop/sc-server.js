#!/usr/bin/env node
// The real socketcluster-server 20.x, scripted for protolink's interop tests.
//
//   node sc-server.js [--port N] [--protocol-version 1|2] [--auth-key KEY]
//                     [--ping-interval MS] [--ping-timeout MS]
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
//
// Right after each connection the server invokes `askClient {"q": 1}` on the client and transmits
// `askClientResult` with the reply.
'use strict';

const http = require('http');
const socketClusterServer = require('socketcluster-server');

function parseArgs(argv) {
  const opts = { port: 0, protocolVersion: 2, authKey: 'interop-secret', pingInterval: 8000, pingTimeout: 20000 };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case '--port': opts.port = Number(value); i++; break;
      case '--protocol-version': opts.protocolVersion = Number(value); i++; break;
      case '--auth-key': opts.authKey = value; i++; break;
      case '--ping-interval': opts.pingInterval = Number(value); i++; break;
      case '--ping-timeout': opts.pingTimeout = Number(value); i++; break;
      default:
        console.error(`unknown argument ${argv[i]}`);
        process.exit(2);
    }
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
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

httpServer.listen(opts.port, '127.0.0.1', () => {
  const { port } = httpServer.address();
  process.stdout.write(`listening on ws://127.0.0.1:${port}/socketcluster/\n`);
});

const stop = () => {
  agServer.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
