// Turns a request's credentials into a Principal, or refuses it. A route may accept API keys, OAuth
// access tokens, or both (a key is recognised by its prefix). Missing and invalid credentials get the
// same 401; a valid caller whose groups the route does not know gets 403 (fail closed).

import type { Principal } from '../gateway/context.ts';
import { Errors } from '../mcp/errors.ts';
import { type ApiKeyRecord, type KeyStore, keyStoreUnavailable } from './api-keys.ts';
import type { OAuthValidator, RequestOrigin } from './oauth.ts';

export type Authenticate = (
  headers: Readonly<Record<string, string | string[] | undefined>>,
  now: number,
  /** The request (its protocol and host, read only for a 401 challenge behind a trusted proxy). */
  origin?: RequestOrigin,
) => Principal | Promise<Principal>;

/** RFC 9110: the scheme is case-insensitive. */
const BEARER = /^bearer\s+(\S+)\s*$/i;
const KEY_PREFIX = 'ghk_';

export interface RouteAuthOptions {
  keys?: { store: KeyStore; header: string } | undefined;
  oauth?: OAuthValidator | undefined;
  /** With groups_required: the groups the route's ACL names; a caller in none of them is refused. */
  requiredGroups?: ReadonlySet<string> | undefined;
}

export function routeAuthenticator(opts: RouteAuthOptions): Authenticate {
  const keyHeader = opts.keys?.header.toLowerCase();
  const unauthorized = (origin?: RequestOrigin) => {
    if (opts.oauth) return opts.oauth.unauthorized(origin);
    const how =
      keyHeader && keyHeader !== 'authorization'
        ? `header ${opts.keys!.header}`
        : 'Authorization: Bearer <key>';
    return Errors.unauthorized(`Unauthorized: this route needs a valid API key (${how})`);
  };
  const checkGroups = (p: Principal): Principal => {
    const required = opts.requiredGroups;
    if (required && required.size > 0 && !p.groups.some((g) => required.has(g))) {
      throw Errors.forbidden('Forbidden: none of your groups has access to this route');
    }
    return p;
  };
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
  // One principal per key record (records are cached by the store): the ACL computes a caller once.
  const principals = new WeakMap<ApiKeyRecord, Principal>();
  const keyPrincipal = (record: ApiKeyRecord | undefined, origin?: RequestOrigin): Principal => {
    if (!record) throw unauthorized(origin);
    let p = principals.get(record);
    if (!p) {
      p = {
        source: 'api_key',
        subject: record.name,
        agent: record.agent,
        groups: record.groups,
        scopes: [],
        claims: {},
      };
      principals.set(record, p);
    }
    return checkGroups(p);
  };

  return (headers, now, origin) => {
    const bearer = BEARER.exec(first(headers.authorization) ?? '')?.[1];
    const key =
      keyHeader === undefined
        ? undefined
        : keyHeader === 'authorization'
          ? bearer
          : first(headers[keyHeader])?.trim();
    if (opts.keys && key?.startsWith(KEY_PREFIX)) {
      let record: ReturnType<KeyStore['verify']>;
      try {
        record = opts.keys.store.verify(key, now);
      } catch {
        // The store failed (closing, unreadable): refuse, never allow, and say it is on our side.
        throw keyStoreUnavailable();
      }
      // SQLite and cache hits answer synchronously; a PostgreSQL miss answers later (or is unavailable).
      if (record instanceof Promise)
        return record.then(
          (r) => keyPrincipal(r, origin),
          () => {
            throw keyStoreUnavailable();
          },
        );
      return keyPrincipal(record, origin);
    }
    if (opts.oauth && bearer && !bearer.startsWith(KEY_PREFIX))
      return opts.oauth.verify(bearer, now, origin).then(checkGroups);
    throw unauthorized(origin);
  };
}
