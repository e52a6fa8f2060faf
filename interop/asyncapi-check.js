// Parses AsyncAPI documents with the official parser (@asyncapi/parser, pinned by
// interop/package-lock.json), for the test of `protolink asyncapi` (cli/tests/reference/tools.rs).
//
//   node interop/asyncapi-check.js DOCUMENT.json...
//
// Prints one JSON array, one entry per document: {"file", "errors": [...], "warnings": [...],
// "channels", "operations", "messages"}; a diagnostic is its code, path and message.
"use strict";

const fs = require("fs");
const { Parser } = require("@asyncapi/parser");

const ERROR = 0;
const WARNING = 1;

async function check(file) {
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(fs.readFileSync(file, "utf8"), {
    source: file,
  });
  const shown = (severity) =>
    diagnostics
      .filter((d) => d.severity === severity)
      .map((d) => `${d.code} at ${d.path.join(".")}: ${d.message}`);
  return {
    file,
    errors: shown(ERROR),
    warnings: shown(WARNING),
    channels: document ? document.channels().length : 0,
    operations: document ? document.operations().length : 0,
    messages: document ? document.allMessages().length : 0,
  };
}

(async () => {
  const results = [];
  for (const file of process.argv.slice(2)) {
    results.push(await check(file));
  }
  process.stdout.write(JSON.stringify(results, null, 1));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
