// Include/exclude globs on tool and prompt names: `*` and `?` are the only special characters.

import { describe, expect, it } from 'vitest';
import { compileFilter, globToRegExp } from '../../src/catalog/filter.ts';

describe('globToRegExp', () => {
  it('* matches any run of characters (none too), ? exactly one; the whole name must match', () => {
    const star = globToRegExp('get_*');
    expect(star.test('get_')).toBe(true);
    expect(star.test('get_user')).toBe(true);
    expect(star.test('xget_user')).toBe(false);
    const q = globToRegExp('v?');
    expect(q.test('v1')).toBe(true);
    expect(q.test('v')).toBe(false);
    expect(q.test('v12')).toBe(false);
    expect(globToRegExp('*').test('')).toBe(true);
    expect(globToRegExp('a*b*c').test('a--b--c')).toBe(true);
    expect(globToRegExp('a*b*c').test('a--c--b')).toBe(false);
  });

  it('route-wide rules name <upstream>:<tool>; * crosses the colon', () => {
    expect(globToRegExp('files:write_*').test('files:write_file')).toBe(true);
    expect(globToRegExp('files:write_*').test('other:write_file')).toBe(false);
    expect(globToRegExp('*:search').test('alpha:search')).toBe(true);
    expect(globToRegExp('*').test('alpha:search')).toBe(true);
  });

  it('every other character is literal, regex metacharacters included', () => {
    const literals = ['a.b', 'a+b', 'a^b', 'a$b', '(x)', '[ab]', '{1,2}', 'a|b', 'a\\b', 'a/b', 'a-b', 'a]b'];
    for (const glob of literals) {
      const re = globToRegExp(glob);
      expect(re.test(glob), glob).toBe(true);
    }
    expect(globToRegExp('a.b').test('aXb')).toBe(false);
    expect(globToRegExp('a+b').test('aab')).toBe(false);
    expect(globToRegExp('[ab]').test('a')).toBe(false);
    expect(globToRegExp('a|b').test('a')).toBe(false);
    expect(globToRegExp('{1,2}').test('1')).toBe(false);
    expect(globToRegExp('a\\b').test('a\\b')).toBe(true);
    expect(globToRegExp('(x)').test('x')).toBe(false);
    // A glob that would be an invalid regular expression is still a valid glob.
    expect(() => globToRegExp('((')).not.toThrow();
    expect(globToRegExp('((').test('((')).toBe(true);
  });

  it('* and ? match any character, newlines and non-ASCII included', () => {
    expect(globToRegExp('a*z').test('a\nz')).toBe(true);
    expect(globToRegExp('?').test('\n')).toBe(true);
    expect(globToRegExp('caf?').test('café')).toBe(true);
    expect(globToRegExp('é*').test('éa')).toBe(true);
  });

  it('is case-sensitive', () => {
    expect(globToRegExp('Echo').test('echo')).toBe(false);
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
