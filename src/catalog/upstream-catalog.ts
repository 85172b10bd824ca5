// One upstream's catalogue as the gateway knows it (for one client-capability profile): listed through
// a session of the gateway's own, refreshed on list_changed, on a timer and after failures. Its refresh
// is the MCP-aware health probe (initialize, then the lists), and it keeps the last good lists through
// an outage so that a grace period can decide when they disappear.

import { Errors } from '../mcp/errors.ts';
import { isRequest, type JsonRpcMessage } from '../mcp/jsonrpc.ts';
import { LATEST_VERSION } from '../mcp/versions.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Upstream, UpstreamSession } from '../upstream/types.ts';
import type { CatalogEntries, Item } from './view.ts';

/** The client capabilities a catalogue is listed with: upstreams may offer tools only to some clients. */
export interface Profile {
  key: string;
  capabilities: Record<string, unknown>;
}

export interface UpstreamCatalogOptions {
  /** Periodic refresh (and probe); 0 = only on list_changed and failures. */
  intervalMs: number;
  logger: Logger;
  gatewayInfo: { name: string; version: string };
  /** Called when the lists or the up/down state changed. */
  onChange(): void;
}

/** Bounds on what one upstream may list: a broken cursor loop or a flood cannot grow memory forever. */
const MAX_PAGES = 1000;
const MAX_ITEMS = 100_000;
const DOWN_RETRY_MIN_MS = 500;
const DOWN_RETRY_MAX_MS = 30_000;

export class UpstreamCatalog {
  readonly upstream: Upstream;
  readonly profile: Profile;
  entries: CatalogEntries | undefined;
  status: 'unknown' | 'up' | 'down' = 'unknown';
  downSince: number | undefined;
  lastError: string | undefined;
  /** Settles after the first refresh attempt, whatever its outcome. */
  readonly firstRefresh: Promise<void>;
  readonly #opts: UpstreamCatalogOptions;
  #session: UpstreamSession | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #failures = 0;
  #stopped = false;
  #nextId = 1;

  constructor(upstream: Upstream, profile: Profile, opts: UpstreamCatalogOptions) {
    this.upstream = upstream;
    this.profile = profile;
    this.#opts = opts;
    this.firstRefresh = this.refresh();
  }

  /** Refreshes now; concurrent calls coalesce into one more run after the current one. */
  refresh(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    clearTimeout(this.#timer);
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#refreshOnce();
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#running = undefined;
      this.#schedule();
    });
    return this.#running;
  }

  /** A list_changed (from any session with this upstream): refresh soon, once for a burst. */
  listChanged(): void {
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.refresh(), 50);
    this.#debounce.unref();
  }

  #schedule(): void {
    if (this.#stopped) return;
    const interval = this.#opts.intervalMs;
    let wait: number;
    if (this.status === 'down') {
      wait = Math.min(
        DOWN_RETRY_MIN_MS * 2 ** Math.min(this.#failures - 1, 10),
        interval > 0 ? interval : DOWN_RETRY_MAX_MS,
        DOWN_RETRY_MAX_MS,
      );
    } else if (interval > 0) wait = interval;
    else return;
    this.#timer = setTimeout(() => void this.refresh(), wait);
    this.#timer.unref();
  }

  async #refreshOnce(): Promise<void> {
    try {
      const session = await this.#openSession();
      const caps = (session.initializeResult.capabilities ?? {}) as Record<string, unknown>;
      const [tools, prompts, resources, templates] = await Promise.all([
        caps.tools ? this.#listAll(session, 'tools/list', 'tools') : [],
        caps.prompts ? this.#listAll(session, 'prompts/list', 'prompts') : [],
        caps.resources ? this.#listAll(session, 'resources/list', 'resources') : [],
        caps.resources ? this.#listAll(session, 'resources/templates/list', 'resourceTemplates', true) : [],
      ]);
      const next: CatalogEntries = {
        initializeResult: session.initializeResult,
        tools,
        prompts,
        resources,
        templates,
      };
      const changed = this.status !== 'up' || JSON.stringify(next) !== JSON.stringify(this.entries);
      this.entries = next;
      this.status = 'up';
      this.downSince = undefined;
      this.lastError = undefined;
      this.#failures = 0;
      this.upstream.markUp();
      if (changed) this.#opts.onChange();
    } catch (err) {
      this.#failures++;
      this.lastError = err instanceof Error ? err.message : String(err);
      this.upstream.markDown(err);
      const s = this.#session;
      this.#session = undefined;
      void s?.close();
      if (this.status !== 'down') {
        this.status = 'down';
        this.downSince = Date.now();
        this.#opts.onChange();
      }
    }
  }

  async #openSession(): Promise<UpstreamSession> {
    if (this.#session && !this.#session.closed) return this.#session;
    const session = await this.upstream.connect(
      {
        protocolVersion: LATEST_VERSION,
        capabilities: this.profile.capabilities,
        clientInfo: {
          name: `${this.#opts.gatewayInfo.name}-catalog`,
          version: this.#opts.gatewayInfo.version,
        },
      },
      { internal: true },
    );
    session.onServerMessage((m) => this.#onServerMessage(session, m));
    if (this.#stopped) {
      await session.close();
      throw Errors.shuttingDown('catalogue stopped');
    }
    this.#session = session;
    return session;
  }

  /** Follows a list's cursors to the end (bounded). */
  async #listAll(session: UpstreamSession, method: string, field: string, optional = false): Promise<Item[]> {
    const out: Item[] = [];
    let cursor: unknown;
    for (let page = 0; page < MAX_PAGES; page++) {
      const params: Record<string, unknown> = cursor === undefined ? {} : { cursor };
      // Not counted against max_concurrency: a busy upstream is not a down one.
      const res = await session.request(
        { jsonrpc: '2.0', id: this.#nextId++, method, params },
        { internal: true },
      );
      if ('error' in res) {
        if (optional && res.error.code === -32601) return out;
        throw Errors.upstreamProtocol(
          `upstream "${this.upstream.name}" failed ${method}: ${res.error.message} (${res.error.code})`,
        );
      }
      const items = res.result[field];
      if (!Array.isArray(items))
        throw Errors.upstreamProtocol(
          `upstream "${this.upstream.name}" answered ${method} without a "${field}" list`,
        );
      for (const item of items) {
        if (typeof item === 'object' && item !== null && !Array.isArray(item)) out.push(item as Item);
      }
      if (out.length > MAX_ITEMS)
        throw Errors.upstreamProtocol(
          `upstream "${this.upstream.name}" lists more than ${MAX_ITEMS} items in ${method}`,
        );
      const next = res.result.nextCursor;
      if (typeof next !== 'string' || next === '' || next === cursor) return out;
      cursor = next;
    }
    throw Errors.upstreamProtocol(
      `upstream "${this.upstream.name}" paginates ${method} beyond ${MAX_PAGES} pages`,
    );
  }

  #onServerMessage(session: UpstreamSession, m: JsonRpcMessage): void {
    if (isRequest(m)) {
      // The catalogue's own session has no user behind it: roots are empty, everything else is refused.
      const answer =
        m.method === 'ping'
          ? { jsonrpc: '2.0' as const, id: m.id, result: {} }
          : m.method === 'roots/list'
            ? { jsonrpc: '2.0' as const, id: m.id, result: { roots: [] } }
            : {
                jsonrpc: '2.0' as const,
                id: m.id,
                error: {
                  code: -32601,
                  message: `the gateway's catalogue session does not answer ${m.method}`,
                },
              };
      void session.respond(answer).catch(() => {});
      return;
    }
    if ('method' in m && m.method.endsWith('/list_changed')) this.listChanged();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#debounce);
    await this.#session?.close();
  }
}
