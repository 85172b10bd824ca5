// RFC 7662 token introspection with oauth4webapi: the IdP is asked whether a token (an opaque one, or any
// with `tokens: all`) is active, and its answer is checked like a JWT would be — issuer, audience = the
// route's resource URI (RFC 8707), expiry and not-before with leeway. An IdP that cannot answer (down,
// 5xx, timeout, refusing the gateway's credentials, malformed answer) is an error of ours: 503, never an
// allow. Caching is the caller's (OAuthValidator), by token hash.

import * as oauth from 'oauth4webapi';
import { Errors } from '../mcp/errors.ts';
import type { Logger } from '../telemetry/logger.ts';

export interface IntrospectionOptions {
  issuer: string;
  endpoint: string;
  clientId: string;
  clientSecret: string;
  /** Required in `aud`; undefined accepts any audience (relaxed_audience). */
  audience: string | undefined;
  leewayMs: number;
  /** Per request (default 5 s). */
  timeoutMs?: number;
  logger?: Logger | undefined;
}

/** The claims of an active, acceptable token; undefined for any token to refuse with 401. */
export type IntrospectionResult = Record<string, unknown> | undefined;

const FAILURE_LOG_INTERVAL_MS = 10_000;

export class Introspector {
  readonly #opts: IntrospectionOptions;
  readonly #as: oauth.AuthorizationServer;
  readonly #client: oauth.Client;
  readonly #auth: oauth.ClientAuth;
  readonly #insecure: boolean;
  #lastFailureLog = 0;

  constructor(opts: IntrospectionOptions) {
    this.#opts = opts;
    this.#as = { issuer: opts.issuer, introspection_endpoint: opts.endpoint };
    this.#client = { client_id: opts.clientId };
    this.#auth = oauth.ClientSecretBasic(opts.clientSecret);
    // Plain http is allowed as for jwks_uri (an in-cluster IdP); the operator chose or discovered the URL.
    this.#insecure = new URL(opts.endpoint).protocol === 'http:';
  }

  async introspect(token: string, now: number): Promise<IntrospectionResult> {
    let body: oauth.IntrospectionResponse;
    let res: Response | undefined;
    try {
      res = await oauth.introspectionRequest(this.#as, this.#client, this.#auth, token, {
        signal: AbortSignal.timeout(this.#opts.timeoutMs ?? 5_000),
        additionalParameters: { token_type_hint: 'access_token' },
        [oauth.allowInsecureRequests]: this.#insecure,
      });
      body = await oauth.processIntrospectionResponse(this.#as, this.#client, res);
    } catch (err) {
      await res?.body?.cancel().catch(() => {});
      this.#logFailure(err, now);
      throw Errors.identityProviderUnavailable(
        'Service Unavailable: the identity provider cannot be reached to check the token; retry shortly',
      );
    }
    return this.#accept(body as Record<string, unknown>, now) ? (body as Record<string, unknown>) : undefined;
  }

  #accept(c: Record<string, unknown>, now: number): boolean {
    if (c.active !== true) return false;
    if (c.iss !== undefined && c.iss !== this.#opts.issuer) return false;
    const { audience, leewayMs } = this.#opts;
    if (audience !== undefined) {
      const aud = c.aud;
      if (!(aud === audience || (Array.isArray(aud) && aud.includes(audience)))) return false;
    }
    if (c.exp !== undefined && (typeof c.exp !== 'number' || c.exp * 1000 + leewayMs <= now)) return false;
    if (c.nbf !== undefined && (typeof c.nbf !== 'number' || c.nbf * 1000 - leewayMs > now)) return false;
    // RFC 7662 token_type is the access token's type: a DPoP-bound (or other) token is not a bearer one.
    if (typeof c.token_type === 'string' && c.token_type.toLowerCase() !== 'bearer') return false;
    return true;
  }

  /** A failing IdP fails every request: say why, at most every 10 s. */
  #logFailure(err: unknown, now: number): void {
    if (!this.#opts.logger || now - this.#lastFailureLog < FAILURE_LOG_INTERVAL_MS) return;
    this.#lastFailureLog = now;
    const e = err as { message?: string; status?: unknown; cause?: unknown; error?: string };
    const status =
      typeof e.status === 'number' ? e.status : e.cause instanceof Response ? e.cause.status : undefined;
    this.#opts.logger.warn(
      {
        endpoint: this.#opts.endpoint,
        err: e.message ?? String(err),
        ...(status !== undefined ? { status } : {}),
        ...(typeof e.error === 'string' ? { error: e.error } : {}),
        ...(e.cause instanceof Error ? { cause: e.cause.message } : {}),
      },
      status === 401
        ? 'token introspection failed: the IdP refused the gateway client credentials (auth.oauth.introspection)'
        : 'token introspection failed: the identity provider did not answer; requests get 503',
    );
  }
}
