/**
 * The repository speaks of itself only: every file it names is in it, every section of the docs
 * that code cites by heading exists, every relative link in the Markdown resolves, and nothing
 * cites a planning note or tracker number from outside.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const SKIPPED_DIRS = new Set(['node_modules', 'dist', '.git', 'vendor', 'coverage']);
const TEXT_FILES = /\.(ts|mjs|js|md|sh|php|yml|yaml|json|conf|ini|template|txt)$|^(Dockerfile[\w.-]*|run)$/;

/** Every text file of the repository, relative to its root. */
function repositoryFiles(dir = root): string[] {
  const files: string[] = [];
  for (const name of readdirSync(dir)) {
    if (SKIPPED_DIRS.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files.push(...repositoryFiles(path));
    else if (TEXT_FILES.test(name) && name !== 'package-lock.json') files.push(relative(root, path));
  }
  return files;
}

const files = repositoryFiles();
const text = new Map(files.map((file) => [file, readFileSync(join(root, file), 'utf8')]));

/** `## Heading` lines of a Markdown file. */
function headings(file: string): string[] {
  return [...(text.get(file) ?? '').matchAll(/^#{1,6} (.+)$/gm)].map((match) => match[1]!.trim());
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchor(heading: string): string {
  return heading.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
}

describe('references', () => {
  it('finds the files it checks (the walk itself works)', () => {
    expect(files).toContain('README.md');
    expect(files).toContain('src/daemon.ts');
    expect(files).toContain('docs/architecture.md');
    expect(files.length).toBeGreaterThan(100);
  });

  it('every repository path named in code, scripts or docs exists', () => {
    // bench/out/ holds what the benchmarks write: named before it exists
    const named = /(?<![\w./-])((?:docs|src|test|integration|bench(?!\/out\/)|php-client|scripts|docker|\.ci)\/[\w./-]*[\w-]\.(?:md|ts|mjs|sh|php|yml|json|conf|ini|template))\b/g;
    const missing: string[] = [];
    for (const [file, content] of text) {
      for (const match of content.matchAll(named)) {
        if (!existsSync(join(root, match[1]!))) missing.push(`${file}: ${match[1]}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('every docs section cited by heading (a docs file, then the heading in quotes) exists', () => {
    const cited = /(docs\/[\w-]+\.md), "([^"]+)"/g;
    const missing: string[] = [];
    for (const [file, content] of text) {
      for (const match of content.matchAll(cited)) {
        if (!headings(match[1]!).includes(match[2]!)) missing.push(`${file}: ${match[1]}, "${match[2]}"`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('every relative Markdown link resolves, anchors included', () => {
    const link = /\]\(([^)\s]+)\)/g;
    const broken: string[] = [];
    for (const [file, content] of text) {
      if (!file.endsWith('.md')) continue;
      for (const match of content.matchAll(link)) {
        const target = match[1]!;
        if (/^[a-z]+:/i.test(target)) continue;
        const [path, hash] = target.split('#') as [string, string | undefined];
        const resolved = path === '' ? file : join(dirname(file), path);
        if (!existsSync(join(root, resolved))) {
          broken.push(`${file}: ${target}`);
          continue;
        }
        if (hash !== undefined && resolved.endsWith('.md') && !headings(resolved).map(anchor).includes(hash)) broken.push(`${file}: ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('nothing cites a note outside the repository, or a tracker number', () => {
    const outside = /DESIGN\.md|STYLE\.md|\.\.\/shared\/|\b[Ii]ssues? #?\d+\b/;
    const found: string[] = [];
    for (const [file, content] of text) {
      content.split('\n').forEach((line, index) => {
        // another project's tracker (php-src's bug numbers) is fine to cite
        if (outside.test(line) && !/php-src issue/.test(line)) found.push(`${file}:${index + 1}: ${line.trim()}`);
      });
    }
    expect(found).toEqual([]);
  });
});
