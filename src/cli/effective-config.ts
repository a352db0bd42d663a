/**
 * The effective configuration: every setting as `start` would run with it, for
 * `config check` and `start --dry-run` alike. Values are the text `stats settings` shows (files
 * by their path), except the cluster secret, of which only its presence is ever shown.
 */
import { type Settings, SETTING_KEYS, showSetting } from '../config.js';
import { printJson, printLines } from './output.js';

export type EffectiveConfig = Record<keyof Settings, string>;

export function effectiveConfig(settings: Settings): EffectiveConfig {
  const shown = Object.fromEntries(SETTING_KEYS.map((key) => [key, showSetting(key, settings)])) as EffectiveConfig;
  // Never the secret itself, nor its length: config.ts, Settings.clusterSecret.
  shown.clusterSecret = settings.clusterSecret === null ? '(not set)' : '(set)';
  return shown;
}

/**
 * Human: `headline`, then one "key  value" line per setting, in the settings table's order.
 * JSON: one document, `{ valid: true, ...extra, settings: { key: value } }`.
 */
export function printEffectiveConfig(settings: Settings, options: { json: boolean; headline: string; extra?: Record<string, unknown> }): void {
  const shown = effectiveConfig(settings);
  if (options.json) {
    printJson({ valid: true, ...options.extra, settings: shown });
    return;
  }
  const width = Math.max(...SETTING_KEYS.map((key) => key.length));
  printLines([options.headline, ...SETTING_KEYS.map((key) => `  ${key.padEnd(width)}  ${shown[key]}`)]);
}
