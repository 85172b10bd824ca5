// Identity to upstreams, without token passthrough: what each HTTP upstream's `auth` turns into — a
// static credential (a header), RFC 8693 token exchange, or a short-lived assertion signed by the gateway
// (JWT: iss = the gateway, sub/groups/agent/tenant = the caller, aud = the upstream). The caller's own
// token is never sent to an upstream: there is no setting for it.

import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { SignJWT } from 'jose';
import { ConfigError, resolveSecret } from '../config/load.ts';
import type { Config, UpstreamConfig } from '../config/schema.ts';
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
import { GatewaySigningKey, SigningKeyError } from './identity-keys.ts';
import { insecureEndpointProblem, TokenExchangeCredentials } from './token-exchange.ts';

/** Each request to the IdP (discovery, token) is given this long. */
const IDP_TIMEOUT_MS = 10_000;
/** The subject of the gateway's own sessions (the catalogue's) in assertions. */
export const GATEWAY_SUBJECT = 'gatehouse';
const ANONYMOUS_SUBJECT = 'anonymous';

export interface AssertionOptions {
  upstream: string;
  key: GatewaySigningKey;
  issuer: string;
  audience: string;
  /** The header carrying it: `authorization` (as Bearer) or another (the raw JWT). */
  header: string;
  ttlMs: number;
}

/**
 * Upstream `auth: assertion`: a JWT signed by the gateway naming the caller, cached per (caller, upstream)
 * until ~30 s before it expires — signing happens once per caller and lifetime, never per request.
 */
export class AssertionCredentials implements CredentialProvider, CredentialKind {
  readonly #o: AssertionOptions;
  readonly #cache = new CredentialCache();

  constructor(options: AssertionOptions) {
    this.#o = options;
  }

  forSession(opts: ConnectOptions): CredentialSource {
    return new SessionCredential(this, opts);
  }

  /** What the assertion says of the party: two callers saying the same thing share one. */
  keyOf(party: SessionParty): string {
    if (party.kind !== 'caller') return `\u0000${party.kind}`;
    const c = party.caller;
    return JSON.stringify([c.source ?? null, c.subject, c.groups, c.agent ?? null, c.tenant ?? null]);
  }

  obtain(party: SessionParty, key: string, now: number): Credential | Promise<Credential> {
    return this.#cache.get(key, () => this.#sign(party), now);
  }

  async #sign(party: SessionParty): Promise<Credential> {
    const o = this.#o;
    const claims: Record<string, unknown> = {};
    let subject: string;
    if (party.kind === 'gateway') {
      subject = GATEWAY_SUBJECT;
      claims.gateway = true; // the gateway's own session (catalogue, health), not a caller's
    } else if (party.kind === 'anonymous') {
      subject = ANONYMOUS_SUBJECT;
      claims.anonymous = true; // a route without auth: the gateway does not know who calls
    } else {
      const c = party.caller;
      subject = c.subject;
      // An API key's name and a user's id are different namespaces: the assertion says which it is.
      if (c.source !== undefined) claims.auth = c.source;
      if (c.groups.length > 0) claims.groups = [...c.groups];
      if (c.agent !== undefined) claims.agent = c.agent;
      if (c.tenant !== undefined) claims.tenant = c.tenant;
    }
    const iat = Math.floor(Date.now() / 1000);
    const exp = iat + Math.max(1, Math.ceil(o.ttlMs / 1000));
    let jwt: string;
    try {
      jwt = await new SignJWT(claims)
        .setProtectedHeader({ alg: o.key.alg, kid: o.key.kid, typ: 'JWT' })
        .setIssuer(o.issuer)
        .setSubject(subject)
        .setAudience(o.audience)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .setJti(randomUUID())
        .sign(o.key.privateKey);
    } catch (err) {
      throw credentialError(
        o.upstream,
        `the identity assertion could not be signed (${(err as Error).message})`,
      );
    }
    return {
      headers: { [o.header]: o.header === 'authorization' ? `Bearer ${jwt}` : jwt },
      refreshAt: refreshTime(iat * 1000, exp * 1000),
      expiresAt: exp * 1000,
    };
  }
}

export interface UpstreamAuth {
  /** Static headers to add (a `static` credential). */
  headers: Record<string, string>;
  /** Per-session credentials (token exchange, assertion). */
  credentials: CredentialProvider | undefined;
}

/** Builds every upstream's identity from config: the gateway's signing key, and each upstream's `auth`. */
export class UpstreamIdentity {
  readonly #config: Config;
  readonly #baseDir: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #logger: Logger;
  /** Per token-exchange upstream, the issuer whose metadata names its token endpoint (if any). */
  readonly #issuers: ReadonlyMap<string, string | undefined>;
  /** The gateway's signing key, when it signs assertions (or has a key configured). */
  readonly key: GatewaySigningKey | undefined;

  private constructor(
    opts: { config: Config; baseDir: string; env: NodeJS.ProcessEnv; logger: Logger },
    issuers: ReadonlyMap<string, string | undefined>,
    key: GatewaySigningKey | undefined,
  ) {
    this.#config = opts.config;
    this.#baseDir = opts.baseDir;
    this.#env = opts.env;
    this.#logger = opts.logger;
    this.#issuers = issuers;
    this.key = key;
  }

  /** Checks every upstream's `auth` and the signing key (all problems in one ConfigError), loads the key. */
  static async build(opts: {
    config: Config;
    baseDir: string;
    env: NodeJS.ProcessEnv;
    file: string;
    logger: Logger;
  }): Promise<UpstreamIdentity> {
    const { config } = opts;
    const problems: { path: string; message: string }[] = [];
    const issuers = new Map<string, string | undefined>();
    let signs = false;
    for (const [name, uc] of Object.entries(config.upstreams)) {
      const auth = 'auth' in uc ? uc.auth : undefined;
      if (!auth) continue;
      if ('assertion' in auth) signs = true;
      if (!('token_exchange' in auth)) continue;
      const t = auth.token_exchange;
      const path = `upstreams.${name}.auth.token_exchange.token_endpoint`;
      const trusted = [
        ...new Set(
          config.routes.flatMap((r) =>
            r.upstreams.includes(name) && r.auth?.oauth ? [r.auth.oauth.issuer] : [],
          ),
        ),
      ];
      if (t.token_endpoint !== undefined) {
        const insecure = insecureEndpointProblem(t.token_endpoint);
        if (insecure) problems.push({ path, message: insecure });
        issuers.set(name, trusted.length === 1 ? trusted[0] : undefined);
      } else if (trusted.length === 1) {
        issuers.set(name, trusted[0]);
      } else {
        problems.push({
          path,
          message:
            trusted.length === 0
              ? 'set token_endpoint: no route serving this upstream has auth.oauth whose issuer could name it'
              : `set token_endpoint: the routes serving this upstream trust different issuers (${trusted.join(', ')}), so which IdP exchanges tokens is ambiguous`,
        });
      }
    }
    let key: GatewaySigningKey | undefined;
    const file = config.identity.signing_key;
    if (file !== undefined) {
      try {
        key = await GatewaySigningKey.fromPemFile(resolve(opts.baseDir, file));
      } catch (err) {
        if (!(err instanceof SigningKeyError)) throw err;
        problems.push({ path: 'identity.signing_key', message: err.message });
      }
    } else if (signs) {
      key = await GatewaySigningKey.generate();
      opts.logger.info(
        { kid: key.kid },
        'identity assertions are signed with a key generated at start (set identity.signing_key to share one between instances)',
      );
    }
    if (problems.length > 0) throw new ConfigError(opts.file, problems);
    return new UpstreamIdentity(opts, issuers, key);
  }

  /** The JWKS served at /.well-known/jwks.json, when the gateway has a signing key. */
  jwks(): Record<string, unknown> | undefined {
    return this.key?.jwks();
  }

  /** The `iss` of the gateway's assertions. */
  get issuer(): string {
    return this.#config.identity.issuer ?? this.#config.public_url ?? GATEWAY_SUBJECT;
  }

  /** What an HTTP upstream's `auth` adds to its requests. */
  async forUpstream(name: string, uc: UpstreamConfig): Promise<UpstreamAuth> {
    const auth = 'auth' in uc ? uc.auth : undefined;
    if (!auth) return { headers: {}, credentials: undefined };
    if ('static' in auth) {
      const value = await resolveSecret(auth.static.value, this.#baseDir, this.#env);
      return { headers: { [auth.static.header.toLowerCase()]: value }, credentials: undefined };
    }
    if ('assertion' in auth) {
      const a = auth.assertion;
      return {
        headers: {},
        credentials: new AssertionCredentials({
          upstream: name,
          key: this.key!,
          issuer: this.issuer,
          audience: a.audience ?? name,
          header: a.header.toLowerCase(),
          ttlMs: a.ttl,
        }),
      };
    }
    const t = auth.token_exchange;
    return {
      headers: {},
      credentials: new TokenExchangeCredentials({
        upstream: name,
        tokenEndpoint: t.token_endpoint,
        issuer: this.#issuers.get(name),
        clientId: t.client_id,
        clientSecret: await resolveSecret(t.client_secret, this.#baseDir, this.#env),
        audience: t.audience,
        resource: t.resource,
        scope: t.scope,
        timeoutMs: IDP_TIMEOUT_MS,
        callersWithoutToken: t.callers_without_token,
        logger: this.#logger.child({ upstream: name }),
      }),
    };
  }
}
