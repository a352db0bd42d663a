/**
 * The docs' reference parts are the declarations they describe: the settings table and the
 * statistics catalog. Adding a setting or a statistic without running `npm run docs` fails here,
 * as does a reference listing one that no longer exists.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SETTING_KEYS, SETTINGS } from '../src/config.js';
import { GENERATED_BLOCKS, type GeneratedBlock, generatedContent, replaceGenerated } from '../src/docs-reference.js';
import { SETTINGS_SECTIONS, STATS_SECTIONS } from '../src/stats-catalog.js';

const root = join(import.meta.dirname, '..');

describe('generated reference blocks', () => {
  for (const name of Object.keys(GENERATED_BLOCKS) as GeneratedBlock[]) {
    const { file, render } = GENERATED_BLOCKS[name];
    it(`${file} holds the ${name} reference as the code declares it (run npm run docs when this fails)`, () => {
      const text = readFileSync(join(root, file), 'utf8');
      expect(generatedContent(text, name)).toBe(render());
    });
  }

  it('every statistic and every setting is named in its reference, and nothing else is', () => {
    const stats = generatedContent(readFileSync(join(root, 'docs/stats.md'), 'utf8'), 'stats');
    const documented = [...stats.matchAll(/^\| `([a-z_0-9]+)` \|/gm)].map((match) => match[1]);
    const declared = [...STATS_SECTIONS, ...SETTINGS_SECTIONS.slice(0, 1)].flatMap((section) => section.stats.map((def) => def.name));
    expect(documented).toEqual(declared);
    const settings = generatedContent(readFileSync(join(root, 'docs/configuration.md'), 'utf8'), 'settings');
    expect([...settings.matchAll(/^\| `(--[a-z-]+)[^`]*` \| `(\w+)` \|/gm)].map((match) => [match[1], match[2]]))
      .toEqual(SETTING_KEYS.map((key) => [SETTINGS[key].flag, key]));
  });

  it('a block is replaced between its markers, and a file without them is an error', () => {
    const text = 'before\n<!-- BEGIN GENERATED: stats (npm run docs) -->\nold\n<!-- END GENERATED: stats -->\nafter\n';
    const replaced = replaceGenerated(text, 'stats', 'new\nlines');
    expect(replaced).toBe('before\n<!-- BEGIN GENERATED: stats (npm run docs) -->\nnew\nlines\n<!-- END GENERATED: stats -->\nafter\n');
    expect(generatedContent(replaced, 'stats')).toBe('new\nlines');
    expect(() => replaceGenerated('no markers', 'settings', 'x')).toThrow(/markers of the generated "settings" block are missing/);
  });
});

describe('declarations', () => {
  it('statistics have names unique within their reply, and a one-line help each', () => {
    for (const sections of [STATS_SECTIONS, SETTINGS_SECTIONS]) {
      const names = sections.flatMap((section) => section.stats.map((def) => def.name));
      expect(names.filter((name, i) => names.indexOf(name) !== i)).toEqual([]);
    }
    for (const def of [...STATS_SECTIONS, ...SETTINGS_SECTIONS].flatMap((section) => section.stats)) {
      expect(def.help, def.name).toMatch(/^[^\n|]{8,}$/);
    }
  });

  it('each flag is its setting key in kebab-case, which commander turns back into the key', () => {
    for (const key of SETTING_KEYS) {
      const spec = SETTINGS[key];
      expect(spec.flag, key).toBe(`--${key.replace(/[A-Z]/g, (upper) => `-${upper.toLowerCase()}`)}`);
      // A switch (--recover-truncate) takes nothing; every other flag one value.
      expect(spec.arg, key).toMatch(typeof spec.default === 'boolean' ? /^$/ : /^<[^>]+>$/);
      expect(spec.help, key).toMatch(/\.$/);
    }
  });
});
