// The protolink TypeScript runtime: what the generated clients (`protolink ts`) specialise.
// Frames are read and written by the protocol's wire profile; a `Client` runs its session rules
// (handshake, heartbeat, request ids or ordered replies, timeouts, close codes, reconnect) over a
// standard `WebSocket`, the browser's or any class with the same interface (Node's `ws`). What
// the peer sends is read as the Rust link reads it: the sequence number, a `strict` envelope and
// the protocol's `invalid` rules, with the same close codes (see `Client`).

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
  /** The JSON type of tags: strings, or integers (`tag KEY int`). */
  tagType: "string" | "int";
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
  /** Whether a frame holds exactly its envelope's keys, the payload key always present. */
  strict: boolean;
  /** Whether a frame may hold a JSON array of packets. */
  batch: boolean;
  /** Whether a binary frame is read as UTF-8 text (else it closes the link with 1003). */
  binaryText: boolean;
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

/** What was wrong with a frame that cannot be used, as `invalid` rules name it. */
export type InvalidKind = "json" | "object" | "array" | "untagged" | "unknown" | "payload" | "envelope";

/** One `invalid KIND [of MESSAGES] answers "TEXT" | ignored | closes "TEXT"` rule. The texts may
 * name `{name}`, `{detail}`, `{side}` and `{peer}`. */
export interface InvalidRule {
  kind: InvalidKind;
  /** The messages it applies to, by name; every message when empty. */
  messages: string[];
  action: { answer: string; name: string | null } | { closes: string } | "ignored";
}

/** A protocol's `session` block, as far as a client runs it. */
export interface SessionRules {
  handshake: HandshakeStep[];
  handshakeTimeoutMs: number | null;
  /** The close code (and reason, when declared as a text) for traffic before the handshake. */
  beforeHandshake: number | null;
  beforeHandshakeReason: string | null;
  /** When set, any frame that cannot be used closes the link with this reason and the detail. */
  invalidCloses: string | null;
  /** What becomes of a frame that cannot be used: the first rule that fits it applies. */
  invalidRules: InvalidRule[];
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
  /** This side's endpoint name and its peer's (`{side}` and `{peer}` in `invalid` rules). */
  side: string;
  peer: string;
  wire: WireProfile;
  session: SessionRules;
  messages: MessageSpec[];
  /** Close codes and their reasons. */
  closeCodes: Record<number, string>;
  /** The schemas payloads and replies are held to; nothing is checked without them. */
  schemas?: Schemas;
}

/** A JSON Schema, as protolink writes them: a subset of draft 2020-12. */
export type Schema = boolean | { [keyword: string]: unknown };

/** The JSON Schemas of a protocol's payloads and replies, by the name the client calls the
 * message, and of its named types, by the name a `$ref` (`#/types/NAME`) gives them. */
export interface Schemas {
  types: Record<string, Schema>;
  payloads: Record<string, Schema>;
  replies: Record<string, Schema>;
}

/** A payload (or a reply's result) that does not hold to its message's definition: each problem
 * names the field and the rule, as the Rust link's validation does. */
export class InvalidPayload extends Error {
  constructor(
    readonly messageName: string,
    readonly problems: string[],
  ) {
    super(`${messageName}: ${problems.join("; ")}`);
    this.name = "InvalidPayload";
  }
}

/** One rule `value` breaks, at `path`; `type` when the value is not even of the schema's type. */
interface Problem {
  path: string;
  rule: string;
  type: boolean;
}

/**
 * What in `value` does not hold to `schema` (`types` resolves `$ref`s): each problem worded as
 * the Rust link words a failed constraint (`` `room` must not be empty ``, `` `list[2].id` must
 * be at least 1 ``), or the JSON type the value should have. Empty when it holds. A positional
 * payload's elements are named by its fields (`positional`), as the Rust link names them.
 */
export function validate(
  schema: Schema,
  value: unknown,
  types: Record<string, Schema>,
  positional: string[] | null = null,
): string[] {
  const problems: Problem[] = [];
  walk(schema, value, "", types, problems, positional);
  return problems.map((p) => (p.path === "" ? p.rule : `\`${p.path}\` ${p.rule}`));
}

const patterns = new Map<string, RegExp | null>();

/** A definition's pattern as a JavaScript `RegExp`, compiled once; `null` for the rare pattern
 * JavaScript reads differently enough to refuse (the Rust side checks it either way). */
function compiled(pattern: string): RegExp | null {
  let regex = patterns.get(pattern);
  if (regex === undefined) {
    try {
      regex = new RegExp(pattern, "u");
    } catch {
      regex = null;
    }
    patterns.set(pattern, regex);
  }
  return regex;
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function hasType(value: unknown, type: string): boolean {
  const actual = jsonType(value);
  return actual === type || (type === "number" && actual === "integer");
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function field(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function lengthRules(problems: Problem[], path: string, len: number, min: unknown, max: unknown): void {
  if (typeof min === "number" && len < min) {
    problems.push({ path, rule: min === 1 ? "must not be empty" : `length must be at least ${min}`, type: false });
  }
  if (typeof max === "number" && len > max) problems.push({ path, rule: `length must be at most ${max}`, type: false });
}

/** Each alternative's problems with `value` (an empty list for one it holds to). */
function alternatives(branches: Schema[], value: unknown, path: string, types: Record<string, Schema>): Problem[][] {
  return branches.map((branch) => {
    const found: Problem[] = [];
    walk(branch, value, path, types, found);
    return found;
  });
}

function walk(
  schema: Schema,
  value: unknown,
  path: string,
  types: Record<string, Schema>,
  problems: Problem[],
  positional: string[] | null = null,
): void {
  if (schema === true) return;
  if (schema === false) {
    problems.push({ path, rule: "is not allowed here", type: true });
    return;
  }
  const s = schema;
  if (typeof s.$ref === "string") {
    const target = types[s.$ref.slice(s.$ref.lastIndexOf("/") + 1)];
    if (target !== undefined) walk(target, value, path, types, problems, positional);
  }
  if (s.type !== undefined) {
    const wanted = (Array.isArray(s.type) ? s.type : [s.type]) as string[];
    if (!wanted.some((t) => hasType(value, t))) {
      problems.push({ path, rule: `must be ${wanted.map((t) => (t === "integer" || t === "array" || t === "object" ? `an ${t}` : t === "null" ? "null" : `a ${t}`)).join(" or ")}`, type: true });
      return;
    }
  }
  if ("const" in s && !sameJson(value, s.const)) {
    problems.push({ path, rule: `must be ${JSON.stringify(s.const)}`, type: true });
  }
  if (Array.isArray(s.enum) && !s.enum.some((v) => sameJson(v, value))) {
    problems.push({ path, rule: `must be one of ${s.enum.map((v) => JSON.stringify(v)).join(", ")}`, type: true });
  }
  if (typeof value === "number") {
    if (typeof s.minimum === "number" && value < s.minimum) problems.push({ path, rule: `must be at least ${s.minimum}`, type: false });
    if (typeof s.maximum === "number" && value > s.maximum) problems.push({ path, rule: `must be at most ${s.maximum}`, type: false });
    if (typeof s.exclusiveMaximum === "number" && value >= s.exclusiveMaximum) {
      problems.push({ path, rule: `must be less than ${s.exclusiveMaximum}`, type: false });
    }
  }
  if (typeof value === "string") {
    lengthRules(problems, path, [...value].length, s.minLength, s.maxLength);
    const pattern = typeof s.pattern === "string" ? compiled(s.pattern) : null;
    if (pattern !== null && !pattern.test(value)) {
      problems.push({ path, rule: `must match the pattern \`${s.pattern}\``, type: false });
    }
  }
  if (Array.isArray(value)) {
    lengthRules(problems, path, value.length, s.minItems, s.maxItems);
    const prefix = Array.isArray(s.prefixItems) ? (s.prefixItems as Schema[]) : [];
    value.forEach((item, i) => {
      const itemSchema = i < prefix.length ? prefix[i] : (s.items as Schema | undefined);
      const at = path === "" && positional !== null ? (positional[i] ?? `[${i}]`) : `${path}[${i}]`;
      if (itemSchema !== undefined) walk(itemSchema, item, at, types, problems);
    });
  }
  if (isObject(value)) {
    const properties = isObject(s.properties) ? (s.properties as Record<string, Schema>) : {};
    for (const key of Array.isArray(s.required) ? (s.required as string[]) : []) {
      if (!(key in value)) problems.push({ path: field(path, key), rule: "is missing", type: false });
    }
    for (const [key, item] of Object.entries(value)) {
      if (key in properties) walk(properties[key], item, field(path, key), types, problems);
      else if (s.additionalProperties === false) problems.push({ path: field(path, key), rule: "is an unknown field", type: false });
      else if (isObject(s.additionalProperties)) walk(s.additionalProperties as Schema, item, `${path}[${JSON.stringify(key)}]`, types, problems);
    }
    lengthRules(problems, path, Object.keys(value).length, s.minProperties, s.maxProperties);
  }
  if (Array.isArray(s.allOf)) for (const part of s.allOf as Schema[]) walk(part, value, path, types, problems);
  for (const key of ["anyOf", "oneOf"] as const) {
    if (!Array.isArray(s[key])) continue;
    const found = alternatives(s[key] as Schema[], value, path, types);
    if (found.some((f) => f.length === 0)) continue;
    // No alternative holds: report the one whose type the value has (a constraint it breaks),
    // else what the alternatives would take.
    const typed = found.find((f) => !f.some((p) => p.type && p.path === path));
    if (typed !== undefined) problems.push(...typed);
    else problems.push({ path, rule: found.map((f) => f.find((p) => p.path === path)?.rule ?? "").filter((r) => r !== "").join(", or "), type: true });
  }
  if (s.not !== undefined) {
    const found: Problem[] = [];
    walk(s.not as Schema, value, path, types, found);
    if (found.length === 0) problems.push({ path, rule: "is not allowed here", type: true });
  }
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
  | { type: "unusable"; kind: InvalidKind; why: string };

/** Why a packet is unusable. */
function unusable(kind: InvalidKind, why: string): Incoming {
  return { type: "unusable", kind, why };
}

/** Whether `value` is a JSON integer (as the Rust codec reads an `i64`). */
function isInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value);
}

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

  /** Whether `value` is a tag of the profile's type. */
  isTag(value: unknown): value is Tag {
    return this.wire.tagType === "int" ? isInteger(value) : typeof value === "string";
  }

  /** What one packet is: as `runtime/src/wire.rs` classifies it, with the same checks of the
   * envelope (a `strict` one's keys, the sequence number, the request id's type). */
  classify(frame: unknown): Incoming {
    const w = this.wire;
    if (!isObject(frame)) return unusable(Array.isArray(frame) ? "array" : "object", "not an object");
    if (w.strict && w.payload !== null) {
      const id = w.requestId.kind === "key" ? w.requestId.key : null;
      const extra = Object.keys(frame).find((k) => k !== w.tag && k !== w.sequence && k !== w.payload && k !== id);
      if (extra !== undefined) return unusable("envelope", `unexpected key ${JSON.stringify(extra)}`);
      if (!(w.payload in frame)) return unusable("envelope", `missing key ${JSON.stringify(w.payload)}`);
    }
    // Every frame carries its number; the order is not checked (neither does the Rust link).
    if (w.sequence !== null && !isInteger(frame[w.sequence])) {
      return unusable("envelope", `${JSON.stringify(w.sequence)} is missing or not an integer`);
    }
    const tag = frame[w.tag];
    const tagged = this.isTag(tag);
    if (w.reply.kind === "untagged" && w.replyId && !w.replyId.inPayload && !tagged && w.replyId.key in frame) {
      return this.reply(frame, null);
    }
    if (!tagged) return unusable("untagged", `${JSON.stringify(w.tag)} is missing or not a ${w.tagType === "int" ? "integer" : "string"}`);
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
        if (typeof name !== "string") return unusable("envelope", `${JSON.stringify(framing.method)} is missing or not a string`);
        return this.message(frame, cls, name, frame[framing.args]);
      }
      if (framing.kind === "suffix" && typeof tag === "string" && tag.endsWith(framing.suffix)) {
        return this.message(frame, cls, tag.slice(0, -framing.suffix.length), this.payloadOf(frame));
      }
    }
    return this.message(frame, "plain", tag, this.payloadOf(frame));
  }

  private message(frame: Json, cls: "plain" | "event" | "request", tag: Tag, payload: unknown): Incoming {
    const w = this.wire;
    let id: unknown;
    if (w.requestId.kind === "key" && (cls !== "plain" || w.request.kind === "tagged")) {
      id = frame[w.requestId.key];
      if (id !== undefined && !isInteger(id) && typeof id !== "string") {
        return unusable("envelope", `${JSON.stringify(w.requestId.key)} is not an integer or a string`);
      }
    } else if (w.requestId.kind === "sequence" && cls === "request" && w.sequence !== null) {
      id = frame[w.sequence];
    }
    return { type: "message", class: cls, tag, id, payload };
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

  /** Writes the reply to request `tag` with id `id`: its result, or an error (with its class
   * name, for protocols whose errors are objects). */
  encodeReply(
    tag: Tag,
    id: unknown,
    seq: number | null,
    result: { ok: true; value: unknown } | { ok: false; error: string; name?: string },
  ): string {
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
      const error = w.error.object ? { name: result.name ?? "Error", message: result.error } : result.error;
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

  private reply(frame: Json, name: string | null): Incoming {
    const w = this.wire;
    if (w.error.kind === "tagged" && frame[w.tag] === w.error.tag) {
      const text = frame[w.error.message];
      return { type: "reply", name, id: undefined, ok: false, error: new RemoteError(typeof text === "string" ? text : "", frame) };
    }
    const inPayload = w.replyId?.inPayload && w.payload !== null;
    const object = inPayload && w.payload !== null ? frame[w.payload] : frame;
    if (!isObject(object)) return unusable("envelope", "the reply's payload is not an object");
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
  binaryType?: string;
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
  /** Invalid frames a link tolerates before it closes with 1008 (16, as the Rust link's
   * `LinkConfig::max_invalid`). */
  maxInvalid?: number;
  /** Reconnect after the link drops: jittered exponential backoff from `initialMs` (100) up to
   * `maxMs` (30 000), never sooner than the protocol's `reconnect min`, as the Rust `Backoff`;
   * on by default. With `retryFirst`, a first `connect()` that fails is retried the same way
   * (as Rust's `connect(url).reconnecting(..)` does) and resolves once a link is up. */
  reconnect?: false | { initialMs?: number; maxMs?: number; retryFirst?: boolean };
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

/** A frame the peer sent that could not be used, and what became of it: answered with an
 * error, ignored (an unknown message, or an `invalid ... ignored` rule), counted against the
 * link, or the reason the link closed. */
export interface InvalidFrame {
  kind: InvalidKind;
  detail: string;
  outcome: "answered" | "ignored" | "counted" | "closed";
}

interface Pending {
  name: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

type Handler = (payload: unknown) => unknown;

/** The Rust link's close codes for frames it cannot take. */
const CLOSE_UNSUPPORTED = 1003;
const CLOSE_INVALID_DATA = 1007;
const CLOSE_POLICY = 1008;

/** A close reason cut to the 123 bytes of UTF-8 a close frame holds, on a character boundary. */
function closeReason(reason: string): string {
  const bytes = new TextEncoder();
  let out = reason;
  while (bytes.encode(out).length > 123) out = out.slice(0, -1);
  return out;
}

/** Closes a socket with `code`. Browsers let a page close only with 1000 or 3000-4999; where
 * `code` is refused (1003, 1007, 1008 in a browser), the socket closes with 1000 and the same
 * reason, and the link still reports `code`. */
function closeSocket(socket: Socket, code: number, reason: string): void {
  const text = closeReason(reason);
  try {
    socket.close(code, text);
  } catch {
    socket.close(1000, text);
  }
}

/** An `invalid` rule's text with its placeholders filled in; other braces are kept. */
function render(text: string, values: Record<"name" | "detail" | "side" | "peer", string>): string {
  return text.replace(/\{(name|detail|side|peer)\}/g, (_, key: "name" | "detail" | "side" | "peer") => values[key]);
}

/** The bytes of a binary frame's data, as `WebSocket`s hand them over. */
function bytesOf(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

/**
 * A connecting side's link: the generated `XClient` classes extend it with typed senders and
 * handlers. `connect` opens the socket and runs the handshake; the link then runs the heartbeat,
 * matches replies to requests and reconnects when the link drops, until `close`.
 *
 * What the peer sends is read as the Rust link reads it: binary frames are text where the wire
 * says `binary text` (1007 when not UTF-8) and close the link with 1003 elsewhere; every frame of
 * a numbered protocol must carry an integer sequence number (the order is not checked); a
 * `strict` envelope holds only its keys; and a frame that cannot be used goes through the
 * protocol's `invalid` rules: answered where it can be, ignored where a rule says so (and when it
 * names an unknown message), or counted, closing the link with 1008 past `maxInvalid`. The types
 * are compile-time only: payloads are not checked against the definition's constraints.
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
    invalid: [] as Array<(frame: InvalidFrame) => void>,
  };
  #handshakeValues: Partial<Handshake> = {};
  /** What arrived before the handshake finished: its messages, and whatever came with them. */
  #inbox: Array<{ spec: MessageSpec; id: unknown; payload: unknown }> = [];
  #waiter: (() => void) | null = null;
  #timers: Array<ReturnType<typeof setTimeout>> = [];
  #lastHeard = 0;
  #closeReason = "";
  /** The code and reason this side closed the current socket with. */
  #closedWith: { code: number; reason: string } | null = null;
  #awaitingHandshakeReply = false;
  #invalid = 0;
  #attempt = 0;
  /** Whether a reconnect loop runs, and the wait before its next attempt. */
  #keepingUp = false;
  #retry: { timer: ReturnType<typeof setTimeout>; cancel: () => void } | null = null;

  protected constructor(
    readonly spec: ProtocolSpec,
    readonly url: string,
    readonly options: ClientOptions = {},
  ) {
    this.#codec = new WireCodec(spec.wire);
  }

  /** Opens the link and runs the handshake, sending what `handshake` holds for each step the
   * client sends; resolves once the session is up. Rejects when that attempt fails, unless
   * `options.reconnect.retryFirst` asks to retry it. */
  connect(...[handshake]: {} extends Handshake ? [Handshake?] : [Handshake]): Promise<void> {
    this.#handshakeValues = handshake ?? {};
    this.#closing = false;
    this.#attempt = 0;
    const r = this.options.reconnect;
    return r !== false && r?.retryFirst === true ? this.#keepUp(false) : this.#establish();
  }

  /** Closes the link for good (no reconnect), with a close code and reason. */
  close(code = 1000, reason = ""): void {
    this.#closing = true;
    if (this.#retry !== null) {
      clearTimeout(this.#retry.timer);
      this.#retry.cancel();
      this.#retry = null;
    }
    this.#closeLink(code, reason);
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

  /** Calls `fn` with every frame the peer sent that could not be used (the Rust link logs
   * them), and what became of it. */
  onInvalid(fn: (frame: InvalidFrame) => void): void {
    this.#lifecycle.invalid.push(fn);
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
    if (!this.#isUp) return Promise.reject(new LinkClosed(1006, "not connected"));
    const problems = this.#problems(this.spec.schemas?.payloads[name], this.#wirePayload(spec, payload), spec);
    if (problems.length > 0) return Promise.reject(new InvalidPayload(name, problems));
    return this.#sendRequest(spec, payload, options);
  }

  /** Sends event or message `name`; throws `InvalidPayload` when the payload breaks its
   * definition (nothing is sent). */
  protected send(name: string, payload: unknown): void {
    if (!this.#isUp) throw new LinkClosed(1006, "not connected");
    const spec = this.#message(name);
    const problems = this.#problems(this.spec.schemas?.payloads[name], this.#wirePayload(spec, payload), spec);
    if (problems.length > 0) throw new InvalidPayload(name, problems);
    this.#sendMessage(name, payload);
  }

  /** The handshake is done and the socket open (not closing). */
  get #isUp(): boolean {
    return this.#ready && this.#socket !== null && this.#socket.readyState === 1;
  }

  /** What in `value` (as the wire carries it) breaks `schema`, for message `spec` (nothing
   * without a schema). */
  #problems(schema: Schema | undefined, value: unknown, spec: MessageSpec | null = null): string[] {
    const types = this.spec.schemas?.types;
    return schema === undefined || types === undefined ? [] : validate(schema, value, types, spec?.positional ?? null);
  }

  /** A payload as the wire carries it: a positional payload's fields as an array. */
  #wirePayload(spec: MessageSpec, payload: unknown): unknown {
    return spec.positional !== null && isObject(payload) ? spec.positional.map((f) => payload[f]) : payload;
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
      // Binary frames as bytes, read at once (a browser's default is a `Blob`).
      if ("binaryType" in socket) socket.binaryType = "arraybuffer";
      this.#socket = socket;
      this.#seq = 0;
      this.#invalid = 0;
      this.#inbox = [];
      this.#closeReason = "";
      this.#closedWith = null;
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
            if (this.#socket !== socket) return fail(new LinkClosed(1006, "closed during the handshake"));
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
            if (this.#socket === socket) this.#closeLink(1000, "handshake failed");
          },
        );
      };
      socket.onmessage = (ev) => {
        if (this.#socket === socket) this.#received(ev.data);
      };
      socket.onerror = () => fail(new LinkClosed(1006, "connection failed"));
      socket.onclose = (ev) => {
        const info = this.#closed(socket, ev.code, ev.reason);
        fail(new LinkClosed(info?.code ?? ev.code, info?.reason ?? ev.reason));
      };
    });
  }

  /** Connects until a link is up (`waitFirst`: after a wait), each failed attempt followed by
   * the backoff's wait; rejects when `close` stops it. */
  #keepUp(waitFirst: boolean): Promise<void> {
    this.#keepingUp = true;
    return new Promise<void>((resolve, reject) => {
      const attempt = () => {
        this.#retry = null;
        this.#establish().then(
          () => {
            this.#keepingUp = false;
            resolve();
          },
          (error: Error) => {
            if (this.#closing) {
              this.#keepingUp = false;
              reject(error);
            } else wait();
          },
        );
      };
      const wait = () => {
        const timer = setTimeout(attempt, this.backoffMs(this.#attempt));
        this.#attempt += 1;
        this.#retry = {
          timer,
          cancel: () => {
            this.#keepingUp = false;
            reject(new LinkClosed(1000, "closed while reconnecting"));
          },
        };
      };
      if (waitFirst) wait();
      else attempt();
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
      this.#awaitingHandshakeReply = false;
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
      // What the application gives the handshake is held to its definition too.
      if (payload !== undefined) {
        const problems = this.#problems(this.spec.schemas?.payloads[name], this.#wirePayload(spec, payload), spec);
        if (problems.length > 0) throw new InvalidPayload(name, problems);
      }
      if (step.request) {
        // The peer may send ahead of its reply: that is no traffic before the handshake.
        this.#awaitingHandshakeReply = true;
        const reply = await this.#sendRequest(spec, payload, {});
        this.#awaitingHandshakeReply = false;
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
        this.#closeLink(rule.clientMissed ?? rule.missed ?? 4000, "heartbeat missed");
        return;
      }
      this.#timers.push(setTimeout(watch, deadline - silent));
    };
    this.#timers.push(setTimeout(watch, deadline));
  }

  #beat(beat: Beat): void {
    if ("text" in beat) this.#transmit(beat.text);
    else this.#sendMessage(beat.message, this.#message(beat.message).payload ? {} : undefined);
  }

  #sendMessage(name: string, payload: unknown): void {
    const spec = this.#message(name);
    this.#write(spec.kind, spec, payload, undefined);
  }

  #write(kind: MessageSpec["kind"], spec: MessageSpec, payload: unknown, id: unknown): number | null {
    const seq = this.#nextSeq();
    const wirePayload = this.#wirePayload(spec, payload);
    const withPayload = spec.payload ? (wirePayload ?? (this.spec.wire.payload !== null ? {} : undefined)) : undefined;
    this.#transmit(this.#codec.encode(kind, spec.tag, withPayload, id, seq));
    return seq;
  }

  #nextSeq(): number | null {
    return this.spec.wire.sequence !== null ? ++this.#seq : null;
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
    let text: string;
    if (typeof data === "string") text = data;
    else {
      const bytes = bytesOf(data);
      if (bytes === null || !this.spec.wire.binaryText) {
        this.#closeLink(CLOSE_UNSUPPORTED, "binary frames are not part of this protocol");
        return;
      }
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      } catch {
        this.#closeLink(CLOSE_INVALID_DATA, "binary frame is not UTF-8 text");
        return;
      }
    }
    this.#lastHeard = Date.now();
    const rule = this.#heartbeatRule();
    if (rule !== undefined && !rule.clientPings && "text" in rule.ping && text === rule.ping.text) {
      if (rule.pong !== null) this.#beat(rule.pong);
      this.#heard("ping");
      return;
    }
    if (rule !== undefined && rule.clientPings && rule.pong !== null && "text" in rule.pong && text === rule.pong.text) {
      this.#heard("pong");
      return;
    }
    const packets = this.#codec.parse(text);
    if (packets === null) {
      this.#invalidFrame("json", "the frame is not JSON", null, "", null);
      return;
    }
    for (const packet of packets) {
      if (this.#socket === null || this.#closedWith !== null) return;
      this.#dispatch(this.#codec.classify(packet));
    }
  }

  get #takesRequests(): boolean {
    return this.spec.messages.some((m) => m.kind === "request" && m.receives);
  }

  get #sendsRequests(): boolean {
    return this.spec.messages.some((m) => m.kind === "request" && m.sends);
  }

  #dispatch(frame: Incoming): void {
    const w = this.spec.wire;
    if (frame.type === "unusable") {
      this.#invalidFrame(frame.kind, frame.why, null, "", null);
      return;
    }
    if (frame.type === "reply") {
      // On a side that sends no requests, a reply-shaped frame is a message it does not know.
      if (!this.#sendsRequests) {
        this.#invalidFrame("unknown", "a reply, and this side sends no requests", null, frame.name ?? "", null);
        return;
      }
      const entry = w.requestId.kind === "ordered" ? this.#ordered.shift() : this.#pending.get(frame.id);
      if (entry === undefined) {
        // Dropped, as the Rust link drops it; protocols that close on invalid frames close.
        const prefix = this.spec.session.invalidCloses;
        if (prefix !== null) this.#closeLink(CLOSE_POLICY, `${prefix}: reply matches no pending request`);
        return;
      }
      clearTimeout(entry.timer);
      this.#pending.delete(frame.id);
      if (!frame.ok) {
        entry.reject(frame.error);
        return;
      }
      // A result that breaks the reply's definition fails the request, as the Rust link's
      // `InvalidReply` does. (An absent one, `{"rid": 5}`, is an empty reply.)
      const schema = frame.result === undefined ? undefined : this.spec.schemas?.replies[entry.name];
      const problems = this.#problems(schema, frame.result);
      if (problems.length > 0) entry.reject(new InvalidPayload(`${entry.name} reply`, problems));
      else entry.resolve(frame.result);
      return;
    }
    const isRequest = frame.class === "request" || (frame.class === "plain" && frame.id !== undefined);
    const spec =
      this.spec.messages.find((m) => m.receives && m.tag === frame.tag && (m.kind === "request") === isRequest) ??
      this.spec.messages.find((m) => m.receives && m.tag === frame.tag);
    // The name as the frame wrote it (with its framing's suffix), and where an error answers it.
    const framing = frame.class === "request" ? w.request : frame.class === "event" ? w.event : null;
    const written = framing?.kind === "suffix" ? `${frame.tag}${framing.suffix}` : String(frame.tag);
    const answerable = isRequest && (frame.id !== undefined || w.requestId.kind === "ordered");
    const answer = answerable ? { tag: frame.tag, id: frame.id } : null;
    if (spec === undefined) {
      this.#invalidFrame("unknown", `unknown message ${JSON.stringify(written)}`, null, written, answer);
      return;
    }
    // A payload that breaks its definition is invalid input, answered or counted by the
    // `invalid payload` rules, as the Rust link treats a payload it cannot use. (An absent one is
    // the handler's to read.)
    if (spec.payload && frame.payload !== undefined) {
      const problems = this.#problems(this.spec.schemas?.payloads[spec.name], frame.payload, spec);
      if (problems.length > 0) {
        this.#invalidFrame("payload", `invalid payload for ${written}: ${problems.join("; ")}`, spec.name, written, answer);
        return;
      }
    }
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
      if (typeof code === "number") this.#socket?.close(code, closeReason(this.#closeReason));
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
    if (spec.kind === "request") {
      const ids = this.spec.wire.requestId;
      if (id !== undefined || ids.kind === "ordered") {
        void this.#answer(spec, id, payload);
        return;
      }
      // Without its id it could never be answered: refused where the id is not optional, run
      // as an event where it is.
      if (ids.kind === "key" && !ids.optional) {
        this.#invalidFrame("envelope", `missing key ${JSON.stringify(ids.key)}`, spec.name, spec.name, null);
        return;
      }
    }
    for (const fn of this.#listeners.get(spec.name) ?? []) fn(payload);
  }

  /**
   * A frame that cannot be used, as the Rust link's `invalid` treats it: before the handshake
   * (and not while waiting for the reply to this side's handshake request) it closes as the
   * protocol says for such traffic; otherwise the first `invalid` rule that fits decides (a
   * rule that closes, `invalid closes`, `ignored`, an answer where the frame can be answered);
   * an unknown message is dropped; anything else is counted, and more than `maxInvalid` close
   * the link with 1008. `name` is the message it names, `written` that name as the frame wrote
   * it, `answer` the tag and id to answer, when it can be answered.
   */
  #invalidFrame(
    kind: InvalidKind,
    detail: string,
    name: string | null,
    written: string,
    answer: { tag: Tag; id: unknown } | null,
  ): void {
    const session = this.spec.session;
    const report = (outcome: InvalidFrame["outcome"]) => {
      for (const fn of this.#lifecycle.invalid) fn({ kind, detail, outcome });
    };
    const fits = (k: InvalidKind) =>
      session.invalidRules.find((r) => r.kind === k && (r.messages.length === 0 || (name !== null && r.messages.includes(name))));
    // An array where an object belongs falls back to the `object` rules.
    const rule = fits(kind) ?? (kind === "array" ? fits("object") : undefined);
    if (!this.#ready && !this.#awaitingHandshakeReply) {
      const code = session.beforeHandshake ?? CLOSE_POLICY;
      report("closed");
      this.#closeLink(code, session.beforeHandshakeReason ?? this.spec.closeCodes[code] ?? "message before the handshake finished");
      return;
    }
    const values = { name: written, detail, side: this.spec.side, peer: this.spec.peer };
    const action = rule?.action;
    if (typeof action === "object" && "closes" in action) {
      report("closed");
      this.#closeLink(CLOSE_POLICY, render(action.closes, values));
      return;
    }
    if (session.invalidCloses !== null) {
      report("closed");
      this.#closeLink(CLOSE_POLICY, `${session.invalidCloses}: ${detail}`);
      return;
    }
    if (action === "ignored") {
      report("ignored");
      return;
    }
    // In an ordered protocol every frame could be a request, if this side takes any.
    if ((this.spec.wire.requestId.kind === "ordered" && this.#takesRequests) || answer !== null) {
      const error = typeof action === "object" && "answer" in action
        ? { ok: false as const, error: render(action.answer, values), name: action.name ?? undefined }
        : { ok: false as const, error: detail };
      this.#transmit(this.#codec.encodeReply(answer?.tag ?? "", answer?.id, this.#nextSeq(), error));
      report("answered");
      return;
    }
    if (kind === "unknown") {
      report("ignored");
      return;
    }
    this.#invalid += 1;
    if (this.#invalid > (this.options.maxInvalid ?? 16)) {
      report("closed");
      this.#closeLink(CLOSE_POLICY, "too many invalid frames");
      return;
    }
    report("counted");
  }

  #heard(beat: "ping" | "pong"): void {
    for (const fn of this.#lifecycle.beat) fn(beat);
  }

  async #answer(spec: MessageSpec, id: unknown, payload: unknown): Promise<void> {
    // The reply goes back on the connection the request came on, if it is still open then.
    const socket = this.#socket;
    const handler = this.#handlers.get(spec.name);
    let result: { ok: true; value: unknown } | { ok: false; error: string };
    try {
      if (handler === undefined) throw new Error(`no handler for ${spec.name}`);
      result = { ok: true, value: await handler(payload) };
    } catch (e) {
      result = { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    if (this.#ready && socket === this.#socket) this.#transmit(this.#codec.encodeReply(spec.tag, id, this.#nextSeq(), result));
  }

  /** Writes a frame on the current socket while it is open; once it closes, nothing is sent
   * (a browser's `send` drops it too, and a closed socket's may throw). */
  #transmit(text: string): void {
    const socket = this.#socket;
    if (socket !== null && socket.readyState === 1) socket.send(text);
  }

  /** Closes the current socket from this side, with the protocol's close message first where
   * it sends one (carrying the code where it has a field for it), as the Rust link does. */
  #closeLink(code: number, reason: string): void {
    const socket = this.#socket;
    if (socket === null || this.#closedWith !== null) return;
    this.#closedWith = { code, reason };
    const cm = this.spec.session.closeMessage;
    if (cm?.sent && socket.readyState === 1) {
      const farewell: Json = { [cm.reason]: reason };
      if (cm.code !== null) farewell[cm.code] = code;
      this.#sendMessage(cm.message, farewell);
    }
    closeSocket(socket, code, reason);
  }

  /** The socket closed: pending requests fail, listeners hear why, and a link that was up
   * reconnects unless `close` was called. */
  #closed(socket: Socket, code: number, reason: string): CloseInfo | null {
    if (this.#socket !== socket) return null;
    const wasReady = this.#ready;
    this.#ready = false;
    this.#socket = null;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers = [];
    // This side's code where it closed (a browser may have sent 1000 in its place).
    if (this.#closedWith !== null) ({ code, reason } = this.#closedWith);
    if (reason === "") reason = this.#closeReason;
    const error = new LinkClosed(code, reason);
    for (const p of [...this.#pending.values(), ...this.#ordered]) {
      clearTimeout(p.timer);
      p.reject(error);
    }
    this.#pending.clear();
    this.#ordered = [];
    const reconnecting = (wasReady || this.#keepingUp) && !this.#closing && this.options.reconnect !== false;
    const info = { code, reason, declared: this.spec.closeCodes[code] ?? null, reconnecting };
    for (const fn of this.#lifecycle.close) fn(info);
    if (wasReady && reconnecting) this.#keepUp(true).catch(() => undefined);
    return info;
  }

  /** The wait before reconnect attempt `attempt` (from 0), as the Rust `Backoff::delay`: from
   * `initialMs` (raised to the protocol's `reconnect min`) doubling up to `maxMs`, of which the
   * first half is waited and up to the second half more, at random; never below the minimum. */
  backoffMs(attempt: number): number {
    const r = this.options.reconnect === false ? undefined : this.options.reconnect;
    const floor = this.spec.session.reconnectMinMs;
    const base = Math.max(r?.initialMs ?? 100, floor);
    const grown = Math.min(base * 2 ** Math.min(attempt, 16), Math.max(r?.maxMs ?? 30_000, base));
    return Math.max(floor, grown / 2) + (Math.random() * grown) / 2;
  }
}
