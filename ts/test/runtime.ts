// The TypeScript runtime's reading of what a peer sends, against the Rust link's rules: binary
// frames, sequence numbers, `strict` envelopes, the `invalid` rules and their close codes, and a
// first connect retried with the reconnect backoff. The generated clients run over `FakeSocket`,
// an in-memory `WebSocket` whose peer is this script, so every frame and close is seen exactly.
// Compiled beside `protolink ts protocol-defs` output; exits non-zero on failure. Every wait is
// on an event, bounded by `WAIT_MS` (see `harness.ts`).

import * as protolink from "./protolink.js";
import { SkynetClient } from "./skynet.js";
import { LitecordExampleClient } from "./litecord_example.js";
import { ChatClient } from "./chat.js";
import { ClusterioControl } from "./clusterio.js";
import { check, runAll, within } from "./harness.js";

declare const process: { exit(code: number): never };

/**
 * A `WebSocket` with the standard interface, connected to this script. `refuse` sockets fail to
 * connect before one opens; with `browser`, closing with a code a page may not send (not 1000 or
 * 3000-4999) throws, as a browser's `close` does.
 */
class FakeSocket {
  static made: FakeSocket[] = [];
  static refuse = 0;
  static browser = false;
  static opened: Array<(socket: FakeSocket) => void> = [];

  readyState = 0;
  binaryType = "blob";
  sent: string[] = [];
  closedWith: { code: number; reason: string } | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  #sendWaiters: Array<() => void> = [];

  constructor(readonly url: string) {
    FakeSocket.made.push(this);
    queueMicrotask(() => {
      if (FakeSocket.refuse > 0) {
        FakeSocket.refuse -= 1;
        this.readyState = 3;
        this.onerror?.({});
        this.onclose?.({ code: 1006, reason: "" });
        return;
      }
      this.readyState = 1;
      this.onopen?.({});
      for (const fn of FakeSocket.opened.splice(0)) fn(this);
    });
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(data);
    for (const fn of this.#sendWaiters.splice(0)) fn();
  }

  close(code = 1000, reason = ""): void {
    if (FakeSocket.browser && code !== 1000 && (code < 3000 || code > 4999)) {
      throw new Error(`InvalidAccessError: ${code}`);
    }
    if (this.closedWith !== null) return;
    this.closedWith = { code, reason };
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }

  /** The peer sends a text (a string) or binary (bytes) frame. */
  deliver(data: unknown): void {
    this.onmessage?.({ data: typeof data === "string" || data instanceof ArrayBuffer || ArrayBuffer.isView(data) ? data : JSON.stringify(data) });
  }

  /** The `n`-th frame the client sent (from 0), parsed, once it is sent. */
  frame(n: number): Promise<Record<string, unknown>> {
    return within(`frame ${n}`, (done) => {
      const look = () => {
        if (this.sent.length > n) done(JSON.parse(this.sent[n]) as Record<string, unknown>);
        else this.#sendWaiters.push(look);
      };
      look();
    });
  }
}

/** The next socket a client opens. */
function nextSocket(): Promise<FakeSocket> {
  return within("a socket", (done) => FakeSocket.opened.push(done));
}

const options = { WebSocket: FakeSocket, reconnect: false as const };
const encoder = new TextEncoder();

function closed(client: { onClose(fn: (info: protolink.CloseInfo) => void): void }): Promise<protolink.CloseInfo> {
  return within("the close", (done) => client.onClose(done));
}

/** A chat client connected to this script, its handshake answered, and its socket. */
async function chatClient(): Promise<{ chat: ChatClient; socket: FakeSocket }> {
  const chat = new ChatClient("ws://chat", options);
  const opened = nextSocket();
  const up = chat.connect({ handshake: {} });
  const socket = await opened;
  const handshake = await socket.frame(0);
  socket.deliver({ rid: handshake.cid, data: { id: "x", pingTimeout: 20000, isAuthenticated: false } });
  await up;
  return { chat, socket };
}

/** A Litecord example client connected to this script after HELLO, and its socket. */
async function litecordClient(): Promise<{ litecord: LitecordExampleClient; socket: FakeSocket }> {
  const litecord = new LitecordExampleClient("ws://litecord", options);
  const opened = nextSocket();
  const up = litecord.connect({ helloAck: { password: "p" } });
  const socket = await opened;
  socket.deliver({ op: 0, hb_interval: 60_000 });
  await up;
  return { litecord, socket };
}

async function binaryFrames(): Promise<void> {
  // Skynet says `binary text`: a binary frame holding JSON text is read as text.
  const client = new SkynetClient("ws://skynet", options);
  const opened = nextSocket();
  await client.connect();
  const socket = await opened;
  check(socket.binaryType === "arraybuffer", "the client reads binary frames as bytes", socket.binaryType);
  const got: unknown[] = [];
  client.on("messageEvent", (m) => got.push(m));
  const event = { type: "message", channel: 1, message: "hi", ID: "1", time: 5 };
  socket.deliver(encoder.encode(JSON.stringify(event)).buffer);
  socket.deliver(encoder.encode(JSON.stringify({ ...event, ID: "2" })));
  check(got.length === 2 && (got[1] as { ID: string }).ID === "2", "binary frames as ArrayBuffer and as a view are read", got);
  const skynetClosed = closed(client);
  socket.deliver(new Uint8Array([0x7b, 0xff, 0x7d]));
  const info = await skynetClosed;
  check(socket.closedWith?.code === 1007 && info.code === 1007, "a binary frame that is not UTF-8 closes with 1007", info);

  // SocketCluster does not: a binary frame closes with 1003.
  const { chat, socket: s } = await chatClient();
  const chatClosed = closed(chat);
  s.deliver(encoder.encode("{}"));
  const chatInfo = await chatClosed;
  check(s.closedWith?.code === 1003 && chatInfo.code === 1003, "a binary frame closes a text protocol with 1003", chatInfo);
  console.log("binary: read as text where the wire says so (1007 when not UTF-8), 1003 elsewhere");
}

async function invalidFrames(): Promise<void> {
  // Skynet's client takes no requests: unusable frames are counted, unknown messages ignored.
  FakeSocket.browser = true;
  const client = new SkynetClient("ws://skynet", options);
  const opened = nextSocket();
  await client.connect();
  const socket = await opened;
  const outcomes: protolink.InvalidFrame[] = [];
  client.onInvalid((f) => outcomes.push(f));
  socket.deliver({ type: "nope" });
  socket.deliver({ type: "nope", for: 7 });
  check(outcomes.every((o) => o.kind === "unknown" && o.outcome === "ignored") && outcomes.length === 2, "unknown messages are ignored", outcomes);
  check(client.isOpen && socket.sent.length === 0, "and neither answered nor closing");
  const done = closed(client);
  for (let i = 0; i < 16; i++) socket.deliver(i % 2 === 0 ? "not json" : "[1]");
  check(client.isOpen && outcomes.filter((o) => o.outcome === "counted").length === 16, "16 invalid frames are tolerated", outcomes.length);
  socket.deliver("42");
  const info = await done;
  check(info.code === 1008 && info.reason === "too many invalid frames", "the 17th closes the link with 1008", info);
  check(socket.closedWith?.code === 1000 && socket.closedWith.reason === "too many invalid frames", "a browser refuses 1008: the socket closes with 1000 and the reason", socket.closedWith);
  FakeSocket.browser = false;

  // Litecord's client takes requests: an unknown one with its id is answered with an error; one
  // without its id (not optional) is refused and counted.
  const { litecord, socket: l } = await litecordClient();
  const seen: protolink.InvalidFrame[] = [];
  litecord.onInvalid((f) => seen.push(f));
  l.deliver({ op: 4, w: "NOPE", a: [], n: "0000000a" });
  const answer = await l.frame(1);
  check(answer.op === 5 && answer.n === "0000000a" && typeof answer.e === "string", "an unknown request is answered with an error", answer);
  l.deliver({ op: 4, w: "TOKEN_VALIDATE", a: ["t"] });
  check(seen.length === 2 && seen[1].kind === "envelope" && seen[1].outcome === "counted", "a request without its id is counted", seen);
  litecord.close();

  // SocketCluster: `invalid unknown ignored`, even for an invoke with its cid.
  const { chat, socket: s } = await chatClient();
  const chatSeen: protolink.InvalidFrame[] = [];
  chat.onInvalid((f) => chatSeen.push(f));
  s.deliver([{ event: "nobodyServes", data: 1, cid: 3 }, { event: 5 }]);
  check(
    chatSeen[0]?.outcome === "ignored" && chatSeen[1]?.kind === "untagged" && chatSeen[1].outcome === "counted" && s.sent.length === 1,
    "an invoke nobody serves is ignored, unanswered; a batch's packets are read one by one",
    chatSeen,
  );
  chat.close();
  console.log("invalid: unknown messages ignored, others counted, 1008 past 16, answers where answerable");
}

/** A control connected to a fake Clusterio master, and its socket. */
async function clusterioControl(): Promise<{ control: ClusterioControl; socket: FakeSocket }> {
  const control = new ClusterioControl("ws://master", options);
  const opened = nextSocket();
  const up = control.connect({ registerControl: { agent: "test", version: "2.0.0", token: "t" } });
  const socket = await opened;
  socket.deliver({ seq: 1, type: "hello", data: { version: "2.0.0-alpha" } });
  const register = await socket.frame(0);
  check(register.seq === 1 && register.type === "register_control", "the control registers, numbered", register);
  socket.deliver({ seq: 2, type: "ready", data: {} });
  await up;
  return { control, socket };
}

async function sequenceAndStrict(): Promise<void> {
  // Numbers out of order are taken (the Rust link does not check the order either).
  let { control, socket } = await clusterioControl();
  const listed = control.listSlaves({});
  const request = await socket.frame(1);
  check(request.seq === 2 && request.type === "list_slaves_request", "requests are numbered", request);
  socket.deliver({ seq: 99, type: "list_slaves_response", data: { list: [], seq: request.seq } });
  const slaves = await listed;
  check(Array.isArray(slaves.list), "a reply with any number resolves", slaves);

  // A frame without its number is a malformed envelope: Clusterio's rule closes the link, after
  // the close message with the reason.
  let done = closed(control);
  socket.deliver({ type: "list_slaves_response", data: { list: [], seq: 3 } });
  let info = await done;
  const farewell = await socket.frame(2);
  check(info.code === 1008 && info.reason === "Invalid message: Malformed", "a missing seq closes as the rule says", info);
  check(farewell.type === "close" && (farewell.data as { reason?: unknown }).reason === "Invalid message: Malformed", "the close message goes first", farewell);

  // `strict`: a key the envelope does not declare.
  ({ control, socket } = await clusterioControl());
  done = closed(control);
  socket.deliver({ seq: 3, type: "ready", data: {}, more: 1 });
  info = await done;
  check(info.reason === "Invalid message: Malformed", "a strict envelope holds only its keys", info);

  // An unknown message, worded with the link's endpoints.
  ({ control, socket } = await clusterioControl());
  done = closed(control);
  socket.deliver({ seq: 3, type: "foo_request", data: {} });
  info = await done;
  check(info.code === 1008 && info.reason === "Invalid message: No validator for foo_request on control-master", "unknown messages close as Clusterio's rule says", info);
  console.log("sequence: numbers required, order not checked; strict envelopes; invalid rules that close");
}

async function firstConnect(): Promise<void> {
  // Without `retryFirst`, a first connect that fails rejects.
  FakeSocket.refuse = 1;
  const once = new SkynetClient("ws://skynet", { WebSocket: FakeSocket });
  const failure = await once.connect().then(
    () => null,
    (e: unknown) => e,
  );
  check(failure instanceof protolink.LinkClosed, "a failed connect rejects", String(failure));

  // With it, it is retried on the backoff until a link is up.
  FakeSocket.refuse = 3;
  const before = FakeSocket.made.length;
  const client = new SkynetClient("ws://skynet", { WebSocket: FakeSocket, reconnect: { initialMs: 5, maxMs: 20, retryFirst: true } });
  const infos: protolink.CloseInfo[] = [];
  client.onClose((info) => infos.push(info));
  await within("the connect", (done) => void client.connect().then(done));
  check(FakeSocket.made.length - before === 4 && client.isOpen, "three refusals, then a link", FakeSocket.made.length - before);
  check(infos.length === 3 && infos.every((i) => i.reconnecting), "each failed attempt says it will retry", infos);
  client.close();

  // `close` while it waits stops it.
  FakeSocket.refuse = 1_000;
  const stopped = new SkynetClient("ws://skynet", { WebSocket: FakeSocket, reconnect: { initialMs: 5, maxMs: 20, retryFirst: true } });
  const attempt = within<void>("a failed attempt", (done) => stopped.onClose(() => done()));
  const outcome = stopped.connect().then(
    () => "connected",
    (e: unknown) => (e instanceof protolink.LinkClosed ? "stopped" : String(e)),
  );
  await attempt;
  stopped.close();
  check((await outcome) === "stopped", "close stops the retries", await outcome);
  FakeSocket.refuse = 0;

  // The backoff is the Rust `Backoff::delay`: from `initialMs`, raised to `reconnect min`.
  const litecord = new LitecordExampleClient("ws://litecord", { WebSocket: FakeSocket });
  const waits = [0, 1, 16, 30].map((n) => litecord.backoffMs(n));
  check(waits[0] >= 1000 && waits[0] <= 1500 && waits[3] >= 15_000 && waits[3] <= 30_000, "the backoff starts at the protocol's minimum and stops at the cap", waits);
  console.log("connect: a first connect retried on the backoff when asked, stopped by close");
}

async function payloadChecks(): Promise<void> {
  // What the client sends is held to its definition before it goes out, and so is a reply;
  // the handshake's messages too.
  const early = new LitecordExampleClient("ws://litecord", options);
  const earlySocket = nextSocket();
  // @ts-expect-error: the password is a string
  const refusedConnect = early.connect({ helloAck: { password: 5 } }).then(() => null, (e: unknown) => e);
  const e = await earlySocket;
  e.deliver({ op: 0, hb_interval: 60_000 });
  const failedConnect = await refusedConnect;
  check(
    failedConnect instanceof protolink.InvalidPayload && failedConnect.problems.join() === "`password` must be a string" && e.sent.length === 0,
    "a handshake message that breaks its definition fails the connect, unsent",
    String(failedConnect),
  );
  const { litecord, socket: l } = await litecordClient();
  const refused = await litecord.getGuild({ guild_id: "abc" }).then(() => null, (e: unknown) => e);
  check(
    refused instanceof protolink.InvalidPayload && refused.problems.join() === "`guild_id` must match the pattern `^[0-9]+$`" && l.sent.length === 1,
    "a request whose payload breaks its definition is refused, and not sent",
    String(refused),
  );
  const asked = litecord.getGuild({ guild_id: "1" }).then(() => null, (e: unknown) => e);
  const request = await l.frame(1);
  l.deliver({ op: 5, r: { id: "1", name: "x", owner_id: "2", member_count: 3 }, n: request.n });
  const badReply = await asked;
  check(
    badReply instanceof protolink.InvalidPayload && badReply.problems.join() === "`name` length must be at least 2",
    "a reply whose result breaks its definition fails the request",
    String(badReply),
  );
  let thrown: unknown = null;
  try {
    litecord.userPresence({ user_id: "1", status: "away" as "idle", activity: null });
  } catch (e) {
    thrown = e;
  }
  check(
    thrown instanceof protolink.InvalidPayload && thrown.problems.join() === '`status` must be one of "online", "idle", "dnd", "offline"' && l.sent.length === 2,
    "an event whose payload breaks its definition throws, and is not sent",
    String(thrown),
  );

  // What the peer sends is invalid input when its payload breaks the definition: answered where
  // it can be (a request with its id), counted otherwise, and never handed to the application.
  const seen: protolink.InvalidFrame[] = [];
  litecord.onInvalid((f) => seen.push(f));
  let handled = 0;
  litecord.handle("tokenValidate", () => {
    handled += 1;
    return true;
  });
  l.deliver({ op: 4, w: "TOKEN_VALIDATE", a: [5], n: "0000000b" });
  const answer = await l.frame(2);
  check(
    answer.op === 5 && answer.n === "0000000b" && String(answer.e).endsWith("`token` must be a string") && handled === 0,
    "a request whose payload breaks its definition is answered with an error, unhandled",
    answer,
  );
  check(seen[0]?.kind === "payload" && seen[0].outcome === "answered", "and reported as a payload", seen);
  litecord.close();

  const { chat, socket: s } = await chatClient();
  const chatSeen: protolink.InvalidFrame[] = [];
  chat.onInvalid((f) => chatSeen.push(f));
  const heard: unknown[] = [];
  chat.on("message", (m) => heard.push(m));
  const message = { id: 1, room: "lobby", author: "ann", text: "hi", sentAt: 5 };
  s.deliver({ event: "message", data: { ...message, author: "" } });
  s.deliver({ event: "message", data: [1, "lobby", "ann", "hi", 5] });
  s.deliver({ event: "message", data: message });
  check(
    heard.length === 1 && chatSeen.length === 2 && chatSeen.every((f) => f.kind === "payload" && f.outcome === "counted"),
    "an event whose payload breaks its definition (or is an array) is counted, not delivered",
    chatSeen,
  );
  check(chatSeen[0].detail.endsWith("`author` must not be empty"), "the detail names the field and the rule", chatSeen[0].detail);
  chat.close();
  console.log("payloads: held to their definitions both ways; refused before sending, counted or answered when received");
}

/** A small seeded generator (mulberry32): the same frames on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A frame a hostile server might send, made from `real` ones with `next`. */
function hostileFrame(real: string[], next: () => number): string | Uint8Array {
  const pick = <T>(items: T[]): T => items[Math.floor(next() * items.length)];
  const frame = pick(real);
  const at = Math.floor(next() * (frame.length + 1));
  // Bytes close most links: one draw in twenty, so most sequences reach the request after them.
  const kind = Math.floor(next() * 20);
  switch (kind < 6 ? 0 : kind < 10 ? 1 : kind < 12 ? 2 : kind < 14 ? 3 : kind < 17 ? 4 : kind < 19 ? 5 : 6) {
    case 0:
      return frame;
    case 1:
      return frame.slice(0, at) + String.fromCharCode(Math.floor(next() * 128)) + frame.slice(at + 1);
    case 2:
      return frame.slice(0, at);
    case 3:
      return frame.slice(0, at) + pick(real).slice(Math.floor(next() * frame.length));
    case 4: {
      // One more key, of a value from another frame.
      const parse = (text: string): unknown => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          return text;
        }
      };
      const object = parse(frame);
      if (object === null || typeof object !== "object" || Array.isArray(object)) return frame;
      return JSON.stringify({ ...object, [pick(["a", "op", "event", "data", "cid", "rid", "n", "type"])]: parse(pick(real)) });
    }
    case 5:
      return JSON.stringify(pick([null, 0, -1, 1e300, "x", [], {}, [1, [2]], { a: { b: {} } }, true]));
    default:
      return new Uint8Array(Array.from({ length: Math.floor(next() * 8) }, () => Math.floor(next() * 256)));
  }
}

/**
 * What the peer sends cannot break the client: 200 sequences of up to 24 frames from a hostile
 * server (real frames, changed, cut, spliced, grown, random JSON, bytes), each followed by a
 * request the client should answer. The client never throws out of the socket's handler, and
 * either answers the request or has closed its socket with a code.
 */
async function hostileServers(): Promise<void> {
  const next = random(20261205);
  const litecordFrames = [
    `{"op":0,"hb_interval":60000}`,
    `{"op":3}`,
    `{"op":4,"w":"TOKEN_VALIDATE","a":["t"],"n":"0000000a"}`,
    `{"op":5,"r":{"id":"1","name":"guild","owner_id":"2","member_count":3},"n":1}`,
    `{"op":5,"e":"no such guild","n":"00000001"}`,
    `{"op":6,"w":"USER_PRESENCE","a":["1","idle",null]}`,
  ];
  const chatFrames = [
    `{"event":"message","data":{"id":1,"room":"lobby","author":"ann","text":"hi","sentAt":5}}`,
    `{"event":"#publish","data":{"channel":"news","data":{"t":"hi"}}}`,
    `{"event":"#setAuthToken","data":{"token":"t"},"cid":3}`,
    `{"event":"ping_client","data":{},"cid":4}`,
    `{"rid":1,"data":{"id":"x","pingTimeout":20000,"isAuthenticated":false}}`,
    `{"rid":2,"error":{"name":"E","message":"no"}}`,
    `[{"event":"#kickOut","data":{"channel":"a","message":"bye"}},{"rid":9}]`,
    `{"event":"#disconnect","data":{"code":4000,"data":"bye"}}`,
    "#1",
    "",
  ];
  let answered = 0;
  let closedWith = 0;
  for (let round = 0; round < 100; round++) {
    const { litecord, socket: l } = await litecordClient();
    litecord.handle("tokenValidate", () => true);
    const { chat, socket: s } = await chatClient();
    chat.handle("pingClient", () => ({}));
    for (const [socket, real, probe, answers] of [
      [l, litecordFrames, `{"op":4,"w":"TOKEN_VALIDATE","a":["t"],"n":"0000abcd"}`, (f: Record<string, unknown>) => f.n === "0000abcd"],
      [s, chatFrames, `{"event":"ping_client","data":{},"cid":987654}`, (f: Record<string, unknown>) => f.rid === 987654],
    ] as const) {
      const sent = socket.sent.length;
      const count = Math.floor(next() * 25);
      const delivered: Array<string | number[]> = [];
      for (let i = 0; i < count && socket.closedWith === null; i++) {
        const frame = hostileFrame(real, next);
        delivered.push(typeof frame === "string" ? frame : Array.from(frame));
        try {
          socket.deliver(frame);
        } catch (e) {
          throw new Error(`delivering ${JSON.stringify(typeof frame === "string" ? frame : Array.from(frame))} threw: ${String(e)}`);
        }
      }
      if (socket.closedWith !== null) {
        check(socket.closedWith.code >= 1000 && socket.closedWith.code <= 4999, "a hostile server's link closes with a code", socket.closedWith);
        closedWith += 1;
        continue;
      }
      socket.deliver(probe);
      // The answer goes out at once, or after the handler's promise settles.
      const found = await within(`the answer to ${probe} after ${JSON.stringify(delivered)}, sent ${JSON.stringify(socket.sent.slice(sent))}`, (done) => {
        const look = () => {
          const frames = socket.sent.slice(sent).map((t) => {
            try {
              return JSON.parse(t) as unknown;
            } catch {
              return null;
            }
          });
          const all = frames.flatMap((f) => (Array.isArray(f) ? f : [f]));
          if (all.some((f) => f !== null && typeof f === "object" && answers(f as Record<string, unknown>))) done(true);
          else if (socket.closedWith !== null) done(false);
          else setTimeout(look, 1);
        };
        look();
      });
      if (found) answered += 1;
      else closedWith += 1;
    }
    litecord.close();
    chat.close();
  }
  // Every sequence ended answered or closed (a hang fails the wait above); some must get through.
  check(answered > 0, "requests after hostile sequences are answered", { answered, closedWith });
  console.log(`hostile: 200 hostile servers' sequences: ${answered} answered after, ${closedWith} closed with a code; nothing thrown`);
}

const passed = await runAll([
  ["binary", binaryFrames],
  ["invalid", invalidFrames],
  ["sequence", sequenceAndStrict],
  ["connect", firstConnect],
  ["payloads", payloadChecks],
  ["hostile", hostileServers],
]);
process.exit(passed ? 0 : 1);
