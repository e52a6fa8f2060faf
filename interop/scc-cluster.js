#!/usr/bin/env node
// A SocketCluster Cluster (SCC) on loopback, for `loadgen fanout-redis --protocol socketcluster`:
// a state server and scc-broker instances that socketcluster-server 20.x processes join with
// scc-broker-client (`node sc-server.js --scc-state 127.0.0.1:PORT`).
//
//   node scc-cluster.js state             the state server on a free loopback port
//   node scc-cluster.js broker HOST:PORT  one scc-broker on a free loopback port, joined to the
//                                         state server at HOST:PORT
//   node scc-cluster.js                   both, the broker as a child process
//
// Each mode prints `listening on ws://127.0.0.1:PORT/socketcluster/` once it listens (the
// default mode prints the state server's line, after its broker has joined).
//
// The state server is written here: the npm registry this project uses does not serve the
// `scc-state` package. It speaks the protocol scc-broker 10.x and scc-broker-client 9.x speak to
// it: a broker connects with `?instanceType=scc-broker&instancePort=N` and invokes
// `sccBrokerJoinCluster`; a worker connects with `instanceType=scc-worker` and invokes
// `sccWorkerJoinCluster`, answered with `{sccBrokerURIs, sccWorkerURIs, time}`; whenever the set
// of brokers (workers) changes, every worker is invoked `sccBrokerJoinCluster` /
// `sccBrokerLeaveCluster` (`sccWorkerJoinCluster` / `sccWorkerLeaveCluster`) with the new set.
// Unlike scc-state it tells the workers at once, without a delay to batch cluster changes.
'use strict';

const http = require('http');
const path = require('path');
const { spawn } = require('child_process');

const LISTENING = (port) => `listening on ws://127.0.0.1:${port}/socketcluster/\n`;

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = http.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function runState() {
  const socketClusterServer = require('socketcluster-server');
  const httpServer = http.createServer();
  const agServer = socketClusterServer.attach(httpServer);
  // socket id -> {socket, uri}
  const brokers = new Map();
  const workers = new Map();
  const uris = (members) => [...members.values()].map((m) => m.uri);

  const tell = (procedure, data) => {
    for (const { socket } of workers.values()) {
      socket.invoke(procedure, data).catch((error) => {
        // A worker that is going away (the benchmark stopping it) cannot be told.
        if (error.name !== 'BadConnectionError') {
          console.error(`scc state: ${procedure} to a worker failed: ${error.name}`);
        }
      });
    }
  };

  const instanceUri = (socket, data) => {
    const query = new URL(socket.request.url, 'http://localhost').searchParams;
    const port = Number(query.get('instancePort'));
    const given = data && typeof data.instanceIp === 'string' ? data.instanceIp : null;
    let ip = given || socket.remoteAddress || '127.0.0.1';
    if (ip.startsWith('::ffff:')) ip = ip.slice('::ffff:'.length);
    if (ip.includes(':')) ip = `[${ip}]`;
    const scheme = data && data.instanceSecure ? 'wss' : 'ws';
    return `${scheme}://${ip}:${port}`;
  };

  const serve = (socket, name, handle) => {
    (async () => {
      for await (const request of socket.procedure(name)) {
        try {
          request.end(handle(request.data));
        } catch (error) {
          request.error(error);
        }
      }
    })();
  };

  (async () => {
    for await (const { socket } of agServer.listener('connection')) {
      serve(socket, 'sccBrokerJoinCluster', (data) => {
        brokers.set(socket.id, { socket, uri: instanceUri(socket, data) });
        tell('sccBrokerJoinCluster', { sccBrokerURIs: uris(brokers), time: Date.now() });
      });
      serve(socket, 'sccWorkerJoinCluster', (data) => {
        const uri = instanceUri(socket, data);
        workers.set(socket.id, { socket, uri });
        const time = Date.now();
        for (const [id, worker] of workers) {
          if (id !== socket.id) {
            worker.socket
              .invoke('sccWorkerJoinCluster', { sccWorkerURIs: uris(workers), sccSourceWorkerURI: uri, time })
              .catch(() => {});
          }
        }
        return { sccBrokerURIs: uris(brokers), sccWorkerURIs: uris(workers), time };
      });
      (async () => {
        for await (const _ of socket.listener('close')) {
          if (brokers.delete(socket.id)) {
            tell('sccBrokerLeaveCluster', { sccBrokerURIs: uris(brokers), time: Date.now() });
          }
          const worker = workers.get(socket.id);
          if (worker && workers.delete(socket.id)) {
            tell('sccWorkerLeaveCluster', {
              sccWorkerURIs: uris(workers),
              sccSourceWorkerURI: worker.uri,
              time: Date.now(),
            });
          }
        }
      })();
    }
  })();
  (async () => {
    for await (const { error } of agServer.listener('error')) {
      console.error(`scc state: ${error.name}: ${error.message}`);
    }
  })();

  return new Promise((resolve) => {
    httpServer.listen(0, '127.0.0.1', () => resolve(httpServer.address().port));
  });
}

async function runBroker(state) {
  const [host, port] = splitAddress(state);
  const brokerPort = await freePort();
  process.env.SCC_STATE_SERVER_HOST = host;
  process.env.SCC_STATE_SERVER_PORT = String(port);
  process.env.SCC_BROKER_SERVER_PORT = String(brokerPort);
  // scc-broker listens on every interface (`listen(PORT)`); keep it on loopback.
  const listen = http.Server.prototype.listen;
  http.Server.prototype.listen = function (...args) {
    if (args.length === 1 && typeof args[0] === 'number') {
      return listen.call(this, args[0], '127.0.0.1', () => process.stdout.write(LISTENING(brokerPort)));
    }
    return listen.apply(this, args);
  };
  require('scc-broker/server.js');
}

function splitAddress(text) {
  const at = typeof text === 'string' ? text.lastIndexOf(':') : -1;
  const port = Number(text && text.slice(at + 1));
  if (at <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error(`expected HOST:PORT, got ${text}`);
    process.exit(2);
  }
  return [text.slice(0, at), port];
}

async function main() {
  const [mode, address] = process.argv.slice(2);
  if (mode === 'state') {
    process.stdout.write(LISTENING(await runState()));
  } else if (mode === 'broker') {
    await runBroker(address);
  } else if (mode === undefined) {
    const statePort = await runState();
    const broker = spawn(process.execPath, [__filename, 'broker', `127.0.0.1:${statePort}`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    broker.stdout.once('data', () => process.stdout.write(LISTENING(statePort)));
    broker.stdout.resume();
    const stop = () => {
      broker.kill();
      process.exit(0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    broker.on('exit', (code) => {
      console.error(`scc-broker exited (${code})`);
      process.exit(1);
    });
  } else {
    console.error(`usage: node ${path.basename(__filename)} [state | broker HOST:PORT]`);
    process.exit(2);
  }
}

main();
