// How names of several upstreams become one namespace: `<upstream>__<name>` when the route says so
// (always, or only on a collision), never silently shadowing one upstream's name with another's.

import { createHash } from 'node:crypto';

export type PrefixMode = 'always' | 'on-conflict' | 'never';

export const SEPARATOR = '__';
/** MCP: tool names SHOULD be 1–128 characters. */
export const MAX_NAME = 128;

export interface NamedEntry {
  upstream: string;
  /** The name as the upstream knows it. */
  original: string;
}

export interface Exposed<T extends NamedEntry> {
  entry: T;
  /** The name clients see. */
  name: string;
}

export interface Collision {
  /** The exposed name several entries wanted. */
  name: string;
  /** Upstreams in route order. */
  upstreams: string[];
  /** Upstreams whose entry was left out for it (with `never`, or a prefixed name taken already). */
  lost: string[];
}

/** Names longer than 128 characters keep a readable head and a hash of the whole, deterministically. */
export function shorten(name: string): string {
  if (name.length <= MAX_NAME) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return `${name.slice(0, MAX_NAME - hash.length - 1)}_${hash}`;
}

export function prefixed(upstream: string, original: string): string {
  return shorten(`${upstream}${SEPARATOR}${original}`);
}

/**
 * Exposes entries (given in route order) under unique names. Pure: the same input gives the same
 * names. Collisions are returned for reporting; with `never` the later entries of a collision are
 * left out, with the others the colliding entries are all prefixed.
 */
export function exposeNames<T extends NamedEntry>(
  entries: readonly T[],
  mode: PrefixMode,
): { exposed: Exposed<T>[]; collisions: Collision[] } {
  const byName = new Map<string, T[]>();
  for (const e of entries) {
    const list = byName.get(e.original);
    if (list) list.push(e);
    else byName.set(e.original, [e]);
  }
  const collisions: Collision[] = [];
  for (const [name, list] of byName) {
    const ups = [...new Set(list.map((e) => e.upstream))];
    if (ups.length > 1) collisions.push({ name, upstreams: ups, lost: [] });
  }
  const colliding = new Set(collisions.map((c) => c.name));
  const exposed: Exposed<T>[] = [];
  const taken = new Map<string, T>();
  for (const e of entries) {
    const prefix = mode === 'always' || (mode === 'on-conflict' && colliding.has(e.original));
    const name = prefix ? prefixed(e.upstream, e.original) : shorten(e.original);
    const holder = taken.get(name);
    if (!holder) {
      taken.set(name, e);
      exposed.push({ entry: e, name });
      continue;
    }
    // An upstream that lists the very same name twice: keep the first, silently (nothing is lost).
    if (holder.upstream === e.upstream && holder.original === e.original) continue;
    // The name is taken (`never`, or a prefixed name equal to an existing one): the first entry in route
    // order keeps it, and the loss is reported.
    let c = collisions.find((x) => x.name === name);
    if (!c) {
      c = { name, upstreams: [holder.upstream], lost: [] };
      collisions.push(c);
    }
    if (!c.upstreams.includes(e.upstream)) c.upstreams.push(e.upstream);
    c.lost.push(e.upstream);
  }
  return { exposed, collisions };
}

/**
 * Resource URIs stay as the upstream gives them unless two upstreams of a route give the same one (or a
 * route asks for prefixing): then they are wrapped as `gatehouse://<upstream>/<original uri>`, which is
 * still a URI — and still an RFC 6570 template when the original was one.
 */
const WRAP = 'gatehouse://';

export function wrapUri(upstream: string, original: string): string {
  return `${WRAP}${upstream}/${original}`;
}

export function unwrapUri(uri: string): { upstream: string; original: string } | undefined {
  if (!uri.startsWith(WRAP)) return undefined;
  const slash = uri.indexOf('/', WRAP.length);
  if (slash <= WRAP.length) return undefined;
  return { upstream: uri.slice(WRAP.length, slash), original: uri.slice(slash + 1) };
}
