import { describe, expect, it } from 'vitest';
import { byId, isLive, isMemberInfo, isMembershipMessage, supersedes } from '../../src/cluster/membership/member-rules.js';
import { MemberState, type MemberInfo } from '../../src/cluster/types.js';

// The incarnation rules (memberlist's aliveNode/suspectNode/deadNode): a higher incarnation wins
// whatever its state; at equal incarnation left > dead > suspect > alive; a lower one never wins.

const { Alive, Suspect, Dead, Left } = MemberState;
const m = (state: MemberState, incarnation: number): MemberInfo => ({ id: 'n1', peerAddress: 'h:1', state, incarnation });
const ORDER = [Alive, Suspect, Dead, Left];

describe('supersedes', () => {
  it('at equal incarnation, only a worse state wins: left > dead > suspect > alive', () => {
    for (const [i, news] of ORDER.entries()) {
      for (const [j, known] of ORDER.entries()) {
        expect(supersedes(m(news, 4), m(known, 4)), `${news} over ${known}`).toBe(i > j);
      }
    }
  });

  it('a higher incarnation wins whatever the states; a lower one never does', () => {
    for (const news of ORDER) {
      for (const known of ORDER) {
        expect(supersedes(m(news, 5), m(known, 4)), `${news}@5 over ${known}@4`).toBe(true);
        expect(supersedes(m(news, 3), m(known, 4)), `${news}@3 over ${known}@4`).toBe(false);
      }
    }
  });

  it('is a total order, so merging lists in any order ends at the same member', () => {
    const all = [0, 1, 2].flatMap((inc) => ORDER.map((state) => m(state, inc)));
    const merge = (list: MemberInfo[]): MemberInfo => list.reduce((known, news) => (supersedes(news, known) ? news : known));
    const expected = merge(all);
    expect(expected).toEqual(m(Left, 2));
    for (let shift = 0; shift < all.length; shift++) {
      const rotated = [...all.slice(shift), ...all.slice(0, shift)];
      expect(merge(rotated)).toEqual(expected);
      expect(merge([...rotated].reverse())).toEqual(expected);
    }
  });
});

describe('helpers', () => {
  it('alive and suspect members are live (a suspect keeps ownership until declared dead)', () => {
    expect(ORDER.filter(isLive)).toEqual([Alive, Suspect]);
  });

  it('sorts by code unit, not locale', () => {
    const ids = ['b', 'B', 'a', '_', '-', '1'];
    expect(ids.map((id) => ({ ...m(Alive, 0), id })).sort(byId).map((x) => x.id)).toEqual(['-', '1', 'B', '_', 'a', 'b']);
  });

  it('checks members and messages as decoded from the wire', () => {
    expect(isMemberInfo(m(Alive, 0))).toBe(true);
    for (const bad of [
      null, 'x', {}, { ...m(Alive, 0), id: '' }, { ...m(Alive, 0), id: 'x'.repeat(65) }, { ...m(Alive, 0), id: 'a b' },
      { ...m(Alive, 0), peerAddress: '' }, { ...m(Alive, 0), state: 'zombie' }, { ...m(Alive, 0), incarnation: -1 },
      { ...m(Alive, 0), incarnation: 1.5 }, { ...m(Alive, 0), incarnation: '1' }, { ...m(Alive, 0), incarnation: 2 ** 53 },
    ]) {
      expect(isMemberInfo(bad), JSON.stringify(bad)).toBe(false);
    }
    expect(isMembershipMessage({ kind: 'join', member: m(Alive, 0) })).toBe(true);
    expect(isMembershipMessage({ kind: 'leave', member: m(Left, 0) })).toBe(true);
    expect(isMembershipMessage({ kind: 'heartbeat', member: m(Alive, 0), members: [] })).toBe(true);
    expect(isMembershipMessage({ kind: 'heartbeat', member: m(Alive, 0) })).toBe(false);
    expect(isMembershipMessage({ kind: 'ping', member: m(Alive, 0) })).toBe(false);
    expect(isMembershipMessage({ kind: 'join' })).toBe(false);
  });
});
