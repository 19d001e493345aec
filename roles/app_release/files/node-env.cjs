// hardenkit: the one reader of a release's environment file (.hardenkit.env: one
// KEY=<JSON string> per line). PM2's ecosystem file requires it; the pre-traffic gate
// preloads it (node --require), so the gate runs with exactly the environment PM2 gives
// the app (a PEM key's newlines, non-ASCII text), not systemd's reading of the file.
'use strict';

const fs = require('fs');

function readEnv(file) {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  const env = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 1) continue;
    env[line.slice(0, eq)] = JSON.parse(line.slice(eq + 1));
  }
  return env;
}

module.exports = readEnv;

// As a preload: the release's environment, under the variables the kit fixes (named in
// HARDENKIT_FIXED_ENV), as PM2's ecosystem file merges them.
const file = process.env.HARDENKIT_ENV_FILE;
if (file) {
  const fixed = (process.env.HARDENKIT_FIXED_ENV || '').split(',').filter(Boolean);
  delete process.env.HARDENKIT_ENV_FILE;
  delete process.env.HARDENKIT_FIXED_ENV;
  for (const [key, value] of Object.entries(readEnv(file))) {
    if (!fixed.includes(key)) process.env[key] = value;
  }
}
