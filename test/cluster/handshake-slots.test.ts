/**
 * The peer listener's handshake slots (src/cluster/peer/handshake-slots.ts): newcomers are always
 * admitted, and trimming back to the cap names the connections that make room, silent ones first,
 * oldest first.
 */
import { describe, expect, it } from 'vitest';
import { HandshakeSlots } from '../../src/cluster/peer/handshake-slots.js';

function filled(max: number, ids: string[]): HandshakeSlots<string> {
  const slots = new HandshakeSlots<string>(max);
  for (const id of ids) expect(slots.admit(id)).toBeNull();
  return slots;
}

describe('HandshakeSlots', () => {
  it('up to the cap, nothing makes room', () => {
    const slots = filled(3, ['a', 'b', 'c']);
    expect(slots.size).toBe(3);
    expect(slots.trim()).toEqual([]);
  });

  it('admits past the cap; trimming closes the oldest silent connections', () => {
    const slots = filled(3, ['a', 'b', 'c', 'd', 'e']);
    expect(slots.size).toBe(5);
    expect(slots.trim()).toEqual(['a', 'b']);
    expect(slots.size).toBe(3);
    expect(slots.trim()).toEqual([]);
  });

  it('a connection that has talked makes room only once no silent one is left, the oldest talker first', () => {
    const slots = filled(3, ['a', 'b', 'c']);
    slots.talk('a');
    slots.talk('b');
    slots.admit('d');
    slots.admit('e');
    // c, d and e are silent: the two oldest of them go
    expect(slots.trim()).toEqual(['c', 'd']);
    slots.talk('e');
    slots.admit('f');
    slots.admit('g');
    // a, b, e talked; f, g are silent and go first, then the one that talked first
    slots.admit('h');
    expect(slots.trim()).toEqual(['f', 'g', 'h']);
    slots.admit('i');
    slots.talk('i');
    expect(slots.trim()).toEqual(['a']);
  });

  it('a peer that talks before the trim is kept, however many silent ones came in the same burst', () => {
    const slots = filled(4, ['peer']);
    for (let i = 0; i < 60; i++) slots.admit(`flood${i}`);
    slots.talk('peer');
    const closed = slots.trim();
    expect(closed).toHaveLength(61 - 4);
    expect(closed).not.toContain('peer');
    // and the flood that follows never reaches it while it has silent company
    for (let i = 60; i < 1000; i++) {
      slots.admit(`flood${i}`);
      expect(slots.trim()).not.toContain('peer');
    }
  });

  it('past the hard limit, admitting makes room at once', () => {
    const slots = new HandshakeSlots<string>(2);
    expect(slots.hardMax).toBe(32);
    for (let i = 0; i < 32; i++) expect(slots.admit(`s${i}`)).toBeNull();
    expect(slots.admit('late')).toBe('s0');
    expect(slots.size).toBe(32);
  });

  it('a released connection (authenticated or closed) frees its slot; releasing twice is harmless', () => {
    const slots = filled(2, ['a', 'b']);
    slots.talk('b');
    slots.release('b');
    slots.release('b');
    expect(slots.size).toBe(1);
    // talking about a connection that holds no slot does not give it one
    slots.talk('b');
    slots.admit('c');
    expect(slots.size).toBe(2);
    expect(slots.trim()).toEqual([]);
  });

  it('needs room for at least one handshake', () => {
    expect(() => new HandshakeSlots(0)).toThrow(RangeError);
  });
});
