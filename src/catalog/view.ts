// A route's view of its upstreams' catalogues: the merged lists clients see, and the maps that send
// each name or URI back to its owner. Pure: built from values, rebuilt when a catalogue changes.

import { createHash } from 'node:crypto';
import { UriTemplate } from '@modelcontextprotocol/sdk/shared/uriTemplate.js';
import type { NameFilter } from './filter.ts';
import { type Collision, exposeNames, type PrefixMode, unwrapUri, wrapUri } from './naming.ts';

export type Item = Record<string, unknown>;

/** What one upstream offers (with the capabilities it declared), as last listed. */
export interface CatalogEntries {
  initializeResult: Item;
  tools: Item[];
  prompts: Item[];
  resources: Item[];
  templates: Item[];
}

export interface Owner {
  upstream: string;
  original: string;
}

export interface UpstreamCuration {
  tools: NameFilter;
  prompts: NameFilter;
  /** Per-tool overrides of what clients see (description, title), by the upstream's own name. */
  overrides: ReadonlyMap<string, { description?: string | undefined; title?: string | undefined }>;
}

export interface RouteCatalogConfig {
  path: string;
  upstreams: readonly string[];
  tools: { prefix: PrefixMode; filter: NameFilter };
  prompts: { prefix: PrefixMode; filter: NameFilter };
  resources: { prefix: 'on-conflict' | 'always' };
  curation: ReadonlyMap<string, UpstreamCuration>;
}

export interface NamedList {
  items: Item[];
  byName: Map<string, Owner>;
}

export interface TemplateMatcher {
  upstream: string;
  exposed: string;
  original: string;
  template: UriTemplate;
}

export interface RouteView {
  tools: NamedList;
  prompts: NamedList;
  resources: { items: Item[]; byUri: Map<string, Owner> };
  templates: { items: Item[]; byTemplate: Map<string, Owner>; matchers: TemplateMatcher[] };
  /** Upstreams whose URIs are wrapped (collision, or `always`): their URIs travel as gatehouse://… */
  wrapped: ReadonlySet<string>;
  /** URIs and templates several upstreams give: only their gatehouse://<upstream>/… forms route. */
  shared: ReadonlySet<string>;
  /** The upstreams in the view, in route order (those whose entries are listed). */
  present: string[];
  collisions: { kind: 'tool' | 'prompt' | 'resource'; collision: Collision }[];
  /** One fingerprint per list, to tell clients exactly which lists changed. */
  fingerprints: { tools: string; prompts: string; resources: string };
  /** The initialize answers of the present upstreams, in route order. */
  initializeResults: { upstream: string; result: Item }[];
  /** Pages of the lists, serialised once per view (a view is replaced, never changed, when lists change). */
  pages: Map<string, { result: Record<string, unknown>; json: Buffer }>;
}

function fingerprint(v: unknown): string {
  return createHash('sha256').update(JSON.stringify(v)).digest('base64url');
}

function named(
  route: RouteCatalogConfig,
  sources: readonly { upstream: string; entries: CatalogEntries }[],
  kind: 'tools' | 'prompts',
): { list: NamedList; collisions: Collision[] } {
  const candidates: { upstream: string; original: string; item: Item }[] = [];
  for (const { upstream, entries } of sources) {
    const curation = route.curation.get(upstream);
    const own = kind === 'tools' ? curation?.tools : curation?.prompts;
    for (const item of entries[kind]) {
      const original = item.name;
      if (typeof original !== 'string' || original === '') continue;
      if (own && !own(original)) continue;
      if (!route[kind].filter(`${upstream}:${original}`)) continue;
      candidates.push({ upstream, original, item });
    }
  }
  const { exposed, collisions } = exposeNames(candidates, route[kind].prefix);
  const items: Item[] = [];
  const byName = new Map<string, Owner>();
  for (const { entry, name } of exposed) {
    let item = name === entry.original ? entry.item : { ...entry.item, name };
    const o =
      kind === 'tools' ? route.curation.get(entry.upstream)?.overrides.get(entry.original) : undefined;
    if (o) {
      item = { ...item };
      if (o.description !== undefined) item.description = o.description;
      if (o.title !== undefined) item.title = o.title;
    }
    items.push(item);
    byName.set(name, { upstream: entry.upstream, original: entry.original });
  }
  return { list: { items, byName }, collisions };
}

export function buildRouteView(
  route: RouteCatalogConfig,
  sources: readonly { upstream: string; entries: CatalogEntries }[],
): RouteView {
  const tools = named(route, sources, 'tools');
  const prompts = named(route, sources, 'prompts');

  // Resources and templates: wrapped for every upstream whose URI (or template) another upstream has too.
  const seen = new Map<string, string>();
  const wrapped = new Set<string>();
  const resourceCollisions: Collision[] = [];
  for (const { upstream, entries } of sources) {
    const keys = [
      ...entries.resources.map((r) => r.uri),
      ...entries.templates.map((t) => t.uriTemplate),
    ].filter((k): k is string => typeof k === 'string');
    for (const key of new Set(keys)) {
      const other = seen.get(key);
      if (other !== undefined && other !== upstream) {
        wrapped.add(upstream).add(other);
        resourceCollisions.push({ name: key, upstreams: [other, upstream], lost: [] });
      } else seen.set(key, upstream);
    }
  }
  if (route.resources.prefix === 'always') for (const { upstream } of sources) wrapped.add(upstream);

  const resources = { items: [] as Item[], byUri: new Map<string, Owner>() };
  const templates = {
    items: [] as Item[],
    byTemplate: new Map<string, Owner>(),
    matchers: [] as TemplateMatcher[],
  };
  for (const { upstream, entries } of sources) {
    const wrap = wrapped.has(upstream);
    for (const r of entries.resources) {
      if (typeof r.uri !== 'string') continue;
      const uri = wrap ? wrapUri(upstream, r.uri) : r.uri;
      if (resources.byUri.has(uri)) continue;
      resources.items.push(wrap ? { ...r, uri } : r);
      resources.byUri.set(uri, { upstream, original: r.uri });
    }
    for (const t of entries.templates) {
      if (typeof t.uriTemplate !== 'string') continue;
      const exposed = wrap ? wrapUri(upstream, t.uriTemplate) : t.uriTemplate;
      if (templates.byTemplate.has(exposed)) continue;
      templates.items.push(wrap ? { ...t, uriTemplate: exposed } : t);
      templates.byTemplate.set(exposed, { upstream, original: t.uriTemplate });
      try {
        templates.matchers.push({
          upstream,
          exposed,
          original: t.uriTemplate,
          template: new UriTemplate(exposed),
        });
      } catch {
        // a template that does not parse can still be listed; it just routes nothing
      }
    }
  }

  return {
    tools: tools.list,
    prompts: prompts.list,
    resources,
    templates,
    wrapped,
    shared: new Set(resourceCollisions.map((c) => c.name)),
    present: sources.map((s) => s.upstream),
    collisions: [
      ...tools.collisions.map((collision) => ({ kind: 'tool' as const, collision })),
      ...prompts.collisions.map((collision) => ({ kind: 'prompt' as const, collision })),
      ...resourceCollisions.map((collision) => ({ kind: 'resource' as const, collision })),
    ],
    fingerprints: {
      tools: fingerprint(tools.list.items),
      prompts: fingerprint(prompts.list.items),
      resources: fingerprint([resources.items, templates.items]),
    },
    initializeResults: sources.map((s) => ({ upstream: s.upstream, result: s.entries.initializeResult })),
    pages: new Map(),
  };
}

/**
 * The owner of a resource URI: the gatehouse:// form names it; a listed URI is looked up; otherwise the
 * one upstream whose template matches. Several matching templates → ambiguous (the caller decides).
 */
const MAX_TEMPLATE_URI = 64 * 1024;

export function resolveUri(view: RouteView, uri: string): Owner | 'ambiguous' | undefined {
  const unwrapped = unwrapUri(uri);
  if (unwrapped && view.present.includes(unwrapped.upstream)) return unwrapped;
  const listed = view.resources.byUri.get(uri);
  if (listed) return listed;
  if (view.shared.has(uri)) return 'ambiguous';
  // Template matching is bounded: the SDK refuses (throws on) very long URIs, and nothing sane is that long.
  if (uri.length > MAX_TEMPLATE_URI) return undefined;
  let found: Owner | undefined;
  for (const m of view.templates.matchers) {
    let matched: unknown;
    try {
      matched = m.template.match(uri);
    } catch {
      matched = null;
    }
    if (matched === null) continue;
    if (found && found.upstream !== m.upstream) return 'ambiguous';
    found = { upstream: m.upstream, original: uri };
  }
  return found;
}

/** The URI a client sees for an upstream's own URI (in notifications such as resources/updated). */
export function exposeUri(view: RouteView, upstream: string, original: string): string {
  return view.wrapped.has(upstream) ? wrapUri(upstream, original) : original;
}
