// What the Node test scripts share: the reference servers (`protolink serve ...`, with
// `PROTOLINK_BIN` naming the binary) started on 127.0.0.1 port 0 and stopped, and waits on events
// bounded by `WAIT_MS`.

declare const process: { env: Record<string, string | undefined> };

export const WAIT_MS = 10_000;
/** Servers still running, to be killed at the end whatever happened. */
export const running = new Set<Server>();

export interface ChildProcess {
  stdout: { on(event: "data", fn: (chunk: unknown) => void): void };
  kill(signal?: string): boolean;
  once(event: "exit", fn: () => void): void;
}

/** A running reference server: its URL, and the lines it prints. */
export interface Server {
  url: string;
  child: ChildProcess;
  lines: string[];
  lineWaiters: Array<() => void>;
}

const node = {
  spawn: (await import("node:child_process" as string)).spawn as (
    bin: string,
    args: string[],
    options: { stdio: string[] },
  ) => ChildProcess,
};

export function required(name: string): string {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
}

/** Resolves with what `start` hands its callback, or fails after `WAIT_MS`. */
export function within<T>(what: string, start: (done: (value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
    start((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

export function check(condition: boolean, what: string, got?: unknown): void {
  if (!condition) throw new Error(`${what}${got === undefined ? "" : `: got ${JSON.stringify(got)}`}`);
}

/** Starts `protolink serve ARGS` and waits for its `listening on URL` line. */
export async function serve(args: string[]): Promise<Server> {
  const child = node.spawn(required("PROTOLINK_BIN"), ["serve", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const server: Server = { url: "", child, lines: [], lineWaiters: [] };
  running.add(server);
  let buffered = "";
  child.stdout.on("data", (chunk) => {
    buffered += String(chunk);
    let at;
    while ((at = buffered.indexOf("\n")) >= 0) {
      server.lines.push(buffered.slice(0, at));
      buffered = buffered.slice(at + 1);
      for (const fn of server.lineWaiters.splice(0)) fn();
    }
  });
  const first = await line(server, (l) => l.startsWith("listening on "));
  server.url = first.slice("listening on ".length);
  return server;
}

/** The first line the server printed for which `test` holds. */
export function line(server: Server, test: (line: string) => boolean): Promise<string> {
  return within("a line from the server", (done) => {
    const look = () => {
      const found = server.lines.find(test);
      if (found !== undefined) done(found);
      else server.lineWaiters.push(look);
    };
    look();
  });
}

export async function stop(server: Server): Promise<void> {
  await within<void>("the server to exit", (done) => {
    server.child.once("exit", () => {
      running.delete(server);
      done();
    });
    server.child.kill("SIGTERM");
  });
}

/** Kills whatever server is still running. */
export function killAll(): void {
  for (const server of running) server.child.kill("SIGKILL");
}

/** What a `protolink` command prints on its first line. */
export async function firstLine(args: string[]): Promise<string> {
  const child = node.spawn(required("PROTOLINK_BIN"), args, { stdio: ["ignore", "pipe", "inherit"] });
  let text = "";
  return within("the command's output", (done) =>
    child.stdout.on("data", (chunk) => {
      text += String(chunk);
      if (text.includes("\n")) done(text.slice(0, text.indexOf("\n")).trim());
    }),
  );
}

/** Runs each named test in turn, printing the stack of each that fails; `true` when all passed. */
export async function runAll(tests: ReadonlyArray<readonly [string, () => Promise<void>]>): Promise<boolean> {
  let passed = true;
  for (const [name, run] of tests) {
    try {
      await run();
    } catch (e) {
      console.error(`${name}: ${e instanceof Error ? e.stack : String(e)}`);
      passed = false;
    }
  }
  return passed;
}
