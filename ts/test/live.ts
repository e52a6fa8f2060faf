// The generated clients against the Rust reference servers (`protolink serve ...`): requests,
// events, handshakes, heartbeats, close codes and a reconnect after the server restarts.
// Compiled beside `protolink ts protocol-defs` output and run by Node with `PROTOLINK_BIN` (the
// binary) and `WS_MODULE` (the `ws` package, Node's WebSocket) set; exits non-zero on failure.
// Every wait is on an event, bounded by `WAIT_MS`.

import * as protolink from "./protolink.js";
import { SkynetClient } from "./skynet.js";
import { LitecordExampleClient, type TokenValidity } from "./litecord_example.js";
import { ChatClient } from "./chat.js";
import { ClusterioControl } from "./clusterio.js";
import { check, firstLine, killAll, line, required, runAll, serve, stop, within, WAIT_MS } from "./harness.js";

declare const process: { exit(code: number): never };

const WebSocket = ((await import(required("WS_MODULE"))) as { default: protolink.WebSocketClass }).default;

/** The listening address of a URL, `127.0.0.1:PORT`. */
function address(url: string): string {
  return url.replace(/^ws:\/\//, "").replace(/\/.*$/, "");
}

async function skynet(): Promise<void> {
  let server = await serve(["skynet", "--listen", "127.0.0.1:0"]);
  const options = { WebSocket, reconnect: { initialMs: 50, maxMs: 500 } };
  const a = new SkynetClient(server.url, options);
  const jittered = [0, 3, 20].map((attempt) => a.backoffMs(attempt));
  check(jittered[0] >= 25 && jittered[0] <= 50 && jittered[2] >= 250 && jittered[2] <= 500, "backoff doubles up to its cap, jittered", jittered);
  const b = new SkynetClient(server.url, { WebSocket, reconnect: false });
  await a.connect();
  await b.connect();

  // Ordered replies: three commands in flight, answered in the order sent.
  const [opened, second, log] = await Promise.all([a.open({ channel: 42 }), a.open({ channel: "x" }), a.log({})]);
  check(JSON.stringify(opened.channels) === "[42]", "open replies with the open channels", opened);
  check(second.channels.length === 2, "the second open sees two channels", second);
  check(Array.isArray(log.log), "log replies with entries", log);

  // A request and the event it causes on another client.
  const event = within<unknown>("the message event", (done) => a.on("messageEvent", (m) => done(m)));
  const sent = await b.message({ channel: 42, message: "hi", extra: { x: 1 } });
  check(typeof sent.ID === "string" && sent.message === "hi", "message replies with what was sent", sent);
  const got = (await event) as { message: unknown; ID: unknown };
  check(got.message === "hi" && got.ID === sent.ID, "the listener gets the message", got);

  // A failed command rejects with the server's text.
  const failure = await b.closeChannel({ channel: 99 }).then(
    () => null,
    (e: unknown) => e,
  );
  check(failure instanceof protolink.RemoteError, "closing a channel not open fails", String(failure));

  // Reconnect: the server goes away and comes back on the same port.
  const closed = within<protolink.CloseInfo>("the close", (done) => a.onClose(done));
  const reopened = within<void>("the reconnect", (done) => a.onOpen(done));
  const pendingFails = a.log({}, { timeoutMs: WAIT_MS }).then(
    () => "answered",
    (e: unknown) => (e instanceof protolink.LinkClosed ? "failed" : String(e)),
  );
  await stop(server);
  const info = await closed;
  check(info.reconnecting, "the client reconnects after the link drops", info);
  const pendingOutcome = await pendingFails;
  check(pendingOutcome === "answered" || pendingOutcome === "failed", "a pending request ends", pendingOutcome);
  server = await serve(["skynet", "--listen", address(server.url)]);
  await reopened;
  const again = await a.open({ channel: 7 });
  check(JSON.stringify(again.channels) === "[7]", "a reconnected link is a fresh session", again);
  a.close();
  b.close();
  await stop(server);
  console.log("skynet: ordered replies, events, errors, reconnect");
}

async function litecord(): Promise<void> {
  const server = await serve([
    "litecord",
    "--listen",
    "127.0.0.1:0",
    "--password",
    "secret",
    "--hb-interval",
    "100",
    "--validate-token",
    "tok",
  ]);
  const client = new LitecordExampleClient(server.url, { WebSocket, reconnect: false });
  // `reconnect min 1000`: no wait below it, however early the attempt.
  const waits = [0, 1, 5, 30].map((attempt) => client.backoffMs(attempt));
  check(waits.every((ms) => ms >= 1000 && ms <= 30_000), "backoff honours reconnect min and the cap", waits);
  client.handle("tokenValidate", ({ token }): TokenValidity => (token === "tok" ? true : [false, "unknown"]));
  let acks = 0;
  const beats = within<void>("three heartbeat acks", (done) =>
    client.onBeat((beat) => {
      if (beat === "pong" && ++acks === 3) done();
    }),
  );
  await client.connect({ helloAck: { password: "secret" } });
  check(client.handshakeReceived.get("hello") !== undefined, "HELLO arrived");
  const guild = await client.getGuild({ guild_id: "123" });
  check(guild.id === "123" && guild.name === "Guild 123", "GET_GUILD replies with the guild", guild);
  client.userPresence({ user_id: "5", status: "online", activity: null });
  await line(server, (l) => l.includes("USER_PRESENCE"));
  const validated = await line(server, (l) => l.includes("token_validate"));
  check(validated.includes("true"), "the server's TOKEN_VALIDATE is answered", validated);
  await beats;
  check(client.isOpen, "heartbeats keep the link open");
  client.close();

  // A wrong password: the server closes with its declared code.
  const wrong = new LitecordExampleClient(server.url, { WebSocket, reconnect: false });
  const closed = within<protolink.CloseInfo>("the close", (done) => wrong.onClose(done));
  await wrong.connect({ helloAck: { password: "nope" } }).catch(() => undefined);
  const info = await closed;
  check(info.code === 4001 && info.declared === "Authentication Failed", "a wrong password closes 4001", info);
  await stop(server);
  console.log("litecord: HELLO / HELLO_ACK, heartbeats, carried requests and events, server requests, close codes");
}

async function socketcluster(): Promise<void> {
  const server = await serve([
    "socketcluster",
    "--listen",
    "127.0.0.1:0",
    "--ping-interval",
    "100",
    "--ping-timeout",
    "2000",
    "--ask-client",
    '{"q":1}',
  ]);
  const a = new ChatClient(server.url, { WebSocket, reconnect: false });
  const b = new ChatClient(server.url, { WebSocket, reconnect: false });
  a.handle("askClient", (question) => ({ answer: question }));
  const answered = within<unknown>("askClientResult", (done) => a.on("askClientResult", done));
  let pings = 0;
  const beats = within<void>("three pings", (done) =>
    a.onBeat((beat) => {
      if (beat === "ping" && ++pings === 3) done();
    }),
  );
  await a.connect({ handshake: {} });
  b.handle("askClient", () => null);
  await b.connect({ handshake: { authToken: null } });
  const reply = a.handshakeReplies.get("handshake") as { id?: unknown; pingTimeout?: unknown };
  check(typeof reply?.id === "string" && reply.pingTimeout === 2000, "#handshake replies with the socket id", reply);
  check(JSON.stringify(await answered) === '{"answer":{"q":1}}', "the server's askClient is answered", await answered);

  check((await a.sum({ a: 2, b: 3 })) === 5, "sum replies with the sum");
  const joined = await a.join({ room: "lobby" });
  check(Array.isArray(joined.members), "join replies with the members", joined);
  await b.join({ room: "lobby" });
  const message = within<unknown>("the chat message", (done) => a.on("message", done));
  const sent = await b.sendMessage({ room: "lobby", text: "hello" });
  check(typeof sent.id === "number", "sendMessage replies with an id", sent);
  const got = (await message) as { text?: unknown };
  check(got.text === "hello", "the room gets the message", got);

  await a.subscribe({ channel: "news" });
  const published = within<unknown>("the publish", (done) => a.on("publishEvent", done));
  await b.publish({ channel: "news", data: { n: 1 } });
  const delivered = (await published) as { channel?: unknown; data?: unknown };
  check(delivered.channel === "news" && JSON.stringify(delivered.data) === '{"n":1}', "subscribers get the publish", delivered);

  const failure = await a.fail(null).then(
    () => null,
    (e: unknown) => e,
  );
  check(failure instanceof protolink.RemoteError, "fail rejects with the server's error", String(failure));
  await beats;
  a.close();
  b.close();
  await stop(server);
  console.log("socketcluster: #handshake, text ping / pong, cid / rid, events, pub/sub, server requests");
}

async function clusterio(): Promise<void> {
  const server = await serve(["clusterio", "--listen", "127.0.0.1:0", "--secret", "s3cret"]);
  const token = await firstLine(["clusterio", "token", "--secret", "s3cret", "--control"]);
  const control = new ClusterioControl(server.url, { WebSocket, reconnect: false });
  await control.connect({ registerControl: { agent: "protolink-ts", version: "2.0.0", token } });
  check(control.handshakeReceived.has("ready"), "the master sent ready");
  // `_request` / `_response` framing, numbered frames, the reply's id under `data.seq`.
  const slaves = await control.listSlaves({});
  check(Array.isArray(slaves.list), "list_slaves replies with the slaves", slaves);
  const instances = await control.listInstances({});
  check(Array.isArray(instances.list), "list_instances replies with the instances", instances);
  control.close();

  // A bad token: the master sends `close` with its reason, then closes.
  const stranger = new ClusterioControl(server.url, { WebSocket, reconnect: false });
  const closed = within<protolink.CloseInfo>("the close", (done) => stranger.onClose(done));
  const refused = await stranger
    .connect({ registerControl: { agent: "protolink-ts", version: "2.0.0", token: "not.a.token" } })
    .then(
      () => null,
      (e: unknown) => e,
    );
  check(refused instanceof Error, "a bad token fails the handshake", String(refused));
  const info = await closed;
  check(info.reason.length > 0, "the close names the master's reason", info);
  await stop(server);
  console.log(`clusterio: hello / register / ready, sequence numbers, suffixed replies, close message (${info.reason})`);
}

/** Misuse the compiler must reject (never run). */
export function misuse(skynet: SkynetClient, litecord: LitecordExampleClient): void {
  // @ts-expect-error: `open` needs its channel
  void skynet.open({});
  // @ts-expect-error: the server sends no `nope` event
  skynet.on("nope", () => undefined);
  // @ts-expect-error: the handshake needs HELLO_ACK's password
  void litecord.connect();
  // @ts-expect-error: a guild id is a string
  void litecord.getGuild({ guild_id: 1 });
}

const passed = await runAll([
  ["skynet", skynet],
  ["litecord", litecord],
  ["socketcluster", socketcluster],
  ["clusterio", clusterio],
]);
killAll();
process.exit(passed ? 0 : 1);
