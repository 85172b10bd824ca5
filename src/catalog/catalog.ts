// The catalogue: gateway state holding every upstream's lists (per client-capability profile) and each
// route's merged view of them. Lists are answered from here, never by fanning out per request.

import type { Logger } from '../telemetry/logger.ts';
import type { Upstream } from '../upstream/types.ts';
import { type Profile, UpstreamCatalog } from './upstream-catalog.ts';
import { buildRouteView, type CatalogEntries, type RouteCatalogConfig, type RouteView } from './view.ts';

export type ListKind = 'tools' | 'prompts' | 'resources';

export interface CatalogOptions {
  upstreams: ReadonlyMap<string, Upstream>;
  routes: readonly RouteCatalogConfig[];
  /** Periodic refresh / health probe interval (0 = none). */
  intervalMs: number;
  /** How long a down upstream's entries stay listed before they disappear. */
  graceMs: number;
  logger: Logger;
  gatewayInfo: { name: string; version: string };
}

/** Capabilities upstreams commonly offer tools by; a profile is the set of them a client declared. */
const PROFILE_CAPABILITIES = ['elicitation', 'roots', 'sampling', 'tasks'] as const;

/** The key of one upstream's catalogue for one profile. */
const catalogKey = (profile: string, upstream: string): string => `${profile}\u0000${upstream}`;

type ChangeListener = (route: string, profile: string, kinds: ListKind[]) => void;

export class Catalog {
  readonly #opts: CatalogOptions;
  readonly #routes: ReadonlyMap<string, RouteCatalogConfig>;
  readonly #profiles = new Map<string, Profile>();
  readonly #catalogs = new Map<string, UpstreamCatalog>();
  readonly #views = new Map<string, RouteView>();
  readonly #graceTimers = new Map<string, NodeJS.Timeout>();
  readonly #listeners: ChangeListener[] = [];
  readonly #warned = new Set<string>();
  #stopped = false;

  constructor(opts: CatalogOptions) {
    this.#opts = opts;
    this.#routes = new Map(opts.routes.map((r) => [r.path, r]));
  }

  /** Lists every route's upstreams for clients that declare no capabilities (the health probe too). */
  start(): void {
    const profile = this.profileFor({});
    for (const route of this.#routes.values()) for (const u of route.upstreams) this.#catalog(profile, u);
  }

  /** The profile of a client's capabilities (created on first use; at most 2^4 exist). */
  profileFor(clientCapabilities: Record<string, unknown>): Profile {
    const present = PROFILE_CAPABILITIES.filter((c) => clientCapabilities[c] !== undefined);
    const key = present.join(',');
    let profile = this.#profiles.get(key);
    if (!profile) {
      const capabilities: Record<string, unknown> = {};
      for (const c of present) capabilities[c] = clientCapabilities[c];
      profile = { key, capabilities };
      this.#profiles.set(key, profile);
    }
    return profile;
  }

  onChange(listener: ChangeListener): void {
    this.#listeners.push(listener);
  }

  /**
   * The route's view for a profile, waiting (at most `waitMs`) for upstreams not listed yet — so that a
   * client's first tools/list after initialize is complete when the upstreams answer in time.
   */
  async ready(route: string, profile: Profile, waitMs: number): Promise<RouteView> {
    const config = this.#route(route);
    const first = config.upstreams.map((u) => this.#catalog(profile, u).firstRefresh);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(first), new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
    return this.view(route, profile.key);
  }

  view(route: string, profileKey: string): RouteView {
    const key = `${profileKey}\u0000${route}`;
    let view = this.#views.get(key);
    if (!view) {
      view = this.#build(this.#route(route), profileKey);
      this.#views.set(key, view);
    }
    return view;
  }

  /** Why each of a route's upstreams is missing from its view (for initialize errors and reports). */
  problems(route: string, profileKey: string): { upstream: string; error: string }[] {
    const view = this.view(route, profileKey);
    return this.#route(route)
      .upstreams.filter((u) => !view.present.includes(u))
      .map((u) => {
        const c = this.#catalogs.get(catalogKey(profileKey, u));
        return { upstream: u, error: c?.lastError ?? 'not listed yet' };
      });
  }

  /** An upstream misbehaved or said its lists changed: check it again now. */
  refresh(upstream: string, profileKey: string): void {
    this.#catalogs.get(catalogKey(profileKey, upstream))?.listChanged();
  }

  /** Refreshes every profile's catalogue of an upstream now (tests, admin). */
  async refreshAll(): Promise<void> {
    await Promise.all([...this.#catalogs.values()].map((c) => c.refresh()));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#graceTimers.values()) clearTimeout(t);
    await Promise.allSettled([...this.#catalogs.values()].map((c) => c.stop()));
  }

  #route(path: string): RouteCatalogConfig {
    const r = this.#routes.get(path);
    if (!r) throw new RangeError(`no route ${path}`);
    return r;
  }

  #catalog(profile: Profile, upstream: string): UpstreamCatalog {
    const key = catalogKey(profile.key, upstream);
    let c = this.#catalogs.get(key);
    if (!c) {
      const up = this.#opts.upstreams.get(upstream);
      if (!up) throw new RangeError(`no upstream ${upstream}`);
      c = new UpstreamCatalog(up, profile, {
        intervalMs: this.#opts.intervalMs,
        logger: this.#opts.logger,
        gatewayInfo: this.#opts.gatewayInfo,
        onChange: () => this.#changed(profile.key, upstream),
      });
      this.#catalogs.set(key, c);
    }
    return c;
  }

  /** The entries a route shows for an upstream: its lists, unless it has been down past the grace period. */
  #sources(
    route: RouteCatalogConfig,
    profileKey: string,
    now: number,
  ): { upstream: string; entries: CatalogEntries }[] {
    const out: { upstream: string; entries: CatalogEntries }[] = [];
    for (const u of route.upstreams) {
      const c = this.#catalogs.get(catalogKey(profileKey, u));
      if (!c?.entries) continue;
      if (c.status === 'down' && c.downSince !== undefined && now - c.downSince >= this.#opts.graceMs)
        continue;
      out.push({ upstream: u, entries: c.entries });
    }
    return out;
  }

  #build(route: RouteCatalogConfig, profileKey: string): RouteView {
    const view = buildRouteView(route, this.#sources(route, profileKey, Date.now()));
    // Collisions that hide an entry (or wrap URIs) are worth a warning, once per route and name.
    for (const { kind, collision } of view.collisions) {
      const mode = kind === 'tool' ? route.tools.prefix : kind === 'prompt' ? route.prompts.prefix : 'wrap';
      if (mode === 'on-conflict' || mode === 'always') {
        if (collision.lost.length === 0) continue;
      }
      const key = `${route.path}\u0000${kind}\u0000${collision.name}\u0000${collision.upstreams.join(',')}`;
      if (this.#warned.has(key)) continue;
      this.#warned.add(key);
      this.#opts.logger.warn(
        {
          route: route.path,
          kind,
          name: collision.name,
          upstreams: collision.upstreams,
          hidden: collision.lost,
        },
        kind === 'resource'
          ? 'several upstreams give the same resource URI: they are exposed as gatehouse://<upstream>/<uri>'
          : `several upstreams want the ${kind} name ${JSON.stringify(collision.name)}; only the first one's is exposed (${collision.lost.join(', ')} hidden)`,
      );
    }
    return view;
  }

  #changed(profileKey: string, upstream: string): void {
    if (this.#stopped) return;
    const c = this.#catalogs.get(catalogKey(profileKey, upstream));
    // A down upstream's entries go when its grace period ends: rebuild then too.
    const timerKey = catalogKey(profileKey, upstream);
    clearTimeout(this.#graceTimers.get(timerKey));
    const graceEnds =
      c?.status === 'down' && c.downSince !== undefined ? c.downSince + this.#opts.graceMs : 0;
    if (graceEnds > Date.now()) {
      const t = setTimeout(() => this.#changed(profileKey, upstream), graceEnds - Date.now() + 1);
      t.unref();
      this.#graceTimers.set(timerKey, t);
    }
    for (const route of this.#routes.values()) {
      if (!route.upstreams.includes(upstream)) continue;
      const key = `${profileKey}\u0000${route.path}`;
      const before = this.#views.get(key);
      if (!before) continue; // nobody has looked at this view yet
      const after = this.#build(route, profileKey);
      this.#views.set(key, after);
      const kinds = (['tools', 'prompts', 'resources'] as const).filter(
        (k) => before.fingerprints[k] !== after.fingerprints[k],
      );
      if (kinds.length > 0) for (const l of this.#listeners) l(route.path, profileKey, kinds);
    }
  }
}
