// Resource URIs as metric labels: a URI the route lists is its own label; a URI one of the route's
// resource templates matches is labelled with that template (its upstream's own form); anything else is
// not matched (the metrics then cut it to a prefix). Looked up per route view, compiled once per view.

import type { RouteView } from '../catalog/view.ts';

interface UpstreamIndex {
  uris: Set<string>;
  templates: { text: string; re: RegExp }[];
}

interface ViewIndex {
  byUpstream: Map<string, UpstreamIndex>;
  /** Answers already found for this view (bounded: cleared when full). */
  memo: Map<string, string | null>;
}

const MEMO_SIZE = 4096;
/** URIs longer than this are never matched against templates (nothing sane is that long). */
const MAX_URI = 4096;

/**
 * A labeller over the routes' current views: `(route, upstream, uri)` → the listed URI or the matching
 * template of that upstream, else undefined. `view(route)` returns the route's current view.
 */
export function resourceTemplateLabeller(
  view: (route: string) => RouteView | undefined,
): (route: string, upstream: string | undefined, uri: string) => string | undefined {
  const indexes = new WeakMap<RouteView, ViewIndex>();
  return (route, upstream, uri) => {
    if (upstream === undefined) return undefined;
    const v = view(route);
    if (!v) return undefined;
    let index = indexes.get(v);
    if (!index) {
      index = buildIndex(v);
      indexes.set(v, index);
    }
    const up = index.byUpstream.get(upstream);
    if (!up) return undefined;
    if (up.uris.has(uri)) return uri;
    if (up.templates.length === 0 || uri.length > MAX_URI) return undefined;
    const key = `${upstream}\u0000${uri}`;
    const memo = index.memo.get(key);
    if (memo !== undefined) return memo ?? undefined;
    let found: string | null = null;
    for (const t of up.templates) {
      if (t.re.test(uri)) {
        found = t.text;
        break;
      }
    }
    if (index.memo.size >= MEMO_SIZE) index.memo.clear();
    index.memo.set(key, found);
    return found ?? undefined;
  };
}

function buildIndex(v: RouteView): ViewIndex {
  const byUpstream = new Map<string, UpstreamIndex>();
  const of = (upstream: string) => {
    let u = byUpstream.get(upstream);
    if (!u) {
      u = { uris: new Set(), templates: [] };
      byUpstream.set(upstream, u);
    }
    return u;
  };
  for (const owner of v.resources.byUri.values()) of(owner.upstream).uris.add(owner.original);
  for (const m of v.templates.matchers) {
    const re = templateRegExp(m.original);
    if (re) of(m.upstream).templates.push({ text: m.original, re });
  }
  return { byUpstream, memo: new Map() };
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * An RFC 6570 template as a regular expression, as the MCP SDK matches it (simple, reserved `+`/`#`,
 * label `.`, path `/` and query `?`/`&` expressions); undefined when the template does not parse.
 */
export function templateRegExp(template: string): RegExp | undefined {
  if (template.length > 1_000) return undefined;
  let pattern = '^';
  let rest = template;
  while (rest.length > 0) {
    const open = rest.indexOf('{');
    if (open < 0) {
      pattern += escapeRegExp(rest);
      break;
    }
    const close = rest.indexOf('}', open);
    if (close < 0) return undefined;
    pattern += escapeRegExp(rest.slice(0, open));
    let expr = rest.slice(open + 1, close);
    rest = rest.slice(close + 1);
    const op = '+#./;?&'.includes(expr[0] ?? '') ? expr[0]! : '';
    if (op) expr = expr.slice(1);
    const names = expr.split(',').map((n) => n.trim());
    if (names.length === 0 || names.some((n) => n === '')) return undefined;
    const exploded = names[0]!.endsWith('*');
    const list = exploded ? '([^/,]+(?:,[^/,]+)*)' : '([^/,]+)';
    switch (op) {
      case '?':
      case '&':
        names.forEach((n, i) => {
          pattern += `${i === 0 ? `\\${op}` : '&'}${escapeRegExp(n.replace('*', ''))}=([^&]+)`;
        });
        break;
      case '+':
      case '#':
        pattern += '(.+)';
        break;
      case '.':
        pattern += '\\.([^/,]+)';
        break;
      case '/':
        pattern += `/${list}`;
        break;
      case '':
        pattern += list;
        break;
      default:
        pattern += '([^/]+)';
    }
  }
  try {
    return new RegExp(`${pattern}$`);
  } catch {
    return undefined;
  }
}
