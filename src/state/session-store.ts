// Where session records live. Memory by default; a shared store (Redis) lets any instance serve any
// session. Records hold only what can be serialised; live connections stay with the instance.

export interface SessionRecord {
  id: string;
  route: string;
  protocolVersion: string;
  /** The catalogue profile (which client capabilities upstreams see), from the client's capabilities. */
  profile: string;
  clientCapabilities: Record<string, unknown>;
  clientInfo: Record<string, unknown>;
  /** Stable key of the principal the session is bound to ('' when the route has no identity). */
  principalKey: string;
  createdAt: number;
  lastSeenAt: number;
}

export interface SessionStore {
  get(id: string): Promise<SessionRecord | undefined>;
  put(record: SessionRecord): Promise<void>;
  delete(id: string): Promise<void>;
}

export class MemorySessionStore implements SessionStore {
  readonly #records = new Map<string, SessionRecord>();

  get(id: string): Promise<SessionRecord | undefined> {
    return Promise.resolve(this.#records.get(id));
  }

  put(record: SessionRecord): Promise<void> {
    this.#records.set(record.id, record);
    return Promise.resolve();
  }

  delete(id: string): Promise<void> {
    this.#records.delete(id);
    return Promise.resolve();
  }
}
