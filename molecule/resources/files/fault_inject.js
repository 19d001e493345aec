// Test-only fault injector, loaded into the app's workers with `node --require` through
// the pm2 role's pm2_node_args (molecule/faults). It never changes the app itself.
//
// Memory leak: when /etc/hk-faults/leak holds "<pid> <megabytes>", the worker with that
// pid keeps allocating (and holding) 16 MB buffers until its RSS passes <megabytes>, so
// PM2's max_memory_restart has something to catch. Other workers are untouched.
"use strict";
const fs = require("node:fs");

const TRIGGER = "/etc/hk-faults/leak";
const held = [];

const timer = setInterval(() => {
  let spec;
  try {
    spec = fs.readFileSync(TRIGGER, "utf8").trim().split(/\s+/);
  } catch {
    return;
  }
  if (Number(spec[0]) !== process.pid) return;
  const limit = Number(spec[1]) * 1024 * 1024;
  if (process.memoryUsage().rss < limit) {
    held.push(Buffer.alloc(16 * 1024 * 1024, 1));
  }
}, 100);
timer.unref();
