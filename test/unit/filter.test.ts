// Include/exclude globs on tool and prompt names: `*` and `?` are the only special characters.

import { describe, expect, it } from 'vitest';
import { compileFilter, globMatcher } from '../../src/catalog/filter.ts';

describe('globMatcher', () => {
  it('* matches any run of characters (none too), ? exactly one; the whole name must match', () => {
    const star = globMatcher('get_*');
    expect(star('get_')).toBe(true);
    expect(star('get_user')).toBe(true);
    expect(star('xget_user')).toBe(false);
    const q = globMatcher('v?');
    expect(q('v1')).toBe(true);
    expect(q('v')).toBe(false);
    expect(q('v12')).toBe(false);
    expect(globMatcher('*')('')).toBe(true);
    expect(globMatcher('a*b*c')('a--b--c')).toBe(true);
    expect(globMatcher('a*b*c')('a--c--b')).toBe(false);
  });

  it('route-wide rules name <upstream>:<tool>; * crosses the colon', () => {
    expect(globMatcher('files:write_*')('files:write_file')).toBe(true);
    expect(globMatcher('files:write_*')('other:write_file')).toBe(false);
    expect(globMatcher('*:search')('alpha:search')).toBe(true);
    expect(globMatcher('*')('alpha:search')).toBe(true);
  });

  it('every other character is literal, regex metacharacters included', () => {
    const literals = ['a.b', 'a+b', 'a^b', 'a$b', '(x)', '[ab]', '{1,2}', 'a|b', 'a\\b', 'a/b', 'a-b', 'a]b'];
    for (const glob of literals) {
      const re = globMatcher(glob);
      expect(re(glob), glob).toBe(true);
    }
    expect(globMatcher('a.b')('aXb')).toBe(false);
    expect(globMatcher('a+b')('aab')).toBe(false);
    expect(globMatcher('[ab]')('a')).toBe(false);
    expect(globMatcher('a|b')('a')).toBe(false);
    expect(globMatcher('{1,2}')('1')).toBe(false);
    expect(globMatcher('a\\b')('a\\b')).toBe(true);
    expect(globMatcher('(x)')('x')).toBe(false);
    // A glob that would be an invalid regular expression is still a valid glob.
    expect(() => globMatcher('((')).not.toThrow();
    expect(globMatcher('((')('((')).toBe(true);
  });

  it('* and ? match any character, newlines and non-ASCII included', () => {
    expect(globMatcher('a*z')('a\nz')).toBe(true);
    expect(globMatcher('?')('\n')).toBe(true);
    expect(globMatcher('caf?')('café')).toBe(true);
    expect(globMatcher('é*')('éa')).toBe(true);
  });

  it('is case-sensitive', () => {
    expect(globMatcher('Echo')('echo')).toBe(false);
  });
});

describe('compileFilter', () => {
  it('no config, or empty lists: everything passes', () => {
    for (const f of [
      compileFilter(undefined),
      compileFilter({}),
      compileFilter({ include: [], exclude: [] }),
    ]) {
      expect(f('anything')).toBe(true);
      expect(f('')).toBe(true);
    }
  });

  it('include: only names matching one of the globs pass', () => {
    const f = compileFilter({ include: ['get_*', 'echo'] });
    expect(f('get_user')).toBe(true);
    expect(f('echo')).toBe(true);
    expect(f('echo2')).toBe(false);
    expect(f('delete_user')).toBe(false);
  });

  it('exclude: names matching one of the globs are hidden', () => {
    const f = compileFilter({ exclude: ['secret_*', 'drop?'] });
    expect(f('secret_a')).toBe(false);
    expect(f('drop1')).toBe(false);
    expect(f('drop12')).toBe(true);
    expect(f('public')).toBe(true);
  });

  it('include and exclude together: exclude wins over include', () => {
    const f = compileFilter({ include: ['alpha:*', 'beta:s*'], exclude: ['alpha:drop_*'] });
    expect(f('alpha:search')).toBe(true);
    expect(f('alpha:drop_me')).toBe(false);
    expect(f('beta:search')).toBe(true);
    expect(f('beta:echo')).toBe(false);
    expect(f('gamma:search')).toBe(false);
  });

  it('an empty include list with an exclude list: everything but the excluded', () => {
    const f = compileFilter({ include: [], exclude: ['x'] });
    expect(f('x')).toBe(false);
    expect(f('y')).toBe(true);
  });
});
