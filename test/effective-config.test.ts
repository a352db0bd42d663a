/** The effective configuration shows every setting as `stats settings` does, and never the secret. */
import { describe, expect, it } from 'vitest';
import { SETTING_KEYS, resolveSettings } from '../src/config.js';
import { effectiveConfig } from '../src/cli/effective-config.js';

const SECRET = 'correct-horse-battery-staple';

describe('effectiveConfig', () => {
  it('has every setting, in table order, as text', () => {
    const shown = effectiveConfig(resolveSettings({}, { maxItemSize: '2m', socketMode: '0600' }, 'flags', {}));
    expect(Object.keys(shown)).toEqual(SETTING_KEYS);
    expect(shown).toMatchObject({ listen: '127.0.0.1:11211', maxItemSize: String(2 * 1024 * 1024), socketMode: '0600', peers: 'none', logFormat: 'auto' });
  });

  it('shows whether the cluster secret is set, never the secret', () => {
    expect(effectiveConfig(resolveSettings({}, {}, 'flags', {})).clusterSecret).toBe('(not set)');
    const clustered = effectiveConfig(resolveSettings({}, { peerListen: '127.0.0.1:11212' }, 'flags', { SESSION_CLUSTER_SECRET: SECRET }));
    expect(clustered.clusterSecret).toBe('(set)');
    expect(JSON.stringify(clustered)).not.toContain(SECRET);
  });
});
