// Exposed names of aggregated tools and prompts: prefix modes, collisions, duplicates, long names, and
// the gatehouse:// wrapping of resource URIs.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  exposeNames,
  MAX_NAME,
  type NamedEntry,
  prefixed,
  SEPARATOR,
  shorten,
  unwrapUri,
  wrapUri,
} from '../../src/catalog/naming.ts';

const e = (upstream: string, original: string): NamedEntry => ({ upstream, original });

/** Exposed name → "upstream:original", for compact assertions. */
function table(entries: NamedEntry[], mode: 'always' | 'on-conflict' | 'never'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const x of exposeNames(entries, mode).exposed) out[x.name] = `${x.entry.upstream}:${x.entry.original}`;
  return out;
}

const ROUTE = [
  e('a', 'echo'),
  e('a', 'search'),
  e('a', 'only_a'),
  e('b', 'echo'),
  e('b', 'search'),
  e('c', 'echo'),
];

describe('exposeNames', () => {
  it('always: every name is <upstream>__<name>', () => {
    expect(table(ROUTE, 'always')).toEqual({
      a__echo: 'a:echo',
      a__search: 'a:search',
      a__only_a: 'a:only_a',
      b__echo: 'b:echo',
      b__search: 'b:search',
      c__echo: 'c:echo',
    });
    expect(SEPARATOR).toBe('__');
  });

  it('on-conflict: only colliding names are prefixed, and all of the colliding ones (the first too)', () => {
    const { exposed, collisions } = exposeNames(ROUTE, 'on-conflict');
    expect(table(ROUTE, 'on-conflict')).toEqual({
      a__echo: 'a:echo',
      a__search: 'a:search',
      only_a: 'a:only_a',
      b__echo: 'b:echo',
      b__search: 'b:search',
      c__echo: 'c:echo',
    });
    // Route order is kept.
    expect(exposed.map((x) => x.name)).toEqual([
      'a__echo',
      'a__search',
      'only_a',
      'b__echo',
      'b__search',
      'c__echo',
    ]);
    // Nothing is lost in on-conflict mode: every colliding entry is exposed under its prefixed name.
    expect(collisions).toEqual([
      { name: 'echo', upstreams: ['a', 'b', 'c'], lost: [] },
      { name: 'search', upstreams: ['a', 'b'], lost: [] },
    ]);
  });

  it('never: the first upstream in route order keeps a colliding name, the others lose the entry (reported)', () => {
    const { exposed, collisions } = exposeNames(ROUTE, 'never');
    expect(table(ROUTE, 'never')).toEqual({ echo: 'a:echo', search: 'a:search', only_a: 'a:only_a' });
    expect(exposed).toHaveLength(3);
    expect(collisions).toEqual([
      { name: 'echo', upstreams: ['a', 'b', 'c'], lost: ['b', 'c'] },
      { name: 'search', upstreams: ['a', 'b'], lost: ['b'] },
    ]);
    // Route order decides, not the alphabet.
    const reversed = [e('z', 'echo'), e('a', 'echo')];
    expect(table(reversed, 'never')).toEqual({ echo: 'z:echo' });
  });

  it('no collision: names stay as they are in on-conflict and never modes', () => {
    const entries = [e('a', 'x'), e('b', 'y')];
    expect(table(entries, 'on-conflict')).toEqual({ x: 'a:x', y: 'b:y' });
    expect(table(entries, 'never')).toEqual({ x: 'a:x', y: 'b:y' });
    expect(exposeNames(entries, 'on-conflict').collisions).toEqual([]);
  });

  it('an upstream that lists a name twice: the first entry is kept, and that is no collision', () => {
    for (const mode of ['always', 'on-conflict', 'never'] as const) {
      const first = { upstream: 'a', original: 'x', tag: 1 };
      const second = { upstream: 'a', original: 'x', tag: 2 };
      const { exposed, collisions } = exposeNames([first, second], mode);
      expect(exposed).toHaveLength(1);
      expect(exposed[0]?.entry).toBe(first);
      expect(collisions).toEqual([]);
    }
    // Duplicates inside one upstream do not hide a real collision with another.
    const { exposed, collisions } = exposeNames([e('a', 'x'), e('a', 'x'), e('b', 'x')], 'on-conflict');
    expect(exposed.map((x) => x.name)).toEqual(['a__x', 'b__x']);
    expect(collisions).toEqual([{ name: 'x', upstreams: ['a', 'b'], lost: [] }]);
  });

  it("a prefixed name equal to another upstream's own name: the first in route order keeps it, the clash is reported", () => {
    // b's `x` collides with c's `x`, so it becomes b__x — which upstream a already offers as its own name.
    const entries = [e('a', 'b__x'), e('b', 'x'), e('c', 'x')];
    const { exposed, collisions } = exposeNames(entries, 'on-conflict');
    expect(exposed.map((x) => `${x.name}=${x.entry.upstream}:${x.entry.original}`)).toEqual([
      'b__x=a:b__x',
      'c__x=c:x',
    ]);
    expect(collisions).toContainEqual({ name: 'b__x', upstreams: ['a', 'b'], lost: ['b'] });
    // Names stay unique whatever happens.
    const names = exposed.map((x) => x.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it('always: upstream names containing the separator can produce the same prefixed name; the first keeps it (reported)', () => {
    const entries = [e('a', 'b__c'), e('a__b', 'c')];
    const { exposed, collisions } = exposeNames(entries, 'always');
    expect(exposed.map((x) => `${x.name}=${x.entry.upstream}`)).toEqual(['a__b__c=a']);
    expect(collisions).toEqual([{ name: 'a__b__c', upstreams: ['a', 'a__b'], lost: ['a__b'] }]);
  });

  // Regression (was a bug in src/catalog/naming.ts exposeNames): an upstream offering both `x` and `a__x` while `x` collides with
  // another upstream: its `x` becomes `a__x`, and its own, different tool `a__x` is then dropped by the
  // "an upstream that lists a name twice" check (it compares only the upstream, not the original name) —
  // silently: no collision is reported, so not even the catalogue's warning can tell. Expected: the clash
  // reported (collisions contains `a__x`), like every other lost entry.
  it('a prefixed name equal to a different tool of the same upstream is reported, not silently dropped', () => {
    const entries = [e('a', 'x'), e('a', 'a__x'), e('b', 'x')];
    const { exposed, collisions } = exposeNames(entries, 'on-conflict');
    expect(exposed.map((x) => `${x.name}=${x.entry.upstream}:${x.entry.original}`)).toEqual([
      'a__x=a:x',
      'b__x=b:x',
    ]);
    expect(collisions.map((c) => c.name)).toContain('a__x');
  });

  it('is pure: the same input gives the same output, and the input is not modified', () => {
    const input = ROUTE.map((x) => ({ ...x }));
    const one = exposeNames(input, 'on-conflict');
    const two = exposeNames(input, 'on-conflict');
    expect(two).toEqual(one);
    expect(input).toEqual(ROUTE);
  });

  it('shortens long names in every mode, and prefixed names that become long', () => {
    const long = 'l'.repeat(200);
    const fits = 't'.repeat(125); // 125 characters fit; a__ + 125 do not
    const entries = [e('a', long), e('a', fits)];
    const never = exposeNames(entries, 'never').exposed.map((x) => x.name);
    expect(never).toEqual([shorten(long), fits]);
    const always = exposeNames(entries, 'always').exposed.map((x) => x.name);
    expect(always).toEqual([shorten(`a__${long}`), shorten(`a__${fits}`)]);
    for (const n of always) expect(n.length).toBe(MAX_NAME);
    // The entry still names the upstream's original.
    expect(exposeNames(entries, 'always').exposed.map((x) => x.entry.original)).toEqual([long, fits]);
  });
});

describe('shorten', () => {
  it('leaves names of up to 128 characters alone', () => {
    expect(MAX_NAME).toBe(128);
    for (const n of ['', 'x', 'a'.repeat(127), 'b'.repeat(128)]) expect(shorten(n)).toBe(n);
  });

  it('cuts longer names to exactly 128: a readable head, "_" and 8 hex of the sha256 of the whole', () => {
    const name = `${'head-'.repeat(30)}tail`;
    const short = shorten(name);
    const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
    expect(short).toHaveLength(128);
    expect(short).toBe(`${name.slice(0, 119)}_${hash}`);
    expect(short).toMatch(/_[0-9a-f]{8}$/);
    expect(shorten('x'.repeat(129))).toHaveLength(128);
    expect(shorten('x'.repeat(10_000))).toHaveLength(128);
  });

  it('is deterministic, and names sharing a long head stay distinct', () => {
    const head = 'h'.repeat(150);
    expect(shorten(`${head}1`)).toBe(shorten(`${head}1`));
    expect(shorten(`${head}1`)).not.toBe(shorten(`${head}2`));
    expect(shorten(`${head}1`).slice(0, 119)).toBe(shorten(`${head}2`).slice(0, 119));
  });

  it('prefixed() is <upstream>__<name>, shortened', () => {
    expect(prefixed('up', 'tool')).toBe('up__tool');
    const p = prefixed('up', 'y'.repeat(130));
    expect(p).toHaveLength(128);
    expect(p).toBe(shorten(`up__${'y'.repeat(130)}`));
  });
});

describe('wrapUri / unwrapUri', () => {
  it('wraps as gatehouse://<upstream>/<original> and back, for URIs and templates', () => {
    for (const original of ['file:///tmp/a.txt', 'demo://x/{id}', 'https://h/p?q=1#f', 'a/b/c', '']) {
      const wrapped = wrapUri('up-1', original);
      expect(wrapped).toBe(`gatehouse://up-1/${original}`);
      expect(unwrapUri(wrapped)).toEqual({ upstream: 'up-1', original });
    }
  });

  it('anything else is not a wrapped URI', () => {
    expect(unwrapUri('file:///x')).toBeUndefined();
    expect(unwrapUri('gatehouse://')).toBeUndefined();
    expect(unwrapUri('gatehouse://up')).toBeUndefined(); // no slash after the upstream
    expect(unwrapUri('gatehouse:///x')).toBeUndefined(); // empty upstream
    expect(unwrapUri('GATEHOUSE://up/x')).toBeUndefined();
  });
});
