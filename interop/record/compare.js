#!/usr/bin/env node
// Compares two recordings of the same scenario (e.g. a real server's transcript and one recorded the
// same way against ours), connection by connection, and prints every step that differs.
//
//   node compare.js REAL.json OURS.json      or      node compare.js REAL_DIR OURS_DIR
//
// JSON frames are compared as JSON values (key order ignored); "$masked:TYPE" in the real one
// matches any value of that type, "$prefix:B" any string starting with B. Exit status 1 if any differ.
'use strict';
const fs = require('fs');
const path = require('path');

function parse(text) { try { return { json: true, v: JSON.parse(text) }; } catch (_) { return { json: false, v: text }; } }

function matches(real, ours) {
  if (typeof real === 'string' && real.startsWith('$masked:')) {
    if (typeof ours === 'string' && ours === real) return true;
    return typeof ours === real.slice(8);
  }
  if (typeof real === 'string' && real.startsWith('$prefix:')) {
    const b = real.slice(8);
    return typeof ours === 'string' && (ours === real || ours.startsWith(b));
  }
  if (Array.isArray(real)) return Array.isArray(ours) && ours.length === real.length && real.every((x, i) => matches(x, ours[i]));
  if (real && typeof real === 'object') {
    if (!ours || typeof ours !== 'object' || Array.isArray(ours)) return false;
    const rk = Object.keys(real).sort(); const ok = Object.keys(ours).sort();
    return rk.length === ok.length && rk.every((k, i) => k === ok[i] && matches(real[k], ours[k]));
  }
  return real === ours;
}

function stepKey(s) {
  const { conn, ...rest } = s;
  return rest;
}

function sameStep(a, b) {
  const ka = Object.keys(a).sort().join(); const kb = Object.keys(b).sort().join();
  if (ka !== kb) return false;
  for (const k of Object.keys(a)) {
    const x = a[k]; const y = b[k];
    if (typeof x === 'string' && typeof y === 'string') {
      const px = parse(x); const py = parse(y);
      if (px.json && py.json) { if (!matches(px.v, py.v)) return false; continue; }
      if (!matches(x, y)) return false;
      continue;
    }
    if (!matches(x, y)) return false;
  }
  return true;
}

function compareFiles(realFile, oursFile) {
  const real = JSON.parse(fs.readFileSync(realFile, 'utf8'));
  if (!fs.existsSync(oursFile)) { console.log(`${path.basename(realFile)}: no recording of ours`); return 1; }
  const ours = JSON.parse(fs.readFileSync(oursFile, 'utf8'));
  const conns = [...new Set(real.steps.map((s) => s.conn).concat(ours.steps.map((s) => s.conn)))];
  const out = [];
  for (const c of conns) {
    const r = real.steps.filter((s) => s.conn === c).map(stepKey);
    const o = ours.steps.filter((s) => s.conn === c).map(stepKey);
    for (let i = 0; i < Math.max(r.length, o.length); i++) {
      if (r[i] && o[i] && sameStep(r[i], o[i])) continue;
      out.push(`  conn ${c} step ${i + 1}:\n    real: ${r[i] ? JSON.stringify(r[i]) : '(nothing)'}\n    ours: ${o[i] ? JSON.stringify(o[i]) : '(nothing)'}`);
    }
  }
  if (ours.incomplete) out.push(`  ours incomplete: ${ours.incomplete}`);
  console.log(`${path.basename(realFile)}: ${out.length ? 'DIFFERS' : 'same'}`);
  for (const line of out) console.log(line);
  return out.length ? 1 : 0;
}

const [a, b] = process.argv.slice(2);
if (!a || !b) { console.error('usage: compare.js REAL OURS'); process.exit(2); }
let bad = 0;
if (fs.statSync(a).isDirectory()) {
  for (const f of fs.readdirSync(a).filter((f) => f.endsWith('.json')).sort()) bad |= compareFiles(path.join(a, f), path.join(b, f));
} else bad = compareFiles(a, b);
process.exit(bad);
