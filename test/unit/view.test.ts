// A route's merged view of its upstreams' catalogues: names, filters, overrides, URI wrapping, and the
// maps that send each exposed name or URI back to its owner.

import { describe, expect, it } from 'vitest';
import { compileFilter, type FilterConfig } from '../../src/catalog/filter.ts';
import type { PrefixMode } from '../../src/catalog/naming.ts';
import {
  buildRouteView,
  type CatalogEntries,
  exposeUri,
  type Item,
  type RouteCatalogConfig,
  resolveUri,
  type UpstreamCuration,
} from '../../src/catalog/view.ts';

interface Spec {
  tools?: string[];
  prompts?: string[];
  resources?: string[];
  templates?: string[];
  instructions?: string;
}

function entries(name: string, s: Spec): CatalogEntries {
  return {
    initializeResult: {
      serverInfo: { name, version: '1' },
      capabilities: { tools: {} },
      ...(s.instructions ? { instructions: s.instructions } : {}),
    },
    tools: (s.tools ?? []).map((t) => ({
      name: t,
      description: `${name}'s ${t}`,
      inputSchema: { type: 'object' },
    })),
    prompts: (s.prompts ?? []).map((p) => ({ name: p, description: `${name}'s ${p}` })),
    resources: (s.resources ?? []).map((uri) => ({ uri, name: `${name} ${uri}` })),
    templates: (s.templates ?? []).map((uriTemplate) => ({ uriTemplate, name: `${name} ${uriTemplate}` })),
  };
}

interface RouteOpts {
  tools?: { prefix?: PrefixMode } & FilterConfig;
  prompts?: { prefix?: PrefixMode } & FilterConfig;
  resources?: 'always' | 'on-conflict';
  curation?: Record<
    string,
    {
      tools?: FilterConfig;
      prompts?: FilterConfig;
      overrides?: Record<string, { description?: string; title?: string }>;
    }
  >;
}

function route(upstreams: string[], o: RouteOpts = {}): RouteCatalogConfig {
  const curation = new Map<string, UpstreamCuration>();
  for (const u of upstreams) {
    const c = o.curation?.[u];
    curation.set(u, {
      tools: compileFilter(c?.tools),
      prompts: compileFilter(c?.prompts),
      overrides: new Map(Object.entries(c?.overrides ?? {})),
    });
  }
  return {
    path: '/mcp',
    upstreams,
    tools: { prefix: o.tools?.prefix ?? 'on-conflict', filter: compileFilter(o.tools) },
    prompts: { prefix: o.prompts?.prefix ?? 'on-conflict', filter: compileFilter(o.prompts) },
    resources: { prefix: o.resources ?? 'on-conflict' },
    curation,
  };
}

function sources(specs: Record<string, Spec>) {
  return Object.entries(specs).map(([upstream, s]) => ({ upstream, entries: entries(upstream, s) }));
}

const names = (items: Item[]) => items.map((i) => i.name);

const SPECS: Record<string, Spec> = {
  alpha: {
    tools: ['echo', 'search', 'alpha_only', 'secret_1', 'drop_me'],
    prompts: ['greet', 'summarize'],
    resources: ['file:///shared.txt', 'alpha://doc/1'],
    templates: ['alpha://item/{id}'],
    instructions: 'Use alpha for A.',
  },
  beta: {
    tools: ['echo', 'search', 'beta_only', 'hidden'],
    prompts: ['greet'],
    resources: ['file:///shared.txt', 'beta://doc/1'],
    templates: ['beta://item/{id}'],
  },
  gamma: {
    tools: ['gamma_only'],
    resources: ['gamma://doc/1'],
    templates: ['gamma://item/{id}'],
  },
};
const ALL = ['alpha', 'beta', 'gamma'];

describe('buildRouteView: names', () => {
  it('on-conflict: colliding tools and prompts of every owner are prefixed and map back to their owner', () => {
    const view = buildRouteView(route(ALL), sources(SPECS));
    expect(names(view.tools.items)).toEqual([
      'alpha__echo',
      'alpha__search',
      'alpha_only',
      'secret_1',
      'drop_me',
      'beta__echo',
      'beta__search',
      'beta_only',
      'hidden',
      'gamma_only',
    ]);
    expect(view.tools.byName.get('beta__search')).toEqual({ upstream: 'beta', original: 'search' });
    expect(view.tools.byName.get('gamma_only')).toEqual({ upstream: 'gamma', original: 'gamma_only' });
    expect(view.tools.byName.has('echo')).toBe(false);
    expect(names(view.prompts.items)).toEqual(['alpha__greet', 'summarize', 'beta__greet']);
    expect(view.prompts.byName.get('beta__greet')).toEqual({ upstream: 'beta', original: 'greet' });
    // Everything else of a renamed item is the upstream's.
    const item = view.tools.items.find((t) => t.name === 'beta__echo');
    expect(item).toEqual({ name: 'beta__echo', description: "beta's echo", inputSchema: { type: 'object' } });
    expect(view.present).toEqual(ALL);
    expect(view.collisions).toEqual(
      expect.arrayContaining([
        { kind: 'tool', collision: { name: 'echo', upstreams: ['alpha', 'beta'], lost: [] } },
        { kind: 'tool', collision: { name: 'search', upstreams: ['alpha', 'beta'], lost: [] } },
        { kind: 'prompt', collision: { name: 'greet', upstreams: ['alpha', 'beta'], lost: [] } },
      ]),
    );
  });

  it('always and never; tools and prompts have their own prefix mode', () => {
    const always = buildRouteView(
      route(ALL, { tools: { prefix: 'always' }, prompts: { prefix: 'never' } }),
      sources(SPECS),
    );
    expect(names(always.tools.items).every((n) => /^(alpha|beta|gamma)__/.test(String(n)))).toBe(true);
    expect(always.tools.byName.get('gamma__gamma_only')).toEqual({
      upstream: 'gamma',
      original: 'gamma_only',
    });
    expect(names(always.prompts.items)).toEqual(['greet', 'summarize']);
    expect(always.prompts.byName.get('greet')).toEqual({ upstream: 'alpha', original: 'greet' });

    const never = buildRouteView(route(ALL, { tools: { prefix: 'never' } }), sources(SPECS));
    expect(never.tools.byName.get('echo')).toEqual({ upstream: 'alpha', original: 'echo' });
    expect(never.tools.byName.get('search')).toEqual({ upstream: 'alpha', original: 'search' });
    expect(
      [...never.tools.byName.values()].filter((o) => o.upstream === 'beta').map((o) => o.original),
    ).toEqual(['beta_only', 'hidden']);
  });

  it('unchanged items are passed as they are (no copy); renamed ones are copies', () => {
    const src = sources(SPECS);
    const view = buildRouteView(route(ALL), src);
    const alphaOnly = src[0]?.entries.tools.find((t) => t.name === 'alpha_only');
    expect(view.tools.items.find((t) => t.name === 'alpha_only')).toBe(alphaOnly);
    expect(src[0]?.entries.tools[0]?.name).toBe('echo'); // the source is not renamed in place
  });

  it('skips items without a usable name', () => {
    const src = sources({ alpha: { tools: ['ok'] } });
    src[0]?.entries.tools.push({ description: 'no name' }, { name: '' }, { name: 42 });
    expect(names(buildRouteView(route(['alpha']), src).tools.items)).toEqual(['ok']);
  });
});

describe('buildRouteView: filters and overrides', () => {
  it('route-wide <upstream>:<name> globs, then the upstream’s own globs; filtered tools no longer collide', () => {
    const view = buildRouteView(
      route(ALL, {
        tools: { include: ['alpha:*', 'beta:*', 'gamma:*'], exclude: ['alpha:drop_*', 'beta:echo'] },
        curation: {
          alpha: { tools: { exclude: ['secret_*'] } },
          beta: { tools: { include: ['echo', 'search', 'beta_*'] } },
        },
      }),
      sources(SPECS),
    );
    expect(names(view.tools.items)).toEqual([
      'echo', // beta's echo is excluded route-wide: alpha's no longer collides
      'alpha__search',
      'alpha_only',
      'beta__search',
      'beta_only',
      'gamma_only',
    ]);
    expect(view.tools.byName.get('echo')).toEqual({ upstream: 'alpha', original: 'echo' });
    for (const hidden of ['secret_1', 'drop_me', 'hidden', 'beta__echo'])
      expect(view.tools.byName.has(hidden)).toBe(false);
  });

  it('a route include names upstream:tool, never the exposed name', () => {
    const view = buildRouteView(
      route(ALL, { tools: { include: ['beta:search', 'alpha__search'] } }),
      sources(SPECS),
    );
    expect(names(view.tools.items)).toEqual(['search']);
    expect(view.tools.byName.get('search')).toEqual({ upstream: 'beta', original: 'search' });
  });

  it('prompt filters are separate from tool filters', () => {
    const view = buildRouteView(
      route(ALL, {
        prompts: { exclude: ['beta:*'] },
        curation: { alpha: { prompts: { include: ['greet'] } } },
      }),
      sources(SPECS),
    );
    expect(names(view.prompts.items)).toEqual(['greet']);
    expect(names(view.tools.items)).toContain('beta__echo');
  });

  it('overrides replace description and title by the upstream’s own name, under any exposed name', () => {
    const src = sources(SPECS);
    const view = buildRouteView(
      route(ALL, {
        curation: {
          beta: { overrides: { search: { description: 'Search beta' }, beta_only: { title: 'Beta Only' } } },
        },
      }),
      src,
    );
    expect(view.tools.items.find((t) => t.name === 'beta__search')).toMatchObject({
      description: 'Search beta',
    });
    expect(view.tools.items.find((t) => t.name === 'alpha__search')).toMatchObject({
      description: "alpha's search",
    });
    expect(view.tools.items.find((t) => t.name === 'beta_only')).toMatchObject({
      title: 'Beta Only',
      description: "beta's beta_only",
    });
    // The catalogue's own copy is untouched.
    expect(src[1]?.entries.tools.find((t) => t.name === 'beta_only')).not.toHaveProperty('title');
    expect(src[1]?.entries.tools.find((t) => t.name === 'search')?.description).toBe("beta's search");
  });
});

describe('buildRouteView: resources and templates', () => {
  it('a URI two upstreams give wraps every URI and template of both; the others stay as they are', () => {
    const view = buildRouteView(route(ALL), sources(SPECS));
    expect([...view.wrapped].sort()).toEqual(['alpha', 'beta']);
    expect(view.resources.items.map((r) => r.uri)).toEqual([
      'gatehouse://alpha/file:///shared.txt',
      'gatehouse://alpha/alpha://doc/1',
      'gatehouse://beta/file:///shared.txt',
      'gatehouse://beta/beta://doc/1',
      'gamma://doc/1',
    ]);
    expect(view.resources.byUri.get('gatehouse://beta/file:///shared.txt')).toEqual({
      upstream: 'beta',
      original: 'file:///shared.txt',
    });
    expect(view.resources.byUri.get('gamma://doc/1')).toEqual({
      upstream: 'gamma',
      original: 'gamma://doc/1',
    });
    expect(view.templates.items.map((t) => t.uriTemplate)).toEqual([
      'gatehouse://alpha/alpha://item/{id}',
      'gatehouse://beta/beta://item/{id}',
      'gamma://item/{id}',
    ]);
    expect(view.templates.byTemplate.get('gatehouse://alpha/alpha://item/{id}')).toEqual({
      upstream: 'alpha',
      original: 'alpha://item/{id}',
    });
    expect(view.collisions).toContainEqual({
      kind: 'resource',
      collision: { name: 'file:///shared.txt', upstreams: ['alpha', 'beta'], lost: [] },
    });
  });

  it('a template two upstreams give is a collision too', () => {
    const view = buildRouteView(
      route(['a', 'b']),
      sources({ a: { templates: ['x://{id}'] }, b: { templates: ['x://{id}'], resources: ['b://r'] } }),
    );
    expect([...view.wrapped].sort()).toEqual(['a', 'b']);
    expect(view.templates.items.map((t) => t.uriTemplate)).toEqual([
      'gatehouse://a/x://{id}',
      'gatehouse://b/x://{id}',
    ]);
    expect(view.resources.items.map((r) => r.uri)).toEqual(['gatehouse://b/b://r']);
  });

  it('resources.prefix always wraps every upstream', () => {
    const view = buildRouteView(route(['gamma'], { resources: 'always' }), sources({ gamma: SPECS.gamma! }));
    expect(view.resources.items.map((r) => r.uri)).toEqual(['gatehouse://gamma/gamma://doc/1']);
    expect(view.templates.items.map((t) => t.uriTemplate)).toEqual(['gatehouse://gamma/gamma://item/{id}']);
    expect(exposeUri(view, 'gamma', 'gamma://doc/1')).toBe('gatehouse://gamma/gamma://doc/1');
  });

  it('no collision, no wrapping: the items are the upstreams’ own', () => {
    const src = sources({ gamma: SPECS.gamma! });
    const view = buildRouteView(route(['gamma']), src);
    expect(view.wrapped.size).toBe(0);
    expect(view.resources.items[0]).toBe(src[0]?.entries.resources[0]);
    expect(exposeUri(view, 'gamma', 'gamma://doc/1')).toBe('gamma://doc/1');
  });

  it('one upstream listing a URI twice is not a collision, and lists it once', () => {
    const view = buildRouteView(route(['a']), sources({ a: { resources: ['a://x', 'a://x'] } }));
    expect(view.wrapped.size).toBe(0);
    expect(view.resources.items.map((r) => r.uri)).toEqual(['a://x']);
  });
});

describe('resolveUri', () => {
  const view = buildRouteView(route(ALL), sources(SPECS));

  it('the gatehouse:// form names its upstream, listed or not, wrapped or not', () => {
    expect(resolveUri(view, 'gatehouse://alpha/file:///shared.txt')).toEqual({
      upstream: 'alpha',
      original: 'file:///shared.txt',
    });
    expect(resolveUri(view, 'gatehouse://gamma/gamma://doc/1')).toEqual({
      upstream: 'gamma',
      original: 'gamma://doc/1',
    });
    expect(resolveUri(view, 'gatehouse://gamma/anything/else')).toEqual({
      upstream: 'gamma',
      original: 'anything/else',
    });
    expect(resolveUri(view, 'gatehouse://alpha/alpha://item/42')).toEqual({
      upstream: 'alpha',
      original: 'alpha://item/42',
    });
  });

  it('a gatehouse:// URI naming an upstream not in the view is not resolved by its prefix', () => {
    expect(resolveUri(view, 'gatehouse://nobody/file:///shared.txt')).toBeUndefined();
  });

  it('a listed URI, then the one template that matches', () => {
    expect(resolveUri(view, 'gamma://doc/1')).toEqual({ upstream: 'gamma', original: 'gamma://doc/1' });
    expect(resolveUri(view, 'gamma://item/7')).toEqual({ upstream: 'gamma', original: 'gamma://item/7' });
    expect(resolveUri(view, 'nothing://here')).toBeUndefined();
    // A URI several upstreams give is not routed by its bare form (which one would it be?): ambiguous.
    expect(resolveUri(view, 'file:///shared.txt')).toBe('ambiguous');
  });

  it('templates of several upstreams matching the same URI: ambiguous; of one upstream: that one', () => {
    const v = buildRouteView(
      route(['a', 'b']),
      sources({ a: { templates: ['mem://{path}', 'mem://{x}/raw'] }, b: { templates: ['mem://{key}/raw'] } }),
    );
    expect(v.wrapped.size).toBe(0);
    expect(resolveUri(v, 'mem://k/raw')).toBe('ambiguous');
    expect(resolveUri(v, 'gatehouse://b/mem://k/raw')).toEqual({ upstream: 'b', original: 'mem://k/raw' });
    const single = buildRouteView(
      route(['a']),
      sources({ a: { templates: ['mem://{path}', 'mem://{x}/raw'] } }),
    );
    expect(resolveUri(single, 'mem://k/raw')).toEqual({ upstream: 'a', original: 'mem://k/raw' });
  });

  it('a template that does not parse is listed but routes nothing', () => {
    const v = buildRouteView(route(['a']), sources({ a: { templates: ['bad://{unclosed'] } }));
    expect(v.templates.items.map((t) => t.uriTemplate)).toEqual(['bad://{unclosed']);
    expect(resolveUri(v, 'bad://x')).toBeUndefined();
  });
});

describe('buildRouteView: bookkeeping', () => {
  it('fingerprints change only for the list that changed', () => {
    const before = buildRouteView(route(ALL), sources(SPECS));
    const same = buildRouteView(route(ALL), sources(SPECS));
    expect(same.fingerprints).toEqual(before.fingerprints);
    const more = { ...SPECS, gamma: { ...SPECS.gamma, tools: ['gamma_only', 'fresh'] } };
    const after = buildRouteView(route(ALL), sources(more));
    expect(after.fingerprints.tools).not.toBe(before.fingerprints.tools);
    expect(after.fingerprints.prompts).toBe(before.fingerprints.prompts);
    expect(after.fingerprints.resources).toBe(before.fingerprints.resources);
    const desc = buildRouteView(
      route(ALL, { curation: { gamma: { overrides: { gamma_only: { description: 'd' } } } } }),
      sources(SPECS),
    );
    expect(desc.fingerprints.tools).not.toBe(before.fingerprints.tools);
  });

  it('initialize results of the present upstreams, in route order; an empty route is an empty view', () => {
    const view = buildRouteView(
      route(['beta', 'alpha']),
      sources({ beta: SPECS.beta!, alpha: SPECS.alpha! }),
    );
    expect(view.initializeResults.map((r) => r.upstream)).toEqual(['beta', 'alpha']);
    expect(view.initializeResults[1]?.result.instructions).toBe('Use alpha for A.');
    const empty = buildRouteView(route(ALL), []);
    expect(empty.present).toEqual([]);
    expect(empty.tools.items).toEqual([]);
    expect(empty.resources.items).toEqual([]);
  });
});
