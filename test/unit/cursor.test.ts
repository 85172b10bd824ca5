// Cursors of aggregated lists: opaque, signed, bound to the kind of list and to the codec's key.

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CursorCodec } from '../../src/catalog/cursor.ts';

describe('CursorCodec', () => {
  it('round-trips the state of every kind of list', () => {
    const codec = new CursorCodec();
    for (const kind of ['tools', 'prompts', 'resources', 'templates']) {
      for (const offset of [0, 1, 3, 500, 123_456]) {
        const cursor = codec.encode({ kind, offset });
        expect(typeof cursor).toBe('string');
        expect(codec.decode(cursor, kind)).toEqual({ kind, offset });
      }
    }
  });

  it('is opaque: the cursor does not show the list or the offset in clear', () => {
    const cursor = new CursorCodec().encode({ kind: 'tools', offset: 42 });
    expect(cursor).not.toContain('tools');
    expect(cursor).not.toContain('42');
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  });

  it('is deterministic for one key and state, different for another state', () => {
    const codec = new CursorCodec(Buffer.alloc(32, 7));
    expect(codec.encode({ kind: 'tools', offset: 3 })).toBe(codec.encode({ kind: 'tools', offset: 3 }));
    expect(codec.encode({ kind: 'tools', offset: 3 })).not.toBe(codec.encode({ kind: 'tools', offset: 6 }));
  });

  it('refuses a cursor for another kind of list', () => {
    const codec = new CursorCodec();
    const cursor = codec.encode({ kind: 'tools', offset: 3 });
    expect(codec.decode(cursor, 'prompts')).toBeUndefined();
    expect(codec.decode(cursor, 'resources')).toBeUndefined();
  });

  it('refuses a tampered body (another offset under the old signature) or signature', () => {
    const codec = new CursorCodec();
    const cursor = codec.encode({ kind: 'tools', offset: 3 });
    const [, mac] = cursor.split('.');
    const forged = `${Buffer.from('tools:300').toString('base64url')}.${mac}`;
    expect(codec.decode(forged, 'tools')).toBeUndefined();
    const flipped = cursor.slice(0, -1) + (cursor.endsWith('A') ? 'B' : 'A');
    expect(codec.decode(flipped, 'tools')).toBeUndefined();
    expect(codec.decode(`${cursor}x`, 'tools')).toBeUndefined();
    expect(codec.decode(cursor.slice(0, -1), 'tools')).toBeUndefined();
  });

  it("refuses a cursor made with another key (another gateway's, or from before a restart)", () => {
    const mine = new CursorCodec(randomBytes(32));
    const other = new CursorCodec(randomBytes(32));
    expect(mine.decode(other.encode({ kind: 'tools', offset: 3 }), 'tools')).toBeUndefined();
  });

  it('instances sharing a key read each other’s cursors', () => {
    const key = randomBytes(32);
    const a = new CursorCodec(key);
    const b = new CursorCodec(Buffer.from(key));
    expect(b.decode(a.encode({ kind: 'prompts', offset: 9 }), 'prompts')).toEqual({
      kind: 'prompts',
      offset: 9,
    });
  });

  it('refuses anything that is not one of its cursors', () => {
    const codec = new CursorCodec();
    for (const bad of [
      undefined,
      null,
      3,
      {},
      [],
      '',
      '.',
      'abc',
      '.abc',
      'abc.',
      'tools:3',
      '2',
      'dG9vbHM6Mw',
    ]) {
      expect(codec.decode(bad, 'tools')).toBeUndefined();
    }
  });

  it('refuses signed states whose offset is not a non-negative integer', () => {
    const codec = new CursorCodec();
    for (const offset of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(codec.decode(codec.encode({ kind: 'tools', offset }), 'tools')).toBeUndefined();
    }
  });
});
