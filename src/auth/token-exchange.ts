// Upstream `auth: token_exchange`: the caller's access token is exchanged at the IdP (RFC 8693, with
// oauth4webapi) for one whose audience is the upstream — the caller's own token never leaves for an
// upstream. Callers without an OAuth token (API keys, open routes) and the gateway's own sessions get a
// client_credentials token for the same audience instead. Tokens are cached per (caller token, upstream)
// until shortly before they expire; an IdP that cannot be reached fails the call, naming the upstream.

import { createHash } from 'node:crypto';
import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import type { Principal } from '../gateway/context.ts';
import { GatehouseError } from '../mcp/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { ConnectOptions, CredentialProvider, CredentialSource } from '../upstream/types.ts';
import {
  type Credential,
  CredentialCache,
  type CredentialKind,
  credentialError,
  refreshTime,
  SessionCredential,
  type SessionParty,
} from './credentials.ts';
import { presentedToken } from './oauth.ts';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
/** Lifetime assumed for a token the IdP gives without expires_in (and that is not a JWT with exp). */
const DEFAULT_LIFETIME_S = 60;

export interface TokenExchangeOptions {
  upstream: string;
  /** The token endpoint, when configured; else discovered from `issuer`. */
  tokenEndpoint: string | undefined;
  /** The issuer whose metadata names the token endpoint (the OAuth issuer of the upstream's routes). */
  issuer: string | undefined;
  clientId: string;
  clientSecret: string;
  audience: string;
  resource: string | undefined;
  scope: string | undefined;
  /** Each request to the IdP (discovery, token) is given this long. */
  timeoutMs: number;
  /**
   * Callers without an OAuth token (API keys, open routes): refused (default), or given the gateway's own
   * client_credentials token — every such caller then acts with the gateway's privileges upstream.
   */
  callersWithoutToken: 'refuse' | 'client_credentials';
  logger: Logger;
}

/** http:// is allowed towards loopback only: the client secret and the caller's token travel there. */
export function isLoopbackUrl(u: string): boolean {
  const host = new URL(u).hostname;
  return host === 'localhost' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}

export function insecureEndpointProblem(u: string): string | undefined {
  const url = new URL(u);
  if (url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackUrl(u))) return undefined;
  return `${u} is not https (plain http is accepted for loopback addresses only)`;
}

type AuthMethod = 'client_secret_basic' | 'client_secret_post';

interface Endpoint {
  as: oauth.AuthorizationServer;
  /** How the gateway authenticates: basic unless the IdP offers only post, or refused basic (then post). */
  method: AuthMethod;
  /** Whether the other method may still be tried once, when the IdP refuses this one (invalid_client). */
  fallback: boolean;
}

export class TokenExchangeCredentials implements CredentialProvider, CredentialKind {
  readonly #o: TokenExchangeOptions;
  readonly #client: oauth.Client;
  readonly #cache = new CredentialCache();
  #endpoint: Promise<Endpoint> | undefined;

  constructor(options: TokenExchangeOptions) {
    this.#o = options;
    this.#client = { client_id: options.clientId };
  }

  forSession(opts: ConnectOptions): CredentialSource {
    return new SessionCredential(this, opts);
  }

  /** The caller's token (by hash) or, without one, the gateway's client_credentials token (''). */
  keyOf(party: SessionParty): string {
    const token = party.kind === 'caller' ? presentedToken(party.caller as Principal) : undefined;
    return token === undefined ? '' : createHash('sha256').update(token).digest('base64url');
  }

  obtain(party: SessionParty, key: string, now: number): Credential | Promise<Credential> {
    const token =
      key !== '' && party.kind === 'caller' ? presentedToken(party.caller as Principal) : undefined;
    if (token === undefined && party.kind !== 'gateway' && this.#o.callersWithoutToken === 'refuse') {
      throw credentialError(
        this.#o.upstream,
        "its token exchange needs the caller's OAuth access token, and this caller has none (an API key or an open route); the gateway's own token is not lent (token_exchange.callers_without_token: refuse)",
      );
    }
    return this.#cache.get(key, () => this.#request(token), now);
  }

  async #request(subjectToken: string | undefined): Promise<Credential> {
    const endpoint = await this.#resolveEndpoint();
    try {
      return await this.#grant(subjectToken, endpoint);
    } catch (err) {
      // The IdP knows the gateway's client with the other method (which its metadata cannot tell).
      const refused =
        (err instanceof oauth.ResponseBodyError && err.error === 'invalid_client') ||
        (err instanceof oauth.WWWAuthenticateChallengeError && err.status === 401);
      if (!refused || !endpoint.fallback) throw this.#failure(err, subjectToken, endpoint);
      endpoint.fallback = false;
      const other: AuthMethod =
        endpoint.method === 'client_secret_basic' ? 'client_secret_post' : 'client_secret_basic';
      try {
        const c = await this.#grant(subjectToken, { ...endpoint, method: other });
        endpoint.method = other;
        return c;
      } catch (err2) {
        throw this.#failure(err2, subjectToken, endpoint);
      }
    }
  }

  #failure(err: unknown, subjectToken: string | undefined, endpoint: Endpoint): Error {
    if (err instanceof GatehouseError) return err;
    const grant = subjectToken !== undefined ? 'token exchange' : 'client_credentials grant';
    // The details (the IdP's error_description, its endpoint) go to the log; the client learns the kind.
    this.#o.logger.warn(
      { err: idpFailure(err, grant, endpoint.as.token_endpoint!, this.#o.timeoutMs) },
      'no credential for the upstream',
    );
    return credentialError(this.#o.upstream, idpFailureKind(err, grant));
  }

  async #grant(subjectToken: string | undefined, { as, method }: Endpoint): Promise<Credential> {
    const o = this.#o;
    const auth =
      method === 'client_secret_post'
        ? oauth.ClientSecretPost(o.clientSecret)
        : oauth.ClientSecretBasic(o.clientSecret);
    const started = Date.now();
    const options = {
      signal: AbortSignal.timeout(o.timeoutMs),
      [oauth.allowInsecureRequests]: isLoopbackUrl(as.token_endpoint!),
    };
    let response: oauth.TokenEndpointResponse;
    if (subjectToken !== undefined) {
      const params: Record<string, string> = {
        subject_token: subjectToken,
        subject_token_type: ACCESS_TOKEN_TYPE,
        requested_token_type: ACCESS_TOKEN_TYPE,
        audience: o.audience,
      };
      if (o.resource) params.resource = o.resource;
      if (o.scope) params.scope = o.scope;
      const res = await oauth.genericTokenEndpointRequest(
        as,
        this.#client,
        auth,
        TOKEN_EXCHANGE,
        params,
        options,
      );
      response = await oauth.processGenericTokenEndpointResponse(as, this.#client, res);
    } else {
      // `audience` is not standard for client_credentials; servers ignore it or (Auth0) need it.
      const params: Record<string, string> = { audience: o.audience };
      if (o.resource) params.resource = o.resource;
      if (o.scope) params.scope = o.scope;
      const res = await oauth.clientCredentialsGrantRequest(as, this.#client, auth, params, options);
      response = await oauth.processClientCredentialsResponse(as, this.#client, res);
    }
    if (response.token_type !== 'bearer') {
      throw credentialError(
        o.upstream,
        `the identity provider issued a "${response.token_type}" token, not a bearer access token`,
      );
    }
    const lifetime =
      typeof response.expires_in === 'number' ? response.expires_in : jwtLifetime(response.access_token);
    const expiresAt = started + lifetime * 1000;
    return {
      headers: { authorization: `Bearer ${response.access_token}` },
      refreshAt: refreshTime(started, expiresAt),
      expiresAt,
    };
  }

  /** The token endpoint (configured or discovered once) and how the gateway authenticates there. */
  #resolveEndpoint(): Promise<Endpoint> {
    if (!this.#endpoint) {
      const p = this.#discover();
      this.#endpoint = p;
      p.catch(() => {
        if (this.#endpoint === p) this.#endpoint = undefined; // retried on the next call
      });
    }
    return this.#endpoint;
  }

  async #discover(): Promise<Endpoint> {
    const o = this.#o;
    if (o.tokenEndpoint) {
      return {
        as: { issuer: o.issuer ?? o.tokenEndpoint, token_endpoint: o.tokenEndpoint },
        method: 'client_secret_basic',
        fallback: true,
      };
    }
    const issuer = new URL(o.issuer!);
    let as: oauth.AuthorizationServer | undefined;
    let lastError: unknown;
    for (const algorithm of ['oidc', 'oauth2'] as const) {
      try {
        const res = await oauth.discoveryRequest(issuer, {
          algorithm,
          signal: AbortSignal.timeout(o.timeoutMs),
          [oauth.allowInsecureRequests]: isLoopbackUrl(issuer.href),
        });
        as = await oauth.processDiscoveryResponse(issuer, res);
        break;
      } catch (err) {
        lastError = err;
      }
    }
    if (!as) {
      throw credentialError(
        o.upstream,
        `the token endpoint of ${o.issuer} cannot be discovered (${describe(lastError)}); set auth.token_exchange.token_endpoint`,
      );
    }
    if (typeof as.token_endpoint !== 'string')
      throw credentialError(o.upstream, `the metadata of ${o.issuer} names no token_endpoint`);
    const insecure = insecureEndpointProblem(as.token_endpoint);
    if (insecure) throw credentialError(o.upstream, `the token endpoint ${insecure}`);
    const methods = as.token_endpoint_auth_methods_supported;
    const offered = (m: AuthMethod) => !Array.isArray(methods) || methods.includes(m);
    const method: AuthMethod = offered('client_secret_basic') ? 'client_secret_basic' : 'client_secret_post';
    return { as, method, fallback: method === 'client_secret_basic' && offered('client_secret_post') };
  }
}

function jwtLifetime(token: string): number {
  try {
    const { exp } = decodeJwt(token);
    if (typeof exp === 'number') return Math.max(0, exp - Math.floor(Date.now() / 1000));
  } catch {
    // not a JWT
  }
  return DEFAULT_LIFETIME_S;
}

/** The IdP's failure in words: unreachable, timed out, or refused (with its OAuth error). */
/** What a client is told: the kind of failure only. */
function idpFailureKind(err: unknown, grant: string): string {
  if (err instanceof oauth.ResponseBodyError || err instanceof oauth.WWWAuthenticateChallengeError)
    return `the identity provider refused the ${grant}`;
  const name = (err as { name?: string }).name;
  if (name === 'TimeoutError' || name === 'AbortError')
    return `the identity provider did not answer the ${grant} in time`;
  return `the identity provider could not be reached for the ${grant}`;
}

function idpFailure(err: unknown, grant: string, endpoint: string, timeoutMs: number): string {
  if (err instanceof oauth.ResponseBodyError) {
    const desc = err.error_description ? `: ${err.error_description}` : '';
    return `the identity provider refused the ${grant} (HTTP ${err.status}, ${err.error}${desc})`;
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError)
    return `the identity provider refused the gateway's client credentials for the ${grant} (HTTP ${err.status})`;
  const name = (err as { name?: string }).name;
  if (name === 'TimeoutError' || name === 'AbortError')
    return `the identity provider's token endpoint ${endpoint} did not answer the ${grant} within ${timeoutMs} ms`;
  if (err instanceof TypeError)
    return `the identity provider's token endpoint ${endpoint} is unreachable (${describe(err)})`;
  return `the ${grant} at ${endpoint} failed (${describe(err)})`;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause as { code?: string; message?: string } | undefined;
  const why = cause?.code ?? cause?.message;
  return why ? `${err.message}: ${why}` : err.message;
}
