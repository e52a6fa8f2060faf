// The generated clients in a real browser: headless Chromium, driven with puppeteer-core, opens
// `page.html`, whose script (`page.ts`) runs Skynet and SocketCluster clients on the browser's own
// WebSocket against the Rust reference servers started here on 127.0.0.1 port 0. The page is
// served from this folder by a small HTTP server (ES modules do not load from `file:`). Run by
// Node with `PROTOLINK_BIN`, `PUPPETEER_MODULE` (puppeteer-core's ES module) and `CHROMIUM` (the
// browser) set; `SCREENSHOT`, when set, is where the page's picture goes. Exits non-zero when
// the page's checks fail, or when it does not finish within `WAIT_MS`.

import { check, killAll, required, serve, stop, WAIT_MS } from "./harness.js";

declare const process: { env: Record<string, string | undefined>; exit(code: number): never };

interface Page {
  on(event: "console", fn: (message: { type(): string; text(): string }) => void): void;
  on(event: "pageerror", fn: (error: Error) => void): void;
  goto(url: string, options: { timeout: number }): Promise<unknown>;
  waitForFunction(fn: string, options: { timeout: number }): Promise<unknown>;
  evaluate(fn: string): Promise<unknown>;
  screenshot(options: { path: string; fullPage: boolean }): Promise<unknown>;
}
interface Browser {
  newPage(): Promise<Page>;
  close(): Promise<void>;
}
interface Puppeteer {
  launch(options: { executablePath: string; headless: boolean; args: string[]; timeout: number }): Promise<Browser>;
}
interface HttpServer {
  listen(port: number, host: string, fn: () => void): void;
  address(): { port: number };
  close(): void;
}
interface Response {
  writeHead(status: number, headers?: Record<string, string>): void;
  end(body?: unknown): void;
}

const puppeteer = ((await import(required("PUPPETEER_MODULE"))) as { default: Puppeteer }).default;
const http = (await import("node:http" as string)) as {
  createServer(fn: (req: { url?: string }, res: Response) => void): HttpServer;
};
const fs = (await import("node:fs/promises" as string)) as { readFile(path: string): Promise<unknown> };

const TYPES: Record<string, string> = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8" };

/** Serves `page.html` and the compiled scripts under `js/`, from the working folder. */
function files(): Promise<HttpServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const type = TYPES[path.slice(path.lastIndexOf("."))];
    if (!/^\/(page\.html|js\/[a-z_]+\.js)$/.test(path) || type === undefined) {
      res.writeHead(404);
      res.end();
      return;
    }
    fs.readFile(`.${path}`).then(
      (body) => {
        res.writeHead(200, { "content-type": type });
        res.end(body);
      },
      () => {
        res.writeHead(404);
        res.end();
      },
    );
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

interface Result {
  ok: boolean;
  checks: string[];
  failure: string | null;
  seen: { skynet?: unknown; socketcluster?: unknown };
}

let failed = false;
const skynet = await serve(["skynet", "--listen", "127.0.0.1:0"]);
const socketcluster = await serve(["socketcluster", "--listen", "127.0.0.1:0"]);
const site = await files();
const browser = await puppeteer.launch({
  executablePath: required("CHROMIUM"),
  headless: true,
  // As root (CI) Chromium needs --no-sandbox.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  // A cold start on a busy machine takes a while.
  timeout: 3 * WAIT_MS,
});
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.log(`page ${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  const query = new URLSearchParams({ skynet: skynet.url, socketcluster: socketcluster.url });
  await page.goto(`http://127.0.0.1:${site.address().port}/page.html?${query}`, { timeout: WAIT_MS });
  await page.waitForFunction("window.protolinkResult !== undefined", { timeout: 2 * WAIT_MS });
  const result = (await page.evaluate("window.protolinkResult")) as Result;
  const shot = process.env.SCREENSHOT;
  if (shot !== undefined) await page.screenshot({ path: shot, fullPage: true });
  for (const c of result.checks) console.log(`page: ${c}`);
  check(result.ok, `the page's checks pass (${result.failure})`);
  check(result.checks.length === 6, "the page ran every check", result.checks);
  check(result.seen.skynet === "hello from the browser", "the page saw the Skynet event", result.seen);
  check(JSON.stringify(result.seen.socketcluster) === '{"headline":"browsers speak protolink"}', "the page saw the publish", result.seen);
  console.log("browser: skynet and socketcluster clients on Chromium's WebSocket: requests, events, a subscription");
} catch (e) {
  console.error(`browser: ${e instanceof Error ? e.stack : String(e)}`);
  failed = true;
} finally {
  await browser.close();
  site.close();
  await stop(skynet).catch(() => undefined);
  await stop(socketcluster).catch(() => undefined);
  killAll();
}
process.exit(failed ? 1 : 0);
