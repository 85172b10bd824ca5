// Server→client request ids carry their upstream and original id, so any instance can route the answer.

import { describe, expect, it } from 'vitest';
import { decodeServerRequestId, encodeServerRequestId } from '../../src/mcp/server-request-id.ts';

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

describe('server request ids', () => {
  it.each<[string, string | number]>([
    ['everything', 1],
    ['everything', 0],
    ['everything', -3],
    ['github', 'req-abc'],
    ['github', ''],
    ['files', Number.MAX_SAFE_INTEGER],
    ['a_b-c', 'with "quotes", \\ backslashes and unicode \u00e9\u{1F600}'],
    ['x', 'gh1.looks-like-ours'],
  ])('round-trips upstream %j and id %j, keeping the id type', (upstream, id) => {
    const encoded = encodeServerRequestId(upstream, id);
    expect(decodeServerRequestId(encoded)).toEqual({ upstream, id });
    expect(typeof decodeServerRequestId(encoded)!.id).toBe(typeof id);
  });

  it('encodes into a string id safe to put anywhere (no JSON or URL metacharacters)', () => {
    const encoded = encodeServerRequestId('up', 'a/b+c=d "e"');
    expect(encoded).toMatch(/^gh1\.[A-Za-z0-9_-]+$/);
  });

  it('gives different ids for 1 and "1", and for different upstreams', () => {
    const ids = new Set([
      encodeServerRequestId('a', 1),
      encodeServerRequestId('a', '1'),
      encodeServerRequestId('b', 1),
      encodeServerRequestId('b', '1'),
    ]);
    expect(ids.size).toBe(4);
  });

  it.each<[string, string | number]>([
    ['a number id', 42],
    ['a UUID', '6f1f3a52-3f4c-4b8b-9a55-0a0cbb3a2f10'],
    ['an empty string', ''],
    ['the prefix alone', 'gh1.'],
    ['the wrong prefix', `gh2.${b64(['up', 1])}`],
    ['an upper-case prefix', `GH1.${b64(['up', 1])}`],
    ['the payload without prefix', b64(['up', 1])],
  ])('ignores a foreign id: %s', (_name, id) => {
    expect(decodeServerRequestId(id)).toBeUndefined();
  });

  it.each<[string, string]>([
    ['a truncated payload', encodeServerRequestId('upstream', 'abcdef').slice(0, -3)],
    ['a corrupted last character', `${encodeServerRequestId('up', 7).slice(0, -1)}A`],
    ['a payload that is not JSON', `gh1.${b64('not json')}`],
    ['a JSON object', `gh1.${b64({ upstream: 'up', id: 1 })}`],
    ['a JSON string', `gh1.${b64('"up"')}`],
    ['a one-element array', `gh1.${b64(['up'])}`],
    ['a three-element array', `gh1.${b64(['up', 1, 'x'])}`],
    ['a numeric upstream', `gh1.${b64([1, 1])}`],
    ['a null id', `gh1.${b64(['up', null])}`],
    ['a fractional id', `gh1.${b64(['up', 1.5])}`],
    ['an object id', `gh1.${b64(['up', { a: 1 }])}`],
    ['a boolean id', `gh1.${b64(['up', true])}`],
    ['invalid UTF-8', `gh1.${Buffer.from([0xff, 0xfe, 0x5b]).toString('base64url')}`],
  ])('refuses a tampered id: %s', (_name, id) => {
    expect(decodeServerRequestId(id)).toBeUndefined();
  });
});
