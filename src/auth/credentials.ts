// What every kind of upstream credential shares: a bounded cache per upstream (one credential per caller
// key, obtained once however many sessions ask at the same time), and each session's view of it, which
// answers synchronously — the same header object — while the credential is fresh.

import { GatehouseError, GatewayCode } from '../mcp/errors.ts';
import type { Caller, ConnectOptions, CredentialSource } from '../upstream/types.ts';
import { CREDENTIAL_ERROR_CODE } from '../upstream/types.ts';

export interface Credential {
  headers: Readonly<Record<string, string>>;
  /** From then on (epoch ms) a new one is obtained… */
  refreshAt: number;
  /** …and past this it is never sent. */
  expiresAt: number;
}

/** When to renew a credential valid from `issuedAt` to `expiresAt`: ~30 s before it ends (half-life if shorter). */
export function refreshTime(issuedAt: number, expiresAt: number): number {
  return expiresAt - Math.min(30_000, Math.max(0, expiresAt - issuedAt) / 2);
}

/** After a failed renewal, a credential still valid is used this long before the next attempt. */
const RETRY_MS = 5_000;

/** The error a credential source rejects with: the upstream was not called. */
export function credentialError(upstream: string, why: string): GatehouseError {
  return new GatehouseError(
    CREDENTIAL_ERROR_CODE,
    GatewayCode.UpstreamUnavailable,
    502,
    `upstream "${upstream}" was not called: ${why}`,
  );
}

/** Credentials of one upstream by caller key. Bounded: the oldest entry makes room. */
export class CredentialCache {
  readonly #max: number;
  readonly #entries = new Map<string, Credential>();
  readonly #inflight = new Map<string, Promise<Credential>>();

  constructor(max = 10_000) {
    this.#max = max;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string, obtain: () => Promise<Credential>, now: number): Credential | Promise<Credential> {
    const hit = this.#entries.get(key);
    if (hit && now < hit.refreshAt) return hit;
    const running = this.#inflight.get(key);
    if (running) return running;
    const p = obtain()
      .then(
        (c) => {
          this.#store(key, c);
          return c;
        },
        (err: unknown) => {
          // Renewal failed (IdP briefly away): a credential still valid serves a little longer.
          const t = Date.now();
          if (hit && t < hit.expiresAt - 1_000) {
            hit.refreshAt = Math.min(t + RETRY_MS, hit.expiresAt - 1_000);
            return hit;
          }
          if (hit) this.#entries.delete(key);
          throw err;
        },
      )
      .finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  #store(key: string, c: Credential): void {
    this.#entries.delete(key);
    if (this.#entries.size >= this.#max) {
      const now = Date.now();
      for (const [k, v] of this.#entries) if (v.expiresAt <= now) this.#entries.delete(k);
      if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!);
    }
    this.#entries.set(key, c);
  }
}

/** Who a session speaks for: the gateway itself, an anonymous caller, or a caller. */
export type SessionParty = { kind: 'gateway' } | { kind: 'anonymous' } | { kind: 'caller'; caller: Caller };

const GATEWAY: SessionParty = { kind: 'gateway' };
const ANONYMOUS: SessionParty = { kind: 'anonymous' };

export interface CredentialKind {
  /** The cache key of a party's credential (what makes two parties' credentials differ). */
  keyOf(party: SessionParty): string;
  /** The party's credential: from the cache, or obtained. */
  obtain(party: SessionParty, key: string, now: number): Credential | Promise<Credential>;
}

/**
 * One upstream session's credential: its party as of now (a caller may present a fresh token within a
 * session), re-keyed only when the caller object changes, and renewed when it nears expiry.
 */
export class SessionCredential implements CredentialSource {
  readonly #kind: CredentialKind;
  readonly #opts: ConnectOptions;
  #caller: Caller | undefined | null = null;
  #party: SessionParty = GATEWAY;
  #key: string | undefined;
  #current: Credential | undefined;

  constructor(kind: CredentialKind, opts: ConnectOptions) {
    this.#kind = kind;
    this.#opts = opts;
    if (opts.internal) this.#key = kind.keyOf(GATEWAY);
  }

  headers(): Readonly<Record<string, string>> | Promise<Readonly<Record<string, string>>> {
    if (!this.#opts.internal) {
      const caller = this.#opts.caller?.();
      if (caller !== this.#caller) {
        this.#caller = caller;
        this.#party = caller ? { kind: 'caller', caller } : ANONYMOUS;
        const key = this.#kind.keyOf(this.#party);
        if (key !== this.#key) this.#current = undefined;
        this.#key = key;
      }
    }
    const now = Date.now();
    const cur = this.#current;
    if (cur && now < cur.refreshAt) return cur.headers;
    const key = this.#key!;
    const got = this.#kind.obtain(this.#party, key, now);
    if (!(got instanceof Promise)) {
      this.#current = got;
      return got.headers;
    }
    return got.then((c) => {
      if (this.#key === key) this.#current = c;
      return c.headers;
    });
  }
}
