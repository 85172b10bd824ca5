// Composition root: builds the running gateway from a loaded config. The only place that wires parts.

import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Server as HttpsServer } from 'node:https';
import { basename, dirname, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ApiKeyStore } from './auth/api-keys.ts';
import { type Authenticate, routeAuthenticator } from './auth/authenticate.ts';
import { OAuthValidator } from './auth/oauth.ts';
import { Catalog } from './catalog/catalog.ts';
import { CursorCodec } from './catalog/cursor.ts';
import { compileFilter } from './catalog/filter.ts';
import type { RouteCatalogConfig, UpstreamCuration } from './catalog/view.ts';
import type { LoadedConfig } from './config/load.ts';
import { ConfigError, resolveSecret } from './config/load.ts';
import type { Config, RouteConfig, UpstreamConfig } from './config/schema.ts';
import { Router } from './gateway/router.ts';
import { SessionRegistry } from './gateway/sessions.ts';
import { buildEdge } from './http/server.ts';
import { AclPolicy, aclGroups } from './policy/acl.ts';
import { PolicyChain } from './policy/chain.ts';
import { MemorySessionStore } from './state/session-store.ts';
import { type ExchangeSink, fanOut } from './telemetry/events.ts';
import { logSink } from './telemetry/log-sink.ts';
import { createLogger, type Logger } from './telemetry/logger.ts';
import { LegacySseUpstream } from './upstream/legacy-sse.ts';
import { StdioUpstream } from './upstream/stdio.ts';
import { StreamableHttpUpstream } from './upstream/streamable-http.ts';
import type { Upstream, UpstreamHealth } from './upstream/types.ts';
import { GATEWAY_INFO } from './version.ts';

export interface GatewayOptions {
  logger?: Logger;
  /** Exchange sinks (audit, metrics); none by default. */
  sink?: ExchangeSink;
}

export interface Gateway {
  readonly config: Config;
  readonly logger: Logger;
  /** Starts listening; resolves to the base URL (http://host:port). */
  start(): Promise<string>;
  /** Graceful stop: refuse new work, let in-flight finish within shutdown_timeout, close upstream sessions. */
  stop(): Promise<void>;
  readonly edge: FastifyInstance;
  /** The catalogue (started by start(); `validate --probe` starts it alone). */
  readonly catalog: Catalog;
}

export async function createGateway(loaded: LoadedConfig, options: GatewayOptions = {}): Promise<Gateway> {
  const { config, baseDir } = loaded;
  const logger = options.logger ?? createLogger(config.log.level, undefined, [config.api_keys.header]);
  const sinks: ExchangeSink[] = options.sink ? [options.sink] : [];
  if (logger.isLevelEnabled('debug')) sinks.push(logSink(logger));
  const sink = fanOut(sinks);

  const upstreams = new Map<string, Upstream>();
  for (const [name, uc] of Object.entries(config.upstreams)) {
    upstreams.set(name, await buildUpstream(name, uc, config, baseDir, loaded.env ?? process.env, logger));
  }

  const sessions = new SessionRegistry(
    new MemorySessionStore(),
    {
      idleTimeoutMs: config.sessions.idle_timeout,
      maxSessions: config.sessions.max_sessions,
      maxPerPrincipal: config.sessions.max_per_principal,
    },
    logger,
  );
  const catalog = new Catalog({
    upstreams,
    routes: config.routes.map((r) => routeCatalogConfig(r, config)),
    intervalMs: config.health.interval,
    graceMs: config.health.grace_period,
    logger,
    gatewayInfo: GATEWAY_INFO,
  });
  // When a route's lists change for a profile, its clients (with that profile) are told.
  catalog.onChange((route, profile, kinds) => {
    for (const s of sessions.of(route, profile)) s.notifyListChanged(kinds);
  });
  const cursors = new CursorCodec();
  const routers = config.routes.map(
    (r) =>
      new Router({
        path: r.path,
        upstreams: r.upstreams.map((n) => upstreams.get(n)!),
        catalog,
        cursors,
        pageSize: r.page_size,
        acl: r.acl ? new AclPolicy(r.acl) : undefined,
        chain: new PolicyChain([]),
        sink,
        sessions,
        logger,
        gatewayInfo: GATEWAY_INFO,
      }),
  );

  // API keys: opened only when a route asks for them (the store is a file next to the config).
  const keyStore = config.routes.some((r) => r.auth?.api_keys)
    ? new ApiKeyStore(resolve(baseDir, config.api_keys.store))
    : undefined;
  const authenticators = new Map<string, Authenticate>();
  const oauthRoutes = new Map<string, OAuthValidator>();
  let boundPort = config.listen.port;
  const baseUrl = () =>
    config.public_url ?? `${config.listen.tls ? 'https' : 'http'}://${config.listen.host}:${boundPort}`;
  for (const r of config.routes) {
    const auth = r.auth;
    if (!auth || (!auth.api_keys && !auth.oauth)) continue;
    let oauth: OAuthValidator | undefined;
    if (auth.oauth) {
      const resource =
        auth.oauth.audience ??
        (config.public_url ? `${config.public_url}${r.path === '/' ? '' : r.path}` : undefined);
      if (!resource) {
        throw new ConfigError(loaded.file, [
          {
            path: `routes.${r.path}.auth.oauth`,
            message: 'set public_url (or auth.oauth.audience): tokens must name this route as their audience',
          },
        ]);
      }
      if (auth.oauth.relaxed_audience) {
        logger.warn(
          { route: r.path },
          'relaxed_audience: tokens for any audience are accepted on this route (not MCP-conformant)',
        );
      }
      const jwksUri = auth.oauth.jwks_uri ?? (await discoverJwksUri(auth.oauth.issuer, loaded.file));
      const metadataPath = `/.well-known/oauth-protected-resource${r.path === '/' ? '' : r.path}`;
      oauth = new OAuthValidator({
        issuer: auth.oauth.issuer,
        jwksUri,
        resource,
        relaxedAudience: auth.oauth.relaxed_audience,
        leewayMs: auth.oauth.leeway,
        subjectClaim: auth.oauth.subject_claim,
        groupsClaim: auth.oauth.groups_claim,
        agentClaim: auth.oauth.agent_claim,
        scopes: auth.oauth.scopes,
        metadataUrl: () => `${baseUrl()}${metadataPath}`,
      });
      oauthRoutes.set(metadataPath, oauth);
    }
    authenticators.set(
      r.path,
      routeAuthenticator({
        keys: auth.api_keys && keyStore ? { store: keyStore, header: config.api_keys.header } : undefined,
        oauth,
        requiredGroups: auth.groups_required && r.acl ? aclGroups(r.acl) : undefined,
      }),
    );
  }

  const tls = config.listen.tls;
  const readTls = async () =>
    tls
      ? { cert: await readFile(resolve(baseDir, tls.cert)), key: await readFile(resolve(baseDir, tls.key)) }
      : undefined;
  const https = await readTls();

  let draining = false;
  const edge = buildEdge({
    logger,
    listenHost: config.listen.host,
    port: config.listen.port,
    ...(https ? { https } : {}),
    publicUrl: config.public_url,
    allowedOrigins: config.allowed_origins,
    allowedHosts: config.allowed_hosts,
    maxBodyBytes: config.limits.max_body_bytes,
    routers,
    authenticators,
    protectedResources: oauthRoutes,
    credentialHeaders: [config.api_keys.header],
    sessions,
    sink,
    upstreamHealth: () => {
      const out: Record<string, UpstreamHealth> = {};
      for (const [n, u] of upstreams) out[n] = u.health();
      return out;
    },
    isDraining: () => draining,
  });

  const watchers: FSWatcher[] = [];

  return {
    config,
    logger,
    edge,
    catalog,
    async start() {
      const address = await edge.listen({ host: config.listen.host, port: config.listen.port });
      const bound = edge.server.address();
      if (bound && typeof bound === 'object') boundPort = bound.port;
      catalog.start();
      if (tls) {
        // Certificate rotation: reload the pair whenever either file changes.
        const reload = async () => {
          try {
            const next = await readTls();
            (edge.server as HttpsServer).setSecureContext(next!);
            logger.info('TLS certificate reloaded');
          } catch (err) {
            logger.error(
              { err: (err as Error).message },
              'TLS certificate reload failed; keeping the previous one',
            );
          }
        };
        // Watch the directories, not the files: rotation by rename (cert-manager, certbot) replaces the
        // file, and a watch on the old one would never fire again.
        let pending: NodeJS.Timeout | undefined;
        const files = [resolve(baseDir, tls.cert), resolve(baseDir, tls.key)];
        for (const dir of new Set(files.map((f) => dirname(f)))) {
          const names = new Set(files.filter((f) => dirname(f) === dir).map((f) => basename(f)));
          const w = watch(dir, (_event, name) => {
            if (name !== null && !names.has(String(name))) return;
            clearTimeout(pending);
            pending = setTimeout(() => void reload(), 200);
          });
          w.unref();
          watchers.push(w);
        }
      }
      return address.replace('[::1]', 'localhost');
    },
    async stop() {
      if (draining) return;
      draining = true;
      for (const w of watchers) w.close();
      const deadline = new Promise<'timeout'>((r) =>
        setTimeout(() => r('timeout'), config.shutdown_timeout).unref(),
      );
      // Stop accepting; GET streams never end on their own, so end them; let in-flight requests finish.
      const closing = edge.close();
      sessions.endStreams();
      // Keep-alive connections whose last answer went out after close() would linger until the deadline.
      const reaper = setInterval(() => edge.server.closeIdleConnections(), 50);
      const closed = await Promise.race([closing.then(() => 'closed' as const), deadline]);
      clearInterval(reaper);
      if (closed === 'timeout') {
        logger.warn(
          { timeoutMs: config.shutdown_timeout },
          'shutdown deadline reached; closing remaining connections',
        );
        edge.server.closeAllConnections();
      }
      // Only now end the sessions, which ends the upstream sessions too (DELETE).
      await sessions.closeAll();
      await catalog.stop();
      await Promise.allSettled([...upstreams.values()].map((u) => u.close()));
      keyStore?.close();
    },
  };
}

async function buildUpstream(
  name: string,
  uc: UpstreamConfig,
  config: Config,
  baseDir: string,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<Upstream> {
  const log = logger.child({ upstream: name });
  if (uc.type === 'stdio') {
    const childEnv: Record<string, string> = {};
    for (const [k, v] of Object.entries(uc.env)) childEnv[k] = await resolveSecret(v, baseDir, env);
    return new StdioUpstream({
      name,
      command: uc.command,
      args: uc.args,
      cwd: resolve(baseDir, uc.cwd ?? '.'),
      env: childEnv,
      mode: uc.mode,
      maxProcesses: uc.max_processes,
      startupTimeoutMs: uc.startup_timeout,
      requestTimeoutMs: uc.request_timeout,
      maxConcurrency: uc.max_concurrency,
      maxMessageBytes: config.limits.max_response_bytes,
      logger: log,
    });
  }
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(uc.headers))
    headers[k.toLowerCase()] = await resolveSecret(v, baseDir, env);
  const file = (p: string | undefined) =>
    p ? readFile(resolve(baseDir, p), 'utf8') : Promise.resolve(undefined);
  const tls = uc.tls
    ? Object.fromEntries(
        Object.entries({
          ca: await file(uc.tls.ca),
          cert: await file(uc.tls.cert),
          key: await file(uc.tls.key),
          servername: uc.tls.server_name,
        }).filter(([, v]) => v !== undefined),
      )
    : undefined;
  const common = {
    name,
    url: uc.url,
    headers,
    connectTimeoutMs: uc.connect_timeout,
    requestTimeoutMs: uc.request_timeout,
    maxConcurrency: uc.max_concurrency,
    maxMessageBytes: config.limits.max_response_bytes,
    ...(tls ? { tls } : {}),
    logger: log,
  };
  if (uc.type === 'sse') return new LegacySseUpstream(common);
  return new StreamableHttpUpstream({ ...common, gatewayInfo: GATEWAY_INFO });
}

/** A route's catalogue rules, compiled once from config. */
function routeCatalogConfig(r: RouteConfig, config: Config): RouteCatalogConfig {
  const curation = new Map<string, UpstreamCuration>();
  for (const name of r.upstreams) {
    const u = config.upstreams[name]!;
    curation.set(name, {
      tools: compileFilter(u.tools),
      prompts: compileFilter(u.prompts),
      overrides: new Map(Object.entries(u.tools?.overrides ?? {})),
    });
  }
  return {
    path: r.path,
    upstreams: r.upstreams,
    tools: { prefix: r.tools.prefix, filter: compileFilter(r.tools) },
    prompts: { prefix: r.prompts.prefix, filter: compileFilter(r.prompts) },
    resources: { prefix: r.resources.prefix },
    curation,
  };
}

/** The issuer's JWKS URI from its metadata (OpenID Connect, then RFC 8414); a clear error when it cannot be had. */
async function discoverJwksUri(issuer: string, file: string): Promise<string> {
  const base = issuer.replace(/\/$/, '');
  for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
    try {
      const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(5_000) });
      if (!res.ok) continue;
      const doc = (await res.json()) as { jwks_uri?: unknown };
      if (typeof doc.jwks_uri === 'string') return doc.jwks_uri;
    } catch {
      // try the next form
    }
  }
  throw new ConfigError(file, [
    {
      path: 'auth.oauth',
      message: `cannot discover the JWKS of ${issuer} (its metadata is unreachable or has no jwks_uri); set auth.oauth.jwks_uri`,
    },
  ]);
}
