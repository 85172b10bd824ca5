// The session registry of one instance: issues ids, enforces caps and idle timeouts, and finds a
// session for a request (404 when unknown, ended, expired, or bound to another principal).

import { randomBytes } from 'node:crypto';
import { Errors } from '../mcp/errors.ts';
import { SessionBoundIds } from '../mcp/server-request-id.ts';
import type { SessionRecord, SessionStore } from '../state/session-store.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Upstream } from '../upstream/types.ts';
import type { Principal } from './context.ts';
import { GatewaySession } from './session.ts';

export interface SessionLimits {
  idleTimeoutMs: number;
  maxSessions: number;
  maxPerPrincipal: number;
}

/** Who a session belongs to: an API key and an OAuth user of the same name are different callers. */
export function principalKey(p: Principal | undefined): string {
  return p ? JSON.stringify([p.source ?? '', p.tenant ?? '', p.subject]) : '';
}

export class SessionRegistry {
  readonly #store: SessionStore;
  readonly #limits: SessionLimits;
  readonly #logger: Logger;
  readonly #live = new Map<string, GatewaySession>();
  readonly #perPrincipal = new Map<string, number>();
  readonly #sweeper: NodeJS.Timeout;

  readonly #ids: SessionBoundIds;

  constructor(
    store: SessionStore,
    limits: SessionLimits,
    logger: Logger,
    ids: SessionBoundIds = new SessionBoundIds(),
  ) {
    this.#ids = ids;
    this.#store = store;
    this.#limits = limits;
    this.#logger = logger;
    this.#sweeper = setInterval(
      () => void this.sweep(Date.now()),
      Math.max(1000, Math.min(limits.idleTimeoutMs / 4, 60_000)),
    );
    this.#sweeper.unref();
  }

  get size(): number {
    return this.#live.size;
  }

  async create(
    init: Omit<SessionRecord, 'id' | 'createdAt' | 'lastSeenAt' | 'principalKey'>,
    principal: Principal | undefined,
    upstreams: ReadonlyMap<string, Upstream>,
    now: number,
  ): Promise<GatewaySession> {
    if (this.#live.size >= this.#limits.maxSessions) {
      throw Errors.overloaded(
        `session limit reached (${this.#limits.maxSessions} per instance); close idle sessions or retry later`,
      );
    }
    const pk = principalKey(principal);
    const count = this.#perPrincipal.get(pk) ?? 0;
    if (pk !== '' && count >= this.#limits.maxPerPrincipal) {
      throw Errors.overloaded(
        `session limit reached for this caller (${this.#limits.maxPerPrincipal}); close some sessions first`,
      );
    }
    const record: SessionRecord = {
      ...init,
      id: randomBytes(24).toString('base64url'),
      principalKey: pk,
      createdAt: now,
      lastSeenAt: now,
    };
    await this.#store.put(record);
    const session = new GatewaySession(record, principal, upstreams, this.#ids);
    session.onDrop = (m) =>
      this.#logger.warn(
        { sessionId: record.id, method: 'method' in m ? m.method : 'response' },
        'dropped a server message: the client has kept no GET stream open and too many messages are waiting',
      );
    this.#live.set(record.id, session);
    this.#perPrincipal.set(pk, count + 1);
    return session;
  }

  /** The live session for a request, or a 404 error indistinguishable from "never existed". */
  async get(
    id: string,
    route: string,
    principal: Principal | undefined,
    now: number,
  ): Promise<GatewaySession> {
    // Only this instance's live sessions can be served until sessions resume across instances.
    const session = this.#live.get(id);
    const record = session?.record;
    if (!session || !record || record.route !== route || record.principalKey !== principalKey(principal)) {
      throw Errors.sessionNotFound(
        'Session not found: it ended, expired, or never existed; initialize a new session',
      );
    }
    if (now - record.lastSeenAt > this.#limits.idleTimeoutMs && !session.hasStream && !session.busy) {
      await this.delete(id, 'idle timeout');
      throw Errors.sessionNotFound(
        'Session not found: it expired after being idle; initialize a new session',
      );
    }
    record.lastSeenAt = now;
    session.seenCaller(principal);
    return session;
  }

  async delete(id: string, reason: string): Promise<boolean> {
    const session = this.#live.get(id);
    if (!session) return false;
    this.#live.delete(id);
    const pk = session.record.principalKey;
    const n = (this.#perPrincipal.get(pk) ?? 1) - 1;
    if (n <= 0) this.#perPrincipal.delete(pk);
    else this.#perPrincipal.set(pk, n);
    await this.#store.delete(id);
    await session.close();
    this.#logger.debug({ sessionId: id, reason }, 'session ended');
    return true;
  }

  async sweep(now: number): Promise<void> {
    for (const s of this.#live.values()) s.expireReplays(now);
    const expired = [...this.#live.values()].filter(
      (s) => !s.hasStream && !s.busy && now - s.record.lastSeenAt > this.#limits.idleTimeoutMs,
    );
    await Promise.allSettled(expired.map((s) => this.delete(s.id, 'idle timeout')));
  }

  /** Ends every client GET stream (shutdown), keeping the sessions themselves. */
  endStreams(): void {
    for (const s of this.#live.values()) s.endStream();
  }

  /** The live sessions of a route that see a profile's view (to tell them their lists changed). */
  *of(route: string, profile: string): Iterable<GatewaySession> {
    for (const s of this.#live.values())
      if (s.record.route === route && s.record.profile === profile) yield s;
  }

  /** Live sessions of this instance per route path (the admin API). */
  countByRoute(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const s of this.#live.values()) counts.set(s.record.route, (counts.get(s.record.route) ?? 0) + 1);
    return counts;
  }

  async closeAll(): Promise<void> {
    clearInterval(this.#sweeper);
    await Promise.allSettled([...this.#live.keys()].map((id) => this.delete(id, 'shutdown')));
  }
}
