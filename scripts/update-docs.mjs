#!/usr/bin/env node
// Writes the generated reference blocks of the docs (settings into docs/configuration.md,
// statistics into docs/stats.md) from the built code: `npm run docs` builds first.
// test/docs-reference.test.ts fails while a block differs from what this would write.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATED_BLOCKS, replaceGenerated } from '../dist/docs-reference.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const [name, { file, render }] of Object.entries(GENERATED_BLOCKS)) {
  const path = join(root, file);
  const before = readFileSync(path, 'utf8');
  const after = replaceGenerated(before, name, render());
  if (after !== before) writeFileSync(path, after);
  console.log(`${file}: ${name} ${after === before ? 'up to date' : 'written'}`);
}
