// A page built on the generated clients, run by `browser.ts` in headless Chromium with the
// browser's own `WebSocket`: a Skynet chat (a request, and the event it causes on a second
// client) and a SocketCluster room (a request, an event, and a subscription's publish), against
// the Rust reference servers whose URLs the page's query names. It shows what it did, and leaves
// its verdict in `window.protolinkResult` for the driver.

import { SkynetClient } from "./skynet.js";
import { ChatClient } from "./chat.js";

const WAIT_MS = 10_000;

interface Result {
  ok: boolean;
  checks: string[];
  failure: string | null;
  /** What the page got, for the driver to check again. */
  seen: Record<string, unknown>;
}

const result: Result = { ok: false, checks: [], failure: null, seen: {} };
const log = document.getElementById("log") as HTMLOListElement;

function show(text: string): void {
  const item = document.createElement("li");
  item.textContent = text;
  log.append(item);
}

function check(condition: boolean, what: string, got?: unknown): void {
  if (!condition) throw new Error(`${what}${got === undefined ? "" : `: got ${JSON.stringify(got)}`}`);
  result.checks.push(what);
  show(`✓ ${what}`);
}

function within<T>(what: string, start: (done: (value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
    start((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

async function skynet(url: string): Promise<void> {
  check(typeof WebSocket === "function", "the page has the browser's WebSocket");
  const ann = new SkynetClient(url, { reconnect: false });
  const bob = new SkynetClient(url, { reconnect: false });
  await ann.connect();
  await bob.connect();
  const opened = await ann.open({ channel: "lobby" });
  check(JSON.stringify(opened.channels) === '["lobby"]', "skynet: open replies with the open channels", opened);
  const heard = within<{ message: unknown; ID: string }>("the message event", (done) => ann.on("messageEvent", done));
  const sent = await bob.message({ channel: "lobby", message: "hello from the browser" });
  const got = await heard;
  check(got.message === "hello from the browser" && got.ID === sent.ID, "skynet: the other client hears the message", got);
  result.seen.skynet = got.message;
  ann.close();
  bob.close();
}

async function socketcluster(url: string): Promise<void> {
  const ann = new ChatClient(url, { reconnect: false });
  const bob = new ChatClient(url, { reconnect: false });
  ann.handle("askClient", (question) => ({ answer: question }));
  bob.handle("askClient", (question) => ({ answer: question }));
  await ann.connect({ handshake: {} });
  await bob.connect({ handshake: { authToken: null } });
  check((await ann.sum({ a: 20, b: 22 })) === 42, "socketcluster: sum replies with the sum");
  await ann.join({ room: "lobby" });
  await bob.join({ room: "lobby" });
  const message = within<{ text?: unknown }>("the room's message", (done) => ann.on("message", done));
  await bob.sendMessage({ room: "lobby", text: "hi, room" });
  const said = await message;
  check(said.text === "hi, room", "socketcluster: the room hears the message", said);
  await ann.subscribe({ channel: "news" });
  const published = within<{ channel?: unknown; data?: unknown }>("the publish", (done) => ann.on("publishEvent", done));
  await bob.publish({ channel: "news", data: { headline: "browsers speak protolink" } });
  const news = await published;
  check(news.channel === "news" && JSON.stringify(news.data) === '{"headline":"browsers speak protolink"}', "socketcluster: the subscriber gets the publish", news);
  result.seen.socketcluster = news.data;
  ann.close();
  bob.close();
}

const query = new URLSearchParams(location.search);
try {
  await skynet(query.get("skynet") ?? "");
  await socketcluster(query.get("socketcluster") ?? "");
  result.ok = true;
  show("all checks passed");
} catch (e) {
  result.failure = e instanceof Error ? e.message : String(e);
  show(`✗ ${result.failure}`);
}
(window as unknown as { protolinkResult: Result }).protolinkResult = result;
