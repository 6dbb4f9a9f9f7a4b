#!/usr/bin/env node
// Static check of the web client, no server or browser needed:
// - every web/js file parses as an ES module (`node --check`);
// - every relative import and every file index.html references exists;
// - every element id the scripts look up exists in index.html.
// Exit 0 and `{"ok":true,...}`, or exit 1 with the problems listed.

import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');

function filesUnder(dir, suffix) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return filesUnder(full, suffix);
    return entry.name.endsWith(suffix) ? [full] : [];
  });
}

const problems = [];
const scripts = filesUnder(path.join(WEB, 'js'), '.js');
const html = readFileSync(path.join(WEB, 'index.html'), 'utf8');

for (const file of scripts) {
  const source = readFileSync(file, 'utf8');
  // Fed on stdin so that it parses as a module whatever the Node version's defaults.
  const check = spawnSync(process.execPath, ['--input-type=module', '--check'], { input: source, encoding: 'utf8' });
  if (check.status !== 0) problems.push(`${path.relative(WEB, file)}: ${check.stderr.trim()}`);

  for (const [, target] of source.matchAll(/^\s*import\s[^'"]*['"](\.{1,2}\/[^'"]+)['"]/gm)) {
    if (!existsSync(path.resolve(path.dirname(file), target))) {
      problems.push(`${path.relative(WEB, file)}: imports missing ${target}`);
    }
  }
  for (const [, id] of source.matchAll(/(?:getElementById|\$)\('([\w-]+)'\)/g)) {
    if (!html.includes(`id="${id}"`)) problems.push(`${path.relative(WEB, file)}: no element #${id} in index.html`);
  }
}

for (const [, ref] of html.matchAll(/(?:src|href)="([^"#:]+)"/g)) {
  if (!existsSync(path.join(WEB, ref))) problems.push(`index.html: references missing ${ref}`);
}

if (problems.length) {
  process.stdout.write(`${JSON.stringify({ ok: false, problems })}\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify({ ok: true, scripts: scripts.map((f) => path.relative(WEB, f)) })}\n`);
