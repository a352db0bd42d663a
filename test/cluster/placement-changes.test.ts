/**
 * Frozen placements and which membership changes can only take ownership away from members
 * that are gone (re-replication leaves copies out only across those).
 */
import { describe, expect, it } from 'vitest';
import { ClusterView, onlyRemovesMembers, type Placement } from '../../src/cluster/cluster-view.js';
import { MemberState, type MemberInfo } from '../../src/cluster/types.js';

const member = (id: string, state: MemberState, replacement?: string): MemberInfo => ({
  id, peerAddress: `${id}:11212`, state, incarnation: 1, ...(replacement !== undefined ? { replacement } : {}),
});
const ALIVE = ['node1', 'node2', 'node3', 'node4'].map((id) => member(id, MemberState.Alive));

function placementOf(members: MemberInfo[]): Placement {
  const view = new ClusterView('node1');
  view.update(members);
  return view.placement();
}

describe('placements', () => {
  it('are frozen: a later change of the view does not alter what an earlier placement answers', () => {
    const view = new ClusterView('node1');
    view.update(ALIVE);
    const before = view.placement();
    const key = Array.from({ length: 100 }, (_, i) => `memc.sess.key.s${i}`)
      .find((k) => before.owners(k).master === 'node4' || before.owners(k).backup === 'node4')!;
    const owners = before.owners(key);
    view.update(ALIVE.map((m) => (m.id === 'node4' ? member('node4', MemberState.Dead) : m)));
    expect(before.owners(key)).toEqual(owners);
    expect(view.placement().owners(key)).not.toEqual(owners);
    expect(view.placement()).not.toBe(before);
  });

  it('announces changes of placement only, not every membership update', () => {
    const view = new ClusterView('node1');
    const seen: string[] = [];
    view.onPlacementChange((placement) => seen.push(placement.signature));
    view.update(ALIVE);
    view.update(ALIVE.map((m) => (m.id === 'node2' ? member('node2', MemberState.Suspect) : m))); // suspects keep their sessions
    view.update(ALIVE.map((m) => (m.id === 'node2' ? member('node2', MemberState.Dead) : m)));
    expect(seen).toEqual(['node1,node2,node3,node4|', 'node1,node3,node4|']);
  });

  it('deaths and leaves only remove members; a join or a forgotten replacement may demote an owner', () => {
    const all = placementOf(ALIVE);
    const dead4 = placementOf(ALIVE.map((m) => (m.id === 'node4' ? member('node4', MemberState.Dead) : m)));
    const left4 = placementOf(ALIVE.map((m) => (m.id === 'node4' ? member('node4', MemberState.Left, 'node2') : m)));
    const forgotten = placementOf(ALIVE.filter((m) => m.id !== 'node4'));
    expect(onlyRemovesMembers(all, dead4)).toBe(true);
    expect(onlyRemovesMembers(all, left4)).toBe(true);
    expect(onlyRemovesMembers(dead4, all)).toBe(false); // node4 came back
    expect(onlyRemovesMembers(left4, forgotten)).toBe(false); // node4's replacement forgotten
    expect(onlyRemovesMembers(dead4, forgotten)).toBe(true);
  });
});
