// Validates frames against protolink's JSON Schemas with ajv (draft 2020-12), for the codec
// tests' schema agreement check (tests/tests/codec/schema.rs).
//
//   node interop/schema-check.js CASES.json
//
// CASES.json is an array of [SCHEMA_FILE, FRAME_TEXT]. Prints one JSON array, one entry per case:
// {"valid": true} or {"valid": false, "why": "..."}; a frame that is not JSON is
// {"valid": false, "why": "not JSON"}.
"use strict";

const fs = require("fs");
const Ajv2020 = require("ajv/dist/2020");

const ajv = new Ajv2020({ strict: false, allErrors: false });
const compiled = new Map();

function validator(file) {
  let validate = compiled.get(file);
  if (!validate) {
    validate = ajv.compile(JSON.parse(fs.readFileSync(file, "utf8")));
    compiled.set(file, validate);
  }
  return validate;
}

const cases = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const results = cases.map(([file, text]) => {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch (e) {
    return { valid: false, why: "not JSON" };
  }
  const validate = validator(file);
  if (validate(frame)) {
    return { valid: true };
  }
  return { valid: false, why: ajv.errorsText(validate.errors) };
});
process.stdout.write(JSON.stringify(results));
