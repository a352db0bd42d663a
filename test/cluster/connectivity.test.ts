/**
 * Which members serve, from who hears whom: every node that has the same reports decides the
 * same set, in which every two members hear each other.
 */
import { describe, expect, it } from 'vitest';
import { connectedSet, type Reachability } from '../../src/cluster/membership/connectivity.js';
import { Quorum } from '../../src/cluster/quorum.js';

/** Reports from "a:b,c b:a" (each member: whom it hears). */
function reports(text: string): Reachability {
  return new Map(text.split(' ').filter(Boolean).map((part) => {
    const [id, hears] = part.split(':') as [string, string];
    return [id, new Set(hears === '' ? [] : hears.split(','))];
  }));
}
const serving = (members: string, text: string) => [...connectedSet(members.split(','), reports(text))].sort().join(',');

describe('connectedSet', () => {
  it('everyone hears everyone: all serve', () => {
    expect(serving('a,b,c', 'a:b,c b:a,c c:a,b')).toBe('a,b,c');
  });

  it('a crashed member, which nobody hears (its last report says it heard everyone), goes', () => {
    expect(serving('a,b,c', 'a:b b:a c:a,b')).toBe('a,b');
  });

  it('two that cannot reach each other, both reaching a third: the one with the greater id goes, everywhere', () => {
    expect(serving('n0,n1,n2', 'n0:n1 n1:n0,n2 n2:n1')).toBe('n0,n1');
  });

  it('one way: a hears b but b does not hear a: not linked (a request needs both ways); a, which fewer hear, goes', () => {
    expect(serving('a,b,c', 'a:b,c b:c c:a,b')).toBe('b,c');
  });

  it('right after a crash, with another member\'s report a heartbeat old: the crashed one goes, not this node', () => {
    // as c sees it: it no longer hears b (crashed); a's report still says a hears b; b's last one hears everyone
    expect(serving('a,b,c', 'a:b,c b:a,c c:a')).toBe('a,c');
    // five nodes, e crashed, only a has noticed yet
    expect(serving('a,b,c,d,e', 'a:b,c,d b:a,c,d,e c:a,b,d,e d:a,b,c,e e:a,b,c,d')).toBe('a,b,c,d');
  });

  it('a member with no report hears nobody: it goes', () => {
    expect(serving('a,b,c', 'a:b,c b:a,c')).toBe('a,b');
  });

  it('an isolated member goes: in its own eyes too, where the others\' last reports still hold', () => {
    // as x sees it, cut off: its own report is empty, the others' (older) ones still name each other and x
    expect(serving('x,y,z', 'x: y:x,z z:x,y')).toBe('y,z');
  });

  it('a split in two halves: the same half is chosen on both sides, from the same reports', () => {
    expect(serving('a,b,c,d', 'a:b b:a c:d d:c')).toBe('a,b');
  });

  it('a member alone, or none', () => {
    expect(serving('a', 'a:')).toBe('a');
    expect(connectedSet([], new Map()).size).toBe(0);
  });

  it('a member that has not reported yet does not serve, and costs the members that did nothing', () => {
    // a just met b (it hears b), b has sent no report: b waits; a, which b does not hear yet, stays
    expect(serving('a,b', 'a:b')).toBe('a');
    expect(serving('a,b,c', 'a:b,c b:a,c')).toBe('a,b');
    expect(serving('a', '')).toBe('');
  });
});

describe('Quorum', () => {
  const set = (ids: string) => new Set(ids.split(',').filter(Boolean));

  it('three nodes: one lost leaves a majority, and the two then agree; a second loss leaves one of two', () => {
    const available = new Quorum('a', 'available');
    const consistent = new Quorum('a', 'consistent');
    for (const quorum of [available, consistent]) {
      expect(quorum.update(set('a,b,c'), [])).toBe(true);
      expect(quorum.update(set('a,b'), [])).toBe(true);
      expect(quorum.voterIds, 'c stopped serving while a majority remained: no longer counted').toEqual(['a', 'b']);
    }
    expect(available.update(set('a'), []), 'available: one of two keeps serving').toBe(true);
    expect(available.voterIds).toEqual(['a']);
    expect(consistent.update(set('a'), []), 'consistent: one of two stops').toBe(false);
    expect(consistent.voterIds).toEqual(['a', 'b']);
    expect(consistent.describe()).toBe('this node reaches 1 of the cluster\'s 2 members, not a majority');
    expect(consistent.update(set('a,b'), [])).toBe(true);
  });

  it('cut off from the majority: no majority, and the members it cannot reach still count', () => {
    const quorum = new Quorum('a');
    quorum.update(set('a,b,c,d,e'), []);
    expect(quorum.update(set('a,b'), [])).toBe(false);
    expect(quorum.voterIds).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(quorum.servingVoters).toBe(2);
    // the other side sees it from its own place: 3 of 5
    const other = new Quorum('c');
    other.update(set('a,b,c,d,e'), []);
    expect(other.update(set('c,d,e'), [])).toBe(true);
    expect(other.voterIds).toEqual(['c', 'd', 'e']);
  });

  it('left out of the serving members: no majority, whatever the others have', () => {
    const quorum = new Quorum('x');
    quorum.update(set('x,y,z'), []);
    expect(quorum.update(set('y,z'), [])).toBe(false);
    expect(quorum.describe()).toBe('this node is cut off from the members that reach each other');
  });

  it('a member that left on purpose no longer counts, majority or not', () => {
    const quorum = new Quorum('a', 'consistent');
    quorum.update(set('a,b,c'), []);
    expect(quorum.update(set('a'), ['b', 'c']), 'both left: a is the cluster').toBe(true);
    expect(quorum.voterIds).toEqual(['a']);
  });

  it('a member that comes back counts again', () => {
    const quorum = new Quorum('a');
    quorum.update(set('a,b,c'), []);
    quorum.update(set('a,b'), []);
    expect(quorum.update(set('a,b,c'), [])).toBe(true);
    expect(quorum.voterIds).toEqual(['a', 'b', 'c']);
  });
});
