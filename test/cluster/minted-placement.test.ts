/**
 * Placement of cluster-minted ids: the named owners while live, then the documented candidate
 * order (named master, named backup, rendezvous rank of the rest), through ClusterView too, so the
 * router, replication and catch-up all see the same owners.
 */
import { describe, expect, it } from 'vitest';
import { ClusterView } from '../../src/cluster/cluster-view.js';
import { mintedOwners, type NamedOwners } from '../../src/cluster/placement/minted-placement.js';
import { rank } from '../../src/cluster/placement/rendezvous.js';
import { mintSessionId, parseSessionId } from '../../src/cluster/placement/session-id.js';
import { MemberState, type MemberInfo } from '../../src/cluster/types.js';

const SECRET = 'minted placement secret';

function place(named: NamedOwners, live: string[], ranked: string[], replacements: Record<string, string> = {}) {
  let rankCalls = 0;
  const owners = mintedOwners({
    named,
    isLive: (member) => live.includes(member),
    replacementOf: (member) => replacements[member],
    rankLive: () => { rankCalls++; return ranked; },
  });
  return { ...owners, rankCalls };
}

describe('mintedOwners', () => {
  it('gives the named master and backup while both are live, without ranking anyone', () => {
    expect(place({ master: 'a', backup: 'b' }, ['a', 'b', 'c'], ['c', 'b', 'a'])).toEqual({ master: 'a', backup: 'b', rankCalls: 0 });
  });

  it('master dead: the named backup serves, the first ranked other node becomes backup', () => {
    expect(place({ master: 'a', backup: 'b' }, ['b', 'c', 'd'], ['b', 'd', 'c'])).toMatchObject({ master: 'b', backup: 'd' });
    expect(place({ master: 'a', backup: 'b' }, ['b', 'c', 'd'], ['c', 'b', 'd'])).toMatchObject({ master: 'b', backup: 'c' });
  });

  it('backup dead: the master keeps the session, the first ranked other node becomes backup', () => {
    expect(place({ master: 'a', backup: 'b' }, ['a', 'c', 'd'], ['a', 'd', 'c'])).toMatchObject({ master: 'a', backup: 'd' });
  });

  it('both named owners dead: the two first ranked nodes (where re-replication kept the copies)', () => {
    expect(place({ master: 'a', backup: 'b' }, ['c', 'd', 'e'], ['e', 'c', 'd'])).toMatchObject({ master: 'e', backup: 'c' });
  });

  it('an id minted alone (no backup) gets a ranked backup once there are others', () => {
    expect(place({ master: 'a', backup: null }, ['a'], ['a'])).toMatchObject({ master: 'a', backup: null });
    expect(place({ master: 'a', backup: null }, ['a', 'b', 'c'], ['c', 'a', 'b'])).toMatchObject({ master: 'a', backup: 'c' });
  });

  it('nobody live: no owners', () => {
    expect(place({ master: 'a', backup: 'b' }, [], [])).toMatchObject({ master: null, backup: null });
  });

  it('a named owner that left is stood for by the replacement it named, through chains, never through cycles', () => {
    expect(place({ master: 'a', backup: 'b' }, ['b', 'c', 'r'], ['c', 'b', 'r'], { a: 'r' })).toMatchObject({ master: 'r', backup: 'b' });
    expect(place({ master: 'a', backup: 'b' }, ['b', 's'], ['b', 's'], { a: 'r', r: 's' })).toMatchObject({ master: 's', backup: 'b' });
    expect(place({ master: 'a', backup: 'b' }, ['b', 'c'], ['c', 'b'], { a: 'x', x: 'a' })).toMatchObject({ master: 'b', backup: 'c' });
    // a replacement that is the other named owner: that one node cannot be both
    expect(place({ master: 'a', backup: 'b' }, ['b', 'c'], ['c', 'b'], { a: 'b' })).toMatchObject({ master: 'b', backup: 'c' });
  });
});

function members(live: string[], dead: string[] = []): MemberInfo[] {
  return [
    ...live.map((id, i) => ({ id, peerAddress: `127.0.0.1:${7000 + i}`, state: MemberState.Alive, incarnation: 1 })),
    ...dead.map((id, i) => ({ id, peerAddress: `127.0.0.1:${7100 + i}`, state: MemberState.Dead, incarnation: 1 })),
  ];
}

describe('ClusterView with minted ids', () => {
  const id = mintSessionId({ master: 'node2', backup: 'node3', revision: 0, secret: SECRET });

  it('places every key of a minted session (php-memcached and pecl memcache layouts) on the named owners', () => {
    const view = new ClusterView('node1', { secret: SECRET });
    view.update(members(['node1', 'node2', 'node3', 'node4']));
    for (const key of [`memc.sess.key.${id}`, `memc.sess.key.lock.${id}`, id, `${id}.lock`]) {
      expect(view.owners(key)).toMatchObject({ master: { id: 'node2', address: '127.0.0.1:7001' }, backup: { id: 'node3' } });
    }
    expect(view.ownedBy(`memc.sess.key.${id}`, 'node2')).toBe(true);
    expect(view.ownedBy(`memc.sess.key.${id}`, 'node1')).toBe(false);
    expect(view.minted(id)).toEqual(parseSessionId(id, SECRET));
  });

  it('after the master dies every node agrees: the backup serves, the new backup is rendezvous-ranked', () => {
    const answers = ['node1', 'node3', 'node4'].map((self) => {
      const view = new ClusterView(self, { secret: SECRET });
      view.update(members(['node1', 'node3', 'node4'], ['node2']));
      const owners = view.owners(`memc.sess.key.${id}`);
      return [owners.master?.id, owners.backup?.id];
    });
    const expectedBackup = rank(id, ['node1', 'node3', 'node4']).find((m) => m !== 'node3');
    for (const answer of answers) expect(answer).toEqual(['node3', expectedBackup]);
  });

  it('a restarting named master counts as owner again (catch-up takes its sessions back)', () => {
    const view = new ClusterView('node3', { secret: SECRET });
    view.update(members(['node1', 'node3', 'node4'], ['node2']));
    expect(view.ownedBy(id, 'node2')).toBe(true);
  });

  it('an id with a forged tag, another secret, or a stock shape is placed by hashing', () => {
    const view = new ClusterView('node1', { secret: SECRET });
    view.update(members(['node1', 'node2', 'node3', 'node4']));
    const forged = id.slice(0, -1) + (id.endsWith('a') ? 'b' : 'a');
    const foreign = mintSessionId({ master: 'node2', backup: 'node3', revision: 0, secret: 'another secret' });
    for (const other of [forged, foreign, 'k3b9v0s1h2d8e7q6r5t4y3u2i1o0p9a8']) {
      expect(view.minted(other)).toBeNull();
      const ranked = rank(other, ['node1', 'node2', 'node3', 'node4']);
      expect(view.owners(`memc.sess.key.${other}`)).toMatchObject({ master: { id: ranked[0] }, backup: { id: ranked[1] } });
    }
  });

  it('without a secret nothing is minted: every id is hashed', () => {
    const view = new ClusterView('node1');
    view.update(members(['node1', 'node2', 'node3']));
    expect(view.minted(id)).toBeNull();
  });
});

describe('ClusterView during a drain, and after a leave with a replacement', () => {
  const id = mintSessionId({ master: 'node2', backup: 'node3', revision: 0, secret: SECRET });
  const key = `memc.sess.key.${id}`;

  it('the draining node owns nothing and sends the minted sessions naming it to its replacement', () => {
    const view = new ClusterView('node2', { secret: SECRET });
    view.update(members(['node1', 'node2', 'node3', 'node4']));
    expect(view.owners(key).master?.id).toBe('node2');
    view.leave('node4');
    expect(view.leaving).toBe(true);
    expect(view.owners(key)).toMatchObject({ master: { id: 'node4' }, backup: { id: 'node3' } });
    expect(view.isLive('node2')).toBe(false);
    // membership changes during the drain keep it out
    view.update(members(['node1', 'node2', 'node3', 'node4']));
    expect(view.owners(key).master?.id).toBe('node4');
    for (let i = 0; i < 200; i++) {
      const o = view.owners(`memc.sess.key.stock${i}`);
      expect([o.master?.id, o.backup?.id]).not.toContain('node2');
    }
  });

  it('the others read the replacement from the member list once the leave arrives, and forget it when the node is back', () => {
    const view = new ClusterView('node1', { secret: SECRET });
    const left: MemberInfo = { id: 'node2', peerAddress: '127.0.0.1:7200', state: MemberState.Left, incarnation: 1, replacement: 'node4' };
    view.update([...members(['node1', 'node3', 'node4']), left]);
    expect(view.owners(key)).toMatchObject({ master: { id: 'node4' }, backup: { id: 'node3' } });
    view.update([...members(['node1', 'node3', 'node4']), { ...left, state: MemberState.Alive, incarnation: 2, replacement: undefined }]);
    expect(view.owners(key)).toMatchObject({ master: { id: 'node2' }, backup: { id: 'node3' } });
  });
});
