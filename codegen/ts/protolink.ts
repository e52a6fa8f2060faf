// The protolink TypeScript runtime: what the generated clients (`protolink ts`) specialise.
// Frames are read and written by the protocol's wire profile; a `Client` runs its session rules
// (handshake, heartbeat, request ids or ordered replies, timeouts, close codes, reconnect) over a
// standard `WebSocket`, the browser's or any class with the same interface (Node's `ws`).

/** A tag value: a string, or an integer for protocols with `tag KEY int`. */
export type Tag = string | number;

/** How events or requests are framed: with their own tag, a suffixed tag, or inside a carrier. */
export type Framing =
  | { kind: "tagged" }
  | { kind: "suffix"; suffix: string }
  | { kind: "carrier"; tag: Tag; method: string; args: string };

/** Where a key sits: at the top of the frame, or inside the payload object. */
export type KeyPath = { key: string; inPayload: boolean };

/** A protocol's `wire` block: how each frame is laid out. */
export interface WireProfile {
  /** The tag key. */
  tag: string;
  /** The key payloads sit under, or `null` when their fields sit beside the tag. */
  payload: string | null;
  /** The per-side frame counter key, counted from 1. */
  sequence: string | null;
  event: Framing;
  request: Framing;
  /** Where request ids sit: none (replies in order), the sequence number, or a key. */
  requestId:
    | { kind: "ordered" }
    | { kind: "sequence" }
    | { kind: "key"; key: string; optional: boolean; text: boolean };
  /** How replies are recognised. */
  reply:
    | { kind: "suffix"; suffix: string }
    | { kind: "carrier"; tag: Tag }
    | { kind: "untagged" }
    | { kind: "tag"; tag: string; forKey: string };
  /** Where the answered request's id sits in a reply. */
  replyId: KeyPath | null;
  /** The key holding a reply's result, when not where payloads sit. */
  replyResult: string | null;
  /** How failed replies are framed. */
  error:
    | { kind: "none" }
    | { kind: "inReply"; at: KeyPath; object: boolean }
    | { kind: "tagged"; tag: string; message: string };
  /** Whether a frame may hold a JSON array of packets. */
  batch: boolean;
}

/** A ping or a pong: a raw text frame, or a message by name. */
export type Beat = { text: string } | { message: string };

/** One `heartbeat` rule of the session. */
export interface HeartbeatRule {
  clientPings: boolean;
  ping: Beat;
  pong: Beat | null;
  /** Fixed milliseconds, or a field of a handshake message. */
  interval: { ms: number } | { message: string; field: string };
  /** How long past the interval silence is tolerated. */
  graceMs: number;
  /** The close code for silence, and the one the client uses when the server goes silent. */
  missed: number | null;
  clientMissed: number | null;
  variant: string | null;
}

/** One handshake step: who sends which message (one of `messages`), and whether it is a request. */
export interface HandshakeStep {
  clientSends: boolean;
  messages: string[];
  request: boolean;
}

/** A protocol's `session` block, as far as a client runs it. */
export interface SessionRules {
  handshake: HandshakeStep[];
  handshakeTimeoutMs: number | null;
  heartbeats: HeartbeatRule[];
  /** The message a closing side sends (or only the server does, `sent: false`). */
  closeMessage: { message: string; reason: string; code: string | null; sent: boolean } | null;
  /** The least wait before a reconnect. */
  reconnectMinMs: number;
}

/** One message as one side of a link sees it. */
export interface MessageSpec {
  /** The declared name: what the generated client calls it by. */
  name: string;
  tag: Tag;
  kind: "message" | "event" | "request";
  /** Whether this side sends it, receives it, or both. */
  sends: boolean;
  receives: boolean;
  /** Whether it is declared with a payload. */
  payload: boolean;
  /** For positional payloads (a JSON array), the field names in order: the client takes and
   * hands out objects. */
  positional: string[] | null;
}

/** Everything the runtime needs to know of a protocol, for one connecting side. */
export interface ProtocolSpec {
  name: string;
  wire: WireProfile;
  session: SessionRules;
  messages: MessageSpec[];
  /** Close codes and their reasons. */
  closeCodes: Record<number, string>;
}

/** A failed reply from the peer: its text, and the whole error value it sent. */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly details: unknown,
  ) {
    super(message);
    this.name = "RemoteError";
  }
}

/** The link closed (or was never open): pending requests fail with it. */
export class LinkClosed extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`link closed (${code}${reason ? `: ${reason}` : ""})`);
    this.name = "LinkClosed";
  }
}

/** A request got no reply in time. */
export class RequestTimeout extends Error {
  constructor(readonly request: string, readonly ms: number) {
    super(`${request}: no reply within ${ms} ms`);
    this.name = "RequestTimeout";
  }
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A frame read by the wire profile. */
export type Incoming =
  | { type: "reply"; name: string | null; id: unknown; ok: true; result: unknown }
  | { type: "reply"; name: string | null; id: unknown; ok: false; error: RemoteError }
  | { type: "message"; class: "plain" | "event" | "request"; tag: Tag; id: unknown; payload: unknown }
  | { type: "unusable"; why: string };

/** Reads and writes frames by a wire profile; free of I/O. */
export class WireCodec {
  constructor(readonly wire: WireProfile) {}

  /** The packets of one text frame (several for batching profiles); `null` when not JSON. */
  parse(text: string): unknown[] | null {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return null;
    }
    return this.wire.batch && Array.isArray(value) ? value : [value];
  }

  /** What one packet is. */
  classify(frame: unknown): Incoming {
    const w = this.wire;
    if (!isObject(frame)) return { type: "unusable", why: "not an object" };
    const tag = frame[w.tag];
    const tagged = typeof tag === "string" || typeof tag === "number";
    if (w.reply.kind === "untagged" && w.replyId && !w.replyId.inPayload && !tagged && w.replyId.key in frame) {
      return this.reply(frame, null);
    }
    if (!tagged) return { type: "unusable", why: `no ${w.tag}` };
    const r = w.reply;
    if (r.kind === "tag" && tag === r.tag) {
      const name = frame[r.forKey];
      return this.reply(frame, typeof name === "string" ? name : null);
    }
    if (r.kind === "carrier" && tag === r.tag) return this.reply(frame, null);
    if (r.kind === "suffix" && typeof tag === "string" && tag.endsWith(r.suffix)) {
      return this.reply(frame, tag.slice(0, -r.suffix.length));
    }
    if (w.error.kind === "tagged" && tag === w.error.tag) return this.reply(frame, null);
    for (const [framing, cls] of [
      [w.request, "request"],
      [w.event, "event"],
    ] as const) {
      if (framing.kind === "carrier" && tag === framing.tag) {
        const name = frame[framing.method];
        if (typeof name !== "string") return { type: "unusable", why: `no ${framing.method}` };
        return { type: "message", class: cls, tag: name, id: this.requestId(frame, cls), payload: frame[framing.args] };
      }
      if (framing.kind === "suffix" && typeof tag === "string" && tag.endsWith(framing.suffix)) {
        const name = tag.slice(0, -framing.suffix.length);
        return { type: "message", class: cls, tag: name, id: this.requestId(frame, cls), payload: this.payloadOf(frame) };
      }
    }
    const id = w.request.kind === "tagged" ? this.requestId(frame, "plain") : undefined;
    return { type: "message", class: "plain", tag, id, payload: this.payloadOf(frame) };
  }

  /** Writes a message, event or request; `id` for requests with an id key, `seq` for numbered frames. */
  encode(kind: MessageSpec["kind"], tag: Tag, payload: unknown, id: unknown, seq: number | null): string {
    const w = this.wire;
    const framing: Framing = kind === "event" ? w.event : kind === "request" ? w.request : { kind: "tagged" };
    let frame: Json = {};
    if (framing.kind === "carrier") {
      frame[framing.method] = tag;
      if (payload !== undefined) frame[framing.args] = payload;
    } else if (payload !== undefined) {
      if (w.payload !== null) frame[w.payload] = payload;
      else if (isObject(payload)) frame = { ...payload };
    }
    frame[w.tag] = framing.kind === "carrier" ? framing.tag : framing.kind === "suffix" ? `${tag}${framing.suffix}` : tag;
    if (w.sequence !== null && seq !== null) frame[w.sequence] = seq;
    if (w.requestId.kind === "key" && id !== undefined) frame[w.requestId.key] = id;
    return JSON.stringify(frame);
  }

  /** Writes the reply to request `tag` with id `id`: its result, or an error. */
  encodeReply(tag: Tag, id: unknown, seq: number | null, result: { ok: true; value: unknown } | { ok: false; error: string }): string {
    const w = this.wire;
    if (!result.ok && w.error.kind === "tagged") {
      return JSON.stringify({ [w.tag]: w.error.tag, [w.error.message]: result.error });
    }
    let frame: Json = {};
    let inner: Json | null = null;
    if (result.ok) {
      const value = result.value;
      if (w.replyResult !== null) {
        if (value !== undefined && value !== null) frame[w.replyResult] = value;
      } else if (w.payload !== null) {
        inner = isObject(value) ? { ...value } : null;
        frame[w.payload] = inner ?? value ?? {};
      } else if (isObject(value)) {
        frame = { ...value };
      }
    } else if (w.error.kind === "inReply") {
      const error = w.error.object ? { name: "Error", message: result.error } : result.error;
      if (w.error.at.inPayload && w.payload !== null) {
        inner = { [w.error.at.key]: error };
        frame[w.payload] = inner;
      } else {
        frame[w.error.at.key] = error;
      }
    }
    const r = w.reply;
    if (r.kind === "suffix") frame[w.tag] = `${tag}${r.suffix}`;
    else if (r.kind === "carrier") frame[w.tag] = r.tag;
    else if (r.kind === "tag") {
      frame[w.tag] = r.tag;
      frame[r.forKey] = tag;
    }
    if (w.sequence !== null && seq !== null) frame[w.sequence] = seq;
    if (w.replyId && id !== undefined) {
      if (w.replyId.inPayload && w.payload !== null) {
        inner = inner ?? {};
        frame[w.payload] = { ...inner, [w.replyId.key]: id };
      } else {
        frame[w.replyId.key] = id;
      }
    }
    return JSON.stringify(frame);
  }

  private envelopeKeys(): string[] {
    const w = this.wire;
    const keys = [w.tag];
    if (w.sequence !== null) keys.push(w.sequence);
    if (w.requestId.kind === "key") keys.push(w.requestId.key);
    if (w.replyId && !w.replyId.inPayload) keys.push(w.replyId.key);
    return keys;
  }

  private without(frame: Json, keys: string[]): Json {
    const out: Json = {};
    for (const [k, v] of Object.entries(frame)) if (!keys.includes(k)) out[k] = v;
    return out;
  }

  private payloadOf(frame: Json): unknown {
    const w = this.wire;
    return w.payload === null ? this.without(frame, this.envelopeKeys()) : frame[w.payload];
  }

  private requestId(frame: Json, cls: "plain" | "event" | "request"): unknown {
    const w = this.wire;
    if (w.requestId.kind === "key") return frame[w.requestId.key];
    if (w.requestId.kind === "sequence" && cls === "request" && w.sequence !== null) return frame[w.sequence];
    return undefined;
  }

  private reply(frame: Json, name: string | null): Incoming {
    const w = this.wire;
    if (w.error.kind === "tagged" && frame[w.tag] === w.error.tag) {
      const text = frame[w.error.message];
      return { type: "reply", name, id: undefined, ok: false, error: new RemoteError(typeof text === "string" ? text : "", frame) };
    }
    const inPayload = w.replyId?.inPayload && w.payload !== null;
    const object = inPayload && w.payload !== null ? frame[w.payload] : frame;
    if (!isObject(object)) return { type: "unusable", why: "reply is not an object" };
    const id = w.replyId ? object[w.replyId.key] : undefined;
    if (w.error.kind === "inReply") {
      const error = object[w.error.at.key];
      if (error !== undefined && error !== null) {
        const message = isObject(error) && typeof error.message === "string" ? error.message : String(error);
        return { type: "reply", name, id, ok: false, error: new RemoteError(message, error) };
      }
    }
    let result: unknown;
    if (w.replyResult !== null) result = object[w.replyResult];
    else if (inPayload && w.replyId) result = this.without(object, [w.replyId.key]);
    else if (w.payload !== null) result = object[w.payload];
    else result = this.without(object, [...this.envelopeKeys(), ...(w.reply.kind === "tag" ? [w.reply.forKey] : [])]);
    return { type: "reply", name, id, ok: true, result };
  }
}

/** The minimal standard `WebSocket` the client drives. */
interface Socket {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** A `WebSocket` class: the browser's (the default), or Node's `ws`. */
export type WebSocketClass = new (url: string) => object;

/** How a client connects and retries. */
export interface ClientOptions {
  /** The `WebSocket` class; the global one by default. */
  WebSocket?: WebSocketClass;
  /** Milliseconds a request waits for its reply (10 000 by default). */
  requestTimeoutMs?: number;
  /** Milliseconds the handshake may take when the protocol names no limit (10 000). */
  handshakeTimeoutMs?: number;
  /** The heartbeat variant to run, when the protocol declares several (the first by default). */
  variant?: string;
  /** Reconnect after the link drops: jittered exponential backoff from `initialMs` up to
   * `maxMs`, never sooner than the protocol's `reconnect min`; on by default. */
  reconnect?: false | { initialMs?: number; maxMs?: number };
}

/** Per-request options. */
export interface RequestOptions {
  timeoutMs?: number;
}

/** Why the link closed: the close frame's code and reason, and the protocol's name for the code. */
export interface CloseInfo {
  code: number;
  reason: string;
  /** The protocol's reason text for the code, when it declares one. */
  declared: string | null;
  /** Whether the client will reconnect. */
  reconnecting: boolean;
}

interface Pending {
  name: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

type Handler = (payload: unknown) => unknown;

/**
 * A connecting side's link: the generated `XClient` classes extend it with typed senders and
 * handlers. `connect` opens the socket and runs the handshake; the link then runs the heartbeat,
 * matches replies to requests and reconnects when the link drops, until `close`.
 */
export class Client<Events, Requests, Handshake> {
  #codec: WireCodec;
  #socket: Socket | null = null;
  #ready = false;
  #closing = false;
  #seq = 0;
  #nextId = 0;
  #pending = new Map<unknown, Pending>();
  #ordered: Pending[] = [];
  #listeners = new Map<string, Array<(payload: unknown) => void>>();
  #handlers = new Map<string, Handler>();
  #lifecycle = {
    open: [] as Array<() => void>,
    close: [] as Array<(info: CloseInfo) => void>,
    beat: [] as Array<(beat: "ping" | "pong") => void>,
  };
  #handshakeValues: Partial<Handshake> = {};
  /** What arrived before the handshake finished: its messages, and whatever came with them. */
  #inbox: Array<{ spec: MessageSpec; id: unknown; payload: unknown }> = [];
  #waiter: (() => void) | null = null;
  #timers: Array<ReturnType<typeof setTimeout>> = [];
  #lastHeard = 0;
  #closeReason = "";
  #attempt = 0;

  protected constructor(
    readonly spec: ProtocolSpec,
    readonly url: string,
    readonly options: ClientOptions = {},
  ) {
    this.#codec = new WireCodec(spec.wire);
  }

  /** Opens the link and runs the handshake, sending what `handshake` holds for each step the
   * client sends; resolves once the session is up. */
  connect(...[handshake]: {} extends Handshake ? [Handshake?] : [Handshake]): Promise<void> {
    this.#handshakeValues = handshake ?? {};
    this.#closing = false;
    return this.#establish();
  }

  /** Closes the link for good (no reconnect), with a close code and reason. */
  close(code = 1000, reason = ""): void {
    this.#closing = true;
    const cm = this.spec.session.closeMessage;
    if (cm?.sent && this.#ready) this.#sendMessage(cm.message, { [cm.reason]: reason });
    this.#socket?.close(code, reason);
  }

  /** Whether the handshake finished and the link is up. */
  get isOpen(): boolean {
    return this.#ready;
  }

  /** Calls `fn` each time the link is up (after every handshake, reconnects included). */
  onOpen(fn: () => void): void {
    this.#lifecycle.open.push(fn);
  }

  /** Calls `fn` each time the link closes. */
  onClose(fn: (info: CloseInfo) => void): void {
    this.#lifecycle.close.push(fn);
  }

  /** Calls `fn` with every heartbeat the peer sends: its pings, or its pongs to ours. */
  onBeat(fn: (beat: "ping" | "pong") => void): void {
    this.#lifecycle.beat.push(fn);
  }

  /** Calls `fn` with every `name` event the peer sends. */
  on<K extends keyof Events & string>(name: K, fn: (payload: Events[K]) => void): void {
    const list = this.#listeners.get(name) ?? [];
    list.push(fn as (payload: unknown) => void);
    this.#listeners.set(name, list);
  }

  /** Answers the peer's `name` requests with what `fn` returns (a thrown error fails the reply). */
  handle<K extends keyof Requests & string>(
    name: K,
    fn: (payload: Requests[K] extends { payload: infer P } ? P : never) =>
      | (Requests[K] extends { reply: infer R } ? R : never)
      | Promise<Requests[K] extends { reply: infer R } ? R : never>,
  ): void {
    this.#handlers.set(name, fn as Handler);
  }

  /** Sends request `name` and resolves with its reply's result. */
  protected request(name: string, payload: unknown, options: RequestOptions = {}): Promise<unknown> {
    const spec = this.#message(name);
    if (!this.#ready || this.#socket === null) return Promise.reject(new LinkClosed(1006, "not connected"));
    return this.#sendRequest(spec, payload, options);
  }

  /** Sends event or message `name`. */
  protected send(name: string, payload: unknown): void {
    if (!this.#ready) throw new LinkClosed(1006, "not connected");
    this.#sendMessage(name, payload);
  }

  #message(name: string): MessageSpec {
    const spec = this.spec.messages.find((m) => m.name === name);
    if (spec === undefined) throw new Error(`${this.spec.name} has no message ${name}`);
    return spec;
  }

  #establish(): Promise<void> {
    const Ws = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
    if (Ws === undefined) return Promise.reject(new Error("no WebSocket class: pass options.WebSocket"));
    return new Promise<void>((resolve, reject) => {
      const socket = new Ws(this.url) as Socket;
      this.#socket = socket;
      this.#seq = 0;
      this.#inbox = [];
      this.#closeReason = "";
      let settled = false;
      const fail = (error: Error) => {
        if (!settled) {
          settled = true;
          reject(error);
        }
      };
      socket.onopen = () => {
        this.#lastHeard = Date.now();
        this.#handshake().then(
          () => {
            settled = true;
            this.#ready = true;
            this.#attempt = 0;
            this.#startHeartbeat();
            // Frames that came in one read with the handshake's last.
            for (const early of this.#inbox.splice(0)) this.#deliver(early.spec, early.id, early.payload);
            resolve();
            for (const fn of this.#lifecycle.open) fn();
          },
          (error: Error) => {
            fail(error);
            socket.close(1000, "handshake failed");
          },
        );
      };
      socket.onmessage = (ev) => this.#received(ev.data);
      socket.onerror = () => fail(new LinkClosed(1006, "connection failed"));
      socket.onclose = (ev) => {
        this.#closed(socket, ev.code, ev.reason);
        fail(new LinkClosed(ev.code, ev.reason));
      };
    });
  }

  async #handshake(): Promise<void> {
    const session = this.spec.session;
    if (session.handshake.length === 0) return;
    const ms = session.handshakeTimeoutMs ?? this.options.handshakeTimeoutMs ?? 10_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`handshake took longer than ${ms} ms`)), ms);
    });
    try {
      await Promise.race([this.#runSteps(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #runSteps(): Promise<void> {
    const values = this.#handshakeValues as Record<string, unknown>;
    for (const step of this.spec.session.handshake) {
      if (!step.clientSends) {
        await this.#expect(step.messages);
        continue;
      }
      // Of the step's alternatives, the ones this side sends; the first given a value.
      const ours = step.messages.filter((m) => this.spec.messages.some((x) => x.name === m && x.sends));
      const name = ours.find((m) => values[m] !== undefined) ?? ours[0];
      if (name === undefined) throw new Error(`${this.spec.name}: this side sends none of ${step.messages.join(", ")}`);
      const spec = this.#message(name);
      const payload = values[name];
      if (step.request) {
        const reply = await this.#sendRequest(spec, payload, {});
        this.handshakeReplies.set(name, reply);
      } else {
        this.#sendMessage(name, payload);
      }
    }
  }

  /** Replies to the handshake's requests, by request name. */
  readonly handshakeReplies = new Map<string, unknown>();
  /** Messages the server sent in the handshake, by name. */
  readonly handshakeReceived = new Map<string, unknown>();

  #expect(names: string[]): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        const i = this.#inbox.findIndex((m) => names.includes(m.spec.name));
        if (i < 0) return false;
        const [got] = this.#inbox.splice(i, 1);
        this.handshakeReceived.set(got.spec.name, got.payload);
        this.#waiter = null;
        resolve();
        return true;
      };
      if (!check()) this.#waiter = () => void check();
    });
  }

  #heartbeatRule(): HeartbeatRule | undefined {
    const beats = this.spec.session.heartbeats;
    return this.options.variant === undefined ? beats[0] : beats.find((b) => b.variant === this.options.variant);
  }

  #startHeartbeat(): void {
    const rule = this.#heartbeatRule();
    if (rule === undefined) return;
    let interval: number | undefined;
    if ("ms" in rule.interval) interval = rule.interval.ms;
    else {
      const from = this.handshakeReceived.get(rule.interval.message);
      const value = isObject(from) ? from[rule.interval.field] : undefined;
      if (typeof value === "number") interval = value;
    }
    if (interval === undefined) return;
    const every = interval;
    const socket = this.#socket;
    if (socket === null) return;
    if (rule.clientPings) {
      const ping = () => {
        if (this.#socket !== socket || !this.#ready) return;
        this.#beat(rule.ping);
        this.#timers.push(setTimeout(ping, every));
      };
      this.#timers.push(setTimeout(ping, every));
    }
    // The watchdog: silence longer than the interval plus grace ends the link.
    const deadline = every + rule.graceMs;
    const watch = () => {
      if (this.#socket !== socket || !this.#ready) return;
      const silent = Date.now() - this.#lastHeard;
      if (silent >= deadline) {
        socket.close(rule.clientMissed ?? rule.missed ?? 4000, "heartbeat missed");
        return;
      }
      this.#timers.push(setTimeout(watch, deadline - silent));
    };
    this.#timers.push(setTimeout(watch, deadline));
  }

  #beat(beat: Beat): void {
    if ("text" in beat) this.#socket?.send(beat.text);
    else this.#sendMessage(beat.message, this.#message(beat.message).payload ? {} : undefined);
  }

  #sendMessage(name: string, payload: unknown): void {
    const spec = this.#message(name);
    this.#write(spec.kind, spec, payload, undefined);
  }

  #write(kind: MessageSpec["kind"], spec: MessageSpec, payload: unknown, id: unknown): number | null {
    const seq = this.spec.wire.sequence !== null ? ++this.#seq : null;
    const wirePayload = spec.positional !== null && isObject(payload) ? spec.positional.map((f) => payload[f]) : payload;
    const withPayload = spec.payload ? (wirePayload ?? (this.spec.wire.payload !== null ? {} : undefined)) : undefined;
    this.#socket?.send(this.#codec.encode(kind, spec.tag, withPayload, id, seq));
    return seq;
  }

  #sendRequest(spec: MessageSpec, payload: unknown, options: RequestOptions): Promise<unknown> {
    const w = this.spec.wire;
    const ms = options.timeoutMs ?? this.options.requestTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      let id: unknown;
      if (w.requestId.kind === "key") {
        this.#nextId += 1;
        id = w.requestId.text ? this.#nextId.toString(16).padStart(8, "0") : this.#nextId;
      }
      const entry: Pending = {
        name: spec.name,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#forget(entry, id);
          reject(new RequestTimeout(spec.name, ms));
        }, ms),
      };
      const seq = this.#write("request", spec, payload, id);
      if (w.requestId.kind === "sequence") id = seq;
      if (w.requestId.kind === "ordered") this.#ordered.push(entry);
      else this.#pending.set(id, entry);
    });
  }

  #forget(entry: Pending, id: unknown): void {
    this.#pending.delete(id);
    this.#ordered = this.#ordered.filter((p) => p !== entry);
  }

  #received(data: unknown): void {
    if (typeof data !== "string") return;
    this.#lastHeard = Date.now();
    const rule = this.#heartbeatRule();
    if (rule !== undefined && !rule.clientPings && "text" in rule.ping && data === rule.ping.text) {
      if (rule.pong !== null) this.#beat(rule.pong);
      this.#heard("ping");
      return;
    }
    if (rule !== undefined && rule.clientPings && rule.pong !== null && "text" in rule.pong && data === rule.pong.text) {
      this.#heard("pong");
      return;
    }
    for (const packet of this.#codec.parse(data) ?? []) this.#dispatch(this.#codec.classify(packet));
  }

  #dispatch(frame: Incoming): void {
    if (frame.type === "unusable") return;
    if (frame.type === "reply") {
      const entry = this.spec.wire.requestId.kind === "ordered" ? this.#ordered.shift() : this.#pending.get(frame.id);
      if (entry === undefined) return;
      clearTimeout(entry.timer);
      this.#pending.delete(frame.id);
      if (frame.ok) entry.resolve(frame.result);
      else entry.reject(frame.error);
      return;
    }
    const isRequest = frame.class === "request" || (frame.class === "plain" && frame.id !== undefined);
    const spec =
      this.spec.messages.find((m) => m.receives && m.tag === frame.tag && (m.kind === "request") === isRequest) ??
      this.spec.messages.find((m) => m.receives && m.tag === frame.tag);
    if (spec === undefined) return;
    const payload =
      spec.positional !== null && Array.isArray(frame.payload)
        ? Object.fromEntries(spec.positional.map((f, i) => [f, (frame.payload as unknown[])[i]]))
        : frame.payload;
    const cm = this.spec.session.closeMessage;
    if (cm !== null && spec.name === cm.message && isObject(payload)) {
      // The peer is closing; the socket's close that follows carries this reason.
      const reason = payload[cm.reason];
      this.#closeReason = typeof reason === "string" ? reason : JSON.stringify(reason ?? "");
      const code = cm.code !== null ? payload[cm.code] : undefined;
      if (typeof code === "number") this.#socket?.close(code, this.#closeReason);
      return;
    }
    if (!this.#ready) {
      this.#inbox.push({ spec, id: frame.id, payload });
      this.#waiter?.();
      return;
    }
    this.#deliver(spec, frame.id, payload);
  }

  /** Hands a message of the established session to the heartbeat, a request handler or the
   * event listeners. */
  #deliver(spec: MessageSpec, id: unknown, payload: unknown): void {
    const rule = this.#heartbeatRule();
    if (rule !== undefined && !rule.clientPings && "message" in rule.ping && rule.ping.message === spec.name) {
      if (rule.pong !== null) this.#beat(rule.pong);
      this.#heard("ping");
      return;
    }
    if (rule?.clientPings && rule.pong !== null && "message" in rule.pong && rule.pong.message === spec.name) {
      this.#heard("pong");
      return;
    }
    if (spec.kind === "request" && id !== undefined) {
      void this.#answer(spec, id, payload);
      return;
    }
    for (const fn of this.#listeners.get(spec.name) ?? []) fn(payload);
  }

  #heard(beat: "ping" | "pong"): void {
    for (const fn of this.#lifecycle.beat) fn(beat);
  }

  async #answer(spec: MessageSpec, id: unknown, payload: unknown): Promise<void> {
    const handler = this.#handlers.get(spec.name);
    let result: { ok: true; value: unknown } | { ok: false; error: string };
    try {
      if (handler === undefined) throw new Error(`no handler for ${spec.name}`);
      result = { ok: true, value: await handler(payload) };
    } catch (e) {
      result = { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    const seq = this.spec.wire.sequence !== null ? ++this.#seq : null;
    if (this.#ready) this.#socket?.send(this.#codec.encodeReply(spec.tag, id, seq, result));
  }

  #closed(socket: Socket, code: number, reason: string): void {
    if (this.#socket !== socket) return;
    const wasReady = this.#ready;
    this.#ready = false;
    this.#socket = null;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers = [];
    if (reason === "") reason = this.#closeReason;
    const error = new LinkClosed(code, reason);
    for (const p of [...this.#pending.values(), ...this.#ordered]) {
      clearTimeout(p.timer);
      p.reject(error);
    }
    this.#pending.clear();
    this.#ordered = [];
    const reconnecting = wasReady && !this.#closing && this.options.reconnect !== false;
    const info = { code, reason, declared: this.spec.closeCodes[code] ?? null, reconnecting };
    for (const fn of this.#lifecycle.close) fn(info);
    if (reconnecting) this.#retry();
  }

  /** The wait before reconnect attempt `attempt` (from 0): jittered exponential backoff, never
   * below the protocol's minimum. */
  backoffMs(attempt: number): number {
    const r = this.options.reconnect === false ? undefined : this.options.reconnect;
    const initial = r?.initialMs ?? 500;
    const max = r?.maxMs ?? 30_000;
    const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30));
    return Math.max(this.spec.session.reconnectMinMs, ceiling / 2 + Math.random() * (ceiling / 2));
  }

  #retry(): void {
    const wait = this.backoffMs(this.#attempt);
    this.#attempt += 1;
    setTimeout(() => {
      if (this.#closing) return;
      this.#establish().catch(() => {
        if (!this.#closing) this.#retry();
      });
    }, wait);
  }
}
