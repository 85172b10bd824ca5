// OAuth 2.1 resource server for a route: bearer JWTs checked against the IdP's JWKS (jose: keys cached,
// rotation and unknown kids handled with a cool-down), issuer, expiry with leeway, and audience — the
// route's canonical resource URI (RFC 8707). Missing and invalid tokens get the same 401, pointing at
// the Protected Resource Metadata (RFC 9728); an unreachable IdP gets 503, never an allow.

import { createHash } from 'node:crypto';
import { createRemoteJWKSet, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import type { Principal } from '../gateway/context.ts';
import { Errors, type GatehouseError } from '../mcp/errors.ts';

export interface OAuthRouteOptions {
  issuer: string;
  jwksUri: string;
  /** The route's canonical resource URI: tokens must name it in `aud` (unless relaxed). */
  resource: string;
  relaxedAudience: boolean;
  leewayMs: number;
  subjectClaim: string;
  groupsClaim: string;
  agentClaim: string | undefined;
  /** Advertised in the metadata and the challenge. */
  scopes: readonly string[];
  /** Where the route's Protected Resource Metadata is served (absolute URL; known once listening). */
  metadataUrl: () => string;
}

/** A dotted claim path (`realm_access.roles`) read from a token's payload. */
function claim(payload: JWTPayload, path: string): unknown {
  let v: unknown = payload;
  for (const part of path.split('.')) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

const CACHE_MAX = 10_000;

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
  readonly #jwks: ReturnType<typeof createRemoteJWKSet>;
  /** Verified tokens by hash, until their expiry: the hot path verifies a token once. */
  readonly #cache = new Map<string, { principal: Principal; until: number }>();

  constructor(options: OAuthRouteOptions) {
    this.options = options;
    this.#jwks = createRemoteJWKSet(new URL(options.jwksUri), {
      cooldownDuration: 30_000,
      timeoutDuration: 5_000,
    });
  }

  /** The challenge of a 401: where the metadata is, and the scopes to ask for. */
  challenge(): string {
    const scope = this.options.scopes.length > 0 ? `, scope="${this.options.scopes.join(' ')}"` : '';
    return `Bearer resource_metadata="${this.options.metadataUrl()}"${scope}`;
  }

  unauthorized(): GatehouseError {
    const e = Errors.unauthorized(
      'Unauthorized: this route needs a valid access token; see the resource metadata in WWW-Authenticate',
    );
    e.headers = { 'www-authenticate': this.challenge() };
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

  async verify(token: string, now: number): Promise<Principal> {
    const h = createHash('sha256').update(token).digest('base64url');
    const hit = this.#cache.get(h);
    if (hit && hit.until > now) return hit.principal;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#jwks, {
        issuer: this.options.issuer,
        ...(this.options.relaxedAudience ? {} : { audience: this.options.resource }),
        clockTolerance: Math.round(this.options.leewayMs / 1000),
      }));
    } catch (err) {
      if (
        err instanceof joseErrors.JWKSTimeout ||
        (err instanceof Error && /fetch|ECONNREFUSED|network/i.test(err.message))
      ) {
        throw Errors.identityProviderUnavailable(
          'Service Unavailable: the identity provider cannot be reached to check the token; retry shortly',
        );
      }
      throw this.unauthorized();
    }
    const subject = claim(payload, this.options.subjectClaim);
    if (typeof subject !== 'string' || subject === '') throw this.unauthorized();
    const rawGroups = claim(payload, this.options.groupsClaim);
    const groups = Array.isArray(rawGroups)
      ? rawGroups.filter((g): g is string => typeof g === 'string')
      : typeof rawGroups === 'string'
        ? rawGroups.split(/[\s,]+/).filter(Boolean)
        : [];
    const agentValue = this.options.agentClaim
      ? claim(payload, this.options.agentClaim)
      : (payload.azp ?? payload.client_id);
    const scope = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [];
    const principal: Principal = {
      subject,
      groups,
      scopes: scope,
      claims: payload as Record<string, unknown>,
      ...(typeof agentValue === 'string' ? { agent: agentValue } : {}),
    };
    presentedTokens.set(principal, token);
    const until = typeof payload.exp === 'number' ? payload.exp * 1000 : now + 60_000;
    if (this.#cache.size >= CACHE_MAX) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(h, { principal, until });
    return principal;
  }
}
