/**
 * The reference parts of the docs, rendered from the declarations they describe: the settings
 * table (config.ts) into docs/configuration.md, the statistics catalog (stats-catalog.ts) into
 * docs/stats.md. `npm run docs` writes them between their markers; a test fails when a file
 * holds anything else there, so a setting or a statistic cannot be added without its docs.
 */
import { SETTING_KEYS, SETTINGS, settingStatName } from './config.js';
import { SETTINGS_SECTIONS, STATS_SECTIONS, type StatSection } from './stats-catalog.js';
import type { StatDef } from './stats/registry.js';

/** The generated blocks, by name: what sits between `<!-- BEGIN GENERATED: name ... -->` and its END. */
export const GENERATED_BLOCKS = {
  settings: { file: 'docs/configuration.md', render: renderSettingsReference },
  stats: { file: 'docs/stats.md', render: renderStatsReference },
} as const;

export type GeneratedBlock = keyof typeof GENERATED_BLOCKS;

/** `|` would end a table cell. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** One table row per setting: flag, config key, environment variable, default, what it does. */
export function renderSettingsReference(): string {
  const rows = SETTING_KEYS.map((key) => {
    const spec = SETTINGS[key];
    const shown = spec.shownDefault ?? (spec.default === null || (Array.isArray(spec.default) && spec.default.length === 0) ? 'none' : String(spec.default));
    const env = spec.env === undefined ? '' : `\`${spec.env}\``;
    const flag = spec.arg === '' ? spec.flag : `${spec.flag} ${spec.arg}`;
    return `| \`${flag}\` | \`${key}\` | ${env} | ${cell(shown)} | ${cell(spec.help)} |`;
  });
  return [
    'Each setting is a flag of `session-cluster start`, a key of the `--config` JSON file, and a line',
    'of `stats settings` (the key in snake_case, e.g. `max_item_size`). Sizes take `k`, `m`, `g`',
    '(binary units). Flags win over the file, the file over the environment.',
    '',
    '| flag | config key | environment | default | what it does |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

/** Where a numeric statistic appears in /metrics, or why it does not. */
function metricOf(def: StatDef): string {
  if (def.type === 'text') {
    if (def.name === 'cluster_members') return '`session_cluster_cluster_members{state}`, `session_cluster_cluster_member{node,state}`';
    return typeof def.metric === 'string' ? `label \`${def.metric}\` of \`session_cluster_info\`` : '—';
  }
  if (def.metric === null) return '—';
  return `\`session_cluster_${def.metric ?? (def.type === 'counter' ? `${def.name}_total` : def.name)}\``;
}

function renderSections<Sources>(sections: ReadonlyArray<StatSection<Sources>>, withMetrics: boolean): string[] {
  const lines: string[] = [];
  for (const section of sections) {
    lines.push(`#### ${section.title}${section.scope === 'cluster' ? ' (cluster mode only)' : ''}`, '');
    lines.push(withMetrics ? '| field | type | what it counts | in /metrics |' : '| field | what it is |');
    lines.push(withMetrics ? '|---|---|---|---|' : '|---|---|');
    for (const def of section.stats) {
      lines.push(withMetrics
        ? `| \`${def.name}\` | ${def.type} | ${cell(def.help)} | ${metricOf(def)} |`
        : `| \`${def.name}\` | ${cell(def.help)} |`);
    }
    lines.push('');
  }
  return lines;
}

/** Every statistic of `stats` and `stats settings`, section by section, in the order they come. */
export function renderStatsReference(): string {
  return [
    '### `stats`',
    '',
    'In this order. The cluster sections appear in cluster mode only (`--peer-listen`).',
    '',
    ...renderSections(STATS_SECTIONS, true),
    '### `stats settings`',
    '',
    `memcached's names first, for its tools, then one line per setting of [configuration.md](configuration.md#settings-reference): its config key in snake_case (\`${settingStatName('maxItemSize')}\`, \`${settingStatName('peerListen')}\`, …). The cluster secret shows only \`set\` or \`none\`.`,
    '',
    ...renderSections(SETTINGS_SECTIONS.slice(0, 1), false),
  ].join('\n').trimEnd();
}

/**
 * `text` with the block `name` replaced by `content`; throws when the markers are missing, so a
 * file that lost them is noticed rather than silently left stale.
 */
export function replaceGenerated(text: string, name: GeneratedBlock, content: string): string {
  const { begin, end } = markers(text, name);
  return `${text.slice(0, begin)}\n${content}\n${text.slice(end)}`;
}

/** What the block `name` of `text` holds now. */
export function generatedContent(text: string, name: GeneratedBlock): string {
  const { begin, end } = markers(text, name);
  return text.slice(begin, end).replace(/^\n/, '').replace(/\n$/, '');
}

function markers(text: string, name: GeneratedBlock): { begin: number; end: number } {
  const open = new RegExp(`<!-- BEGIN GENERATED: ${name}\\b[^>]*-->`).exec(text);
  const close = text.indexOf(`<!-- END GENERATED: ${name} -->`);
  if (open === null || close < open.index) throw new Error(`the markers of the generated "${name}" block are missing`);
  return { begin: open.index + open[0].length, end: close };
}
