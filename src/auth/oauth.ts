// OAuth 2.1 resource server for a route: bearer JWTs checked against the IdP's JWKS (jose: keys cached,
// rotation and unknown kids handled with a cool-down), `typ`, issuer, expiry with leeway, and audience —
// the route's canonical resource URI (RFC 8707); opaque tokens (or all tokens) by RFC 7662 introspection.
// Missing and invalid tokens get the same 401, pointing at the Protected Resource Metadata (RFC 9728); an
// unreachable IdP gets 503, never an allow.

import { createHash } from 'node:crypto';
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  type JWTPayload,
  errors as joseErrors,
  jwtVerify,
  type ProtectedHeaderParameters,
} from 'jose';
import type { Principal } from '../gateway/context.ts';
import { Errors, type GatehouseError } from '../mcp/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { Introspector } from './introspection.ts';

/** What the gateway knows of the URL a request came in by (fastify's request: honours trust_proxy). */
export interface RequestOrigin {
  readonly protocol: string;
  readonly host: string;
}

export interface IntrospectionRouteOptions {
  endpoint: string;
  clientId: string;
  clientSecret: string;
  /** opaque: tokens that are not JWTs; all: every token. */
  tokens: 'opaque' | 'all';
  /** How long an answer is reused (never past the token's expiry); 0: never. */
  cacheTtlMs: number;
  /** Per request (default 5 s). */
  timeoutMs?: number;
}

export interface OAuthRouteOptions {
  issuer: string;
  /** The IdP's keys; may be absent only when every token is introspected. */
  jwksUri: string | undefined;
  /** The route's canonical resource URI: tokens must name it in `aud` (unless relaxed). */
  resource: string;
  relaxedAudience: boolean;
  leewayMs: number;
  subjectClaim: string;
  groupsClaim: string;
  agentClaim: string | undefined;
  tenantClaim?: string | undefined;
  /** Claim paths whose values go to Principal.claimValues (ACL `claim:<path>=<value>` subjects). */
  claims?: readonly string[];
  /** Accepted JWT `typ` values (case-insensitive, "application/" optional); default at+jwt and jwt. */
  tokenTypes?: readonly string[];
  /** Refuse JWTs without `typ`. */
  requireTyp?: boolean;
  introspection?: IntrospectionRouteOptions | undefined;
  /** Advertised in the metadata and the challenge. */
  scopes: readonly string[];
  /**
   * Where the route's Protected Resource Metadata is served (absolute URL; known once listening). Given
   * the request's origin when one is at hand (a challenge), for deployments behind a trusted proxy.
   */
  metadataUrl: (origin?: RequestOrigin) => string;
  logger?: Logger | undefined;
}

/** A dotted claim path (`realm_access.roles`) read from a token's payload. */
function claim(payload: Readonly<Record<string, unknown>>, path: string): unknown {
  let v: unknown = payload;
  for (const part of path.split('.')) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** A claim's value(s) as strings: a string, a number or boolean (stringified), or an array of those. */
function claimStrings(v: unknown): string[] {
  const one = (x: unknown) =>
    typeof x === 'string' ? x : typeof x === 'number' || typeof x === 'boolean' ? String(x) : undefined;
  if (Array.isArray(v)) return v.map(one).filter((x): x is string => x !== undefined);
  const s = one(v);
  return s === undefined ? [] : [s];
}

const normalizeTyp = (t: string) => t.toLowerCase().replace(/^application\//, '');

/** A JWS in compact form (three parts, a JSON header): verified locally; anything else is opaque. */
function jwsHeader(token: string): ProtectedHeaderParameters | undefined {
  let dots = 0;
  for (let i = token.indexOf('.'); i !== -1; i = token.indexOf('.', i + 1)) dots++;
  if (dots !== 2) return undefined;
  try {
    return decodeProtectedHeader(token);
  } catch {
    return undefined;
  }
}

/**
 * Whether a failed verification is the IdP's JWKS failing (unreachable, timing out, answering other than
 * 200 or with no key set): 503, not a 401 that would send every client to re-authenticate for nothing.
 * jose throws a bare JOSEError (ERR_JOSE_GENERIC) only for the JWKS response, and JWKSInvalid for its body.
 */
function jwksUnavailable(err: unknown): boolean {
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) return true;
  if (err instanceof joseErrors.JOSEError) return err.code === 'ERR_JOSE_GENERIC';
  // fetch's own failure (connection refused, DNS, TLS): a TypeError, "fetch failed".
  return err instanceof TypeError;
}

const CACHE_MAX = 10_000;
/** Sets a cache entry, the oldest one making room past CACHE_MAX. */
function bounded<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  if (map.size >= CACHE_MAX) map.delete(map.keys().next().value!);
  map.set(key, value);
}

/** How long a refused introspected token is remembered: a client retrying a bad token does not hammer the IdP. */
const NEGATIVE_TTL_MS = 5_000;

/**
 * The access token each OAuth principal presented, kept off the Principal itself so that no log line,
 * audit record or upstream request can carry it by accident. Read only by RFC 8693 token exchange (the
 * token goes back to the IdP that issued it, never to an upstream).
 */
const presentedTokens = new WeakMap<Principal, string>();

export function presentedToken(p: Principal): string | undefined {
  return presentedTokens.get(p);
}

export class OAuthValidator {
  readonly options: OAuthRouteOptions;
  readonly #jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  readonly #introspector: Introspector | undefined;
  readonly #tokenTypes: ReadonlySet<string>;
  /**
   * Verified tokens by hash, until their expiry (JWTs) or the introspection cache_ttl: the hot path checks
   * a token once.
   */
  readonly #cache = new Map<string, { principal: Principal; until: number }>();
  /**
   * Refused introspected tokens by hash, until when (kept briefly). Apart from #cache, each bounded: a flood
   * of junk tokens evicts only other junk, never a verified token (whose eviction would cost an IdP call).
   */
  readonly #refused = new Map<string, number>();
  /** Introspections in flight, by token hash: concurrent requests with one token ask the IdP once. */
  readonly #inflight = new Map<string, Promise<Principal | undefined>>();

  constructor(options: OAuthRouteOptions) {
    this.options = options;
    this.#jwks = options.jwksUri
      ? createRemoteJWKSet(new URL(options.jwksUri), { cooldownDuration: 30_000, timeoutDuration: 5_000 })
      : undefined;
    this.#tokenTypes = new Set((options.tokenTypes ?? ['at+jwt', 'jwt']).map(normalizeTyp));
    const i = options.introspection;
    this.#introspector = i
      ? new Introspector({
          issuer: options.issuer,
          endpoint: i.endpoint,
          clientId: i.clientId,
          clientSecret: i.clientSecret,
          audience: options.relaxedAudience ? undefined : options.resource,
          leewayMs: options.leewayMs,
          ...(i.timeoutMs !== undefined ? { timeoutMs: i.timeoutMs } : {}),
          logger: options.logger,
        })
      : undefined;
  }

  /** The challenge of a 401: where the metadata is, and the scopes to ask for. */
  challenge(origin?: RequestOrigin): string {
    const scope = this.options.scopes.length > 0 ? `, scope="${this.options.scopes.join(' ')}"` : '';
    return `Bearer resource_metadata="${this.options.metadataUrl(origin)}"${scope}`;
  }

  unauthorized(origin?: RequestOrigin): GatehouseError {
    const e = Errors.unauthorized(
      'Unauthorized: this route needs a valid access token; see the resource metadata in WWW-Authenticate',
    );
    e.headers = { 'www-authenticate': this.challenge(origin) };
    return e;
  }

  /** RFC 9728 Protected Resource Metadata of the route. */
  metadata(): Record<string, unknown> {
    const doc: Record<string, unknown> = {
      resource: this.options.resource,
      authorization_servers: [this.options.issuer],
      bearer_methods_supported: ['header'],
    };
    if (this.options.scopes.length > 0) doc.scopes_supported = this.options.scopes;
    return doc;
  }

  async verify(token: string, now: number, origin?: RequestOrigin): Promise<Principal> {
    const h = createHash('sha256').update(token).digest('base64url');
    const hit = this.#cache.get(h);
    if (hit) {
      if (hit.until > now) return hit.principal;
      this.#cache.delete(h);
    }
    const refusedUntil = this.#refused.get(h);
    if (refusedUntil !== undefined) {
      if (refusedUntil > now) throw this.unauthorized(origin);
      this.#refused.delete(h);
    }
    const header = jwsHeader(token);
    if (header) {
      const typ = header.typ;
      if (typ === undefined ? this.options.requireTyp : !this.#tokenTypes.has(normalizeTyp(typ))) {
        throw this.unauthorized(origin);
      }
    }
    const principal =
      this.#introspector && (this.options.introspection!.tokens === 'all' || !header)
        ? await this.#introspectOnce(token, h, now)
        : await this.#verifyJwt(token, h);
    if (!principal) throw this.unauthorized(origin);
    return principal;
  }

  async #verifyJwt(token: string, h: string): Promise<Principal | undefined> {
    if (!this.#jwks) return undefined;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#jwks, {
        issuer: this.options.issuer,
        ...(this.options.relaxedAudience ? {} : { audience: this.options.resource }),
        clockTolerance: Math.round(this.options.leewayMs / 1000),
        // RFC 9068 §2.2: an access token has an expiry; one without would be good (and cached) forever.
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      if (jwksUnavailable(err)) {
        throw Errors.identityProviderUnavailable(
          'Service Unavailable: the identity provider cannot be reached to check the token; retry shortly',
        );
      }
      return undefined;
    }
    const principal = this.#principal(payload, token);
    if (principal) this.#remember(h, principal, (payload.exp as number) * 1000);
    return principal;
  }

  #introspectOnce(token: string, h: string, now: number): Promise<Principal | undefined> {
    let p = this.#inflight.get(h);
    if (!p) {
      p = this.#introspect(token, h, now).finally(() => this.#inflight.delete(h));
      this.#inflight.set(h, p);
    }
    return p;
  }

  async #introspect(token: string, h: string, now: number): Promise<Principal | undefined> {
    const ttl = this.options.introspection!.cacheTtlMs;
    const claims = await this.#introspector!.introspect(token, now);
    const principal = claims ? this.#principal(claims, token) : undefined;
    if (ttl > 0) {
      const exp = claims && typeof claims.exp === 'number' ? claims.exp * 1000 : Number.POSITIVE_INFINITY;
      if (principal) this.#remember(h, principal, Math.min(now + ttl, exp));
      else bounded(this.#refused, h, now + Math.min(ttl, NEGATIVE_TTL_MS));
    }
    return principal;
  }

  #remember(h: string, principal: Principal, until: number): void {
    bounded(this.#cache, h, { principal, until });
  }

  /** Claims (a verified JWT's payload or an introspection answer) → the principal; undefined without a subject. */
  #principal(payload: Readonly<Record<string, unknown>>, token: string): Principal | undefined {
    const o = this.options;
    const subject = claim(payload, o.subjectClaim);
    if (typeof subject !== 'string' || subject === '') return undefined;
    const rawGroups = claim(payload, o.groupsClaim);
    const groups = Array.isArray(rawGroups)
      ? rawGroups.filter((g): g is string => typeof g === 'string')
      : typeof rawGroups === 'string'
        ? rawGroups.split(/[\s,]+/).filter(Boolean)
        : [];
    const agentValue = o.agentClaim ? claim(payload, o.agentClaim) : (payload.azp ?? payload.client_id);
    const tenant = o.tenantClaim ? claimStrings(claim(payload, o.tenantClaim))[0] : undefined;
    const scope = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [];
    let claimValues: Record<string, readonly string[]> | undefined;
    if (o.claims && o.claims.length > 0) {
      claimValues = {};
      for (const path of o.claims) {
        const values = claimStrings(claim(payload, path));
        if (values.length > 0) claimValues[path] = values;
      }
    }
    const principal: Principal = {
      source: 'oauth',
      subject,
      groups,
      scopes: scope,
      claims: payload,
      ...(typeof agentValue === 'string' ? { agent: agentValue } : {}),
      ...(tenant !== undefined ? { tenant } : {}),
      ...(claimValues ? { claimValues } : {}),
    };
    presentedTokens.set(principal, token);
    return principal;
  }
}
