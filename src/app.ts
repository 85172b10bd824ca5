// Composition root: builds the running gateway from a loaded config. The only place that wires parts.

import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Server as HttpsServer } from 'node:https';
import { basename, dirname, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { AuditLog } from './audit/audit-log.ts';
import { openKeyStore } from './auth/api-keys.ts';
import { type Authenticate, routeAuthenticator } from './auth/authenticate.ts';
import { OAuthValidator, type RequestOrigin } from './auth/oauth.ts';
import { UpstreamIdentity } from './auth/upstream-identity.ts';
import { Catalog } from './catalog/catalog.ts';
import { CursorCodec } from './catalog/cursor.ts';
import { compileFilter } from './catalog/filter.ts';
import type { RouteCatalogConfig, UpstreamCuration } from './catalog/view.ts';
import type { LoadedConfig } from './config/load.ts';
import { ConfigError, resolveSecret } from './config/load.ts';
import type { Config, RouteConfig, UpstreamConfig } from './config/schema.ts';
import { Router } from './gateway/router.ts';
import { SessionRegistry } from './gateway/sessions.ts';
import { buildAdminListener, registerAdminApi } from './http/admin.ts';
import { buildEdge } from './http/server.ts';
import { type AclConfig, AclPolicy, type AclRule, aclGroups } from './policy/acl.ts';
import { PolicyChain } from './policy/chain.ts';
import { MemorySessionStore } from './state/session-store.ts';
import { type ExchangeSink, fanOut } from './telemetry/events.ts';
import { logSink } from './telemetry/log-sink.ts';
import { createLogger, type Logger } from './telemetry/logger.ts';
import { GatewayMetrics, serveMetrics } from './telemetry/metrics.ts';
import { resourceTemplateLabeller } from './telemetry/resource-templates.ts';
import { startTracing } from './telemetry/tracing.ts';
import { LegacySseUpstream } from './upstream/legacy-sse.ts';
import { loadOpenApi, toolsFromOpenApi } from './upstream/rest/openapi.ts';
import { type CompiledRestTool, compileRestTool } from './upstream/rest/tools.ts';
import { RestUpstream } from './upstream/rest/upstream.ts';
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
  /** The admin API's own listener (admin.listen), once started: http://host:port. */
  readonly adminUrl: string | undefined;
  /** The audit log (its stats, stores, purge), unless audit.enabled is false. */
  readonly audit: AuditLog | undefined;
}

export async function createGateway(loaded: LoadedConfig, options: GatewayOptions = {}): Promise<Gateway> {
  const { config, baseDir } = loaded;
  const logger = options.logger ?? createLogger(config.log.level, undefined, [config.api_keys.header]);
  const sinks: ExchangeSink[] = options.sink ? [options.sink] : [];
  if (logger.isLevelEnabled('debug')) sinks.push(logSink(logger));
  const metrics = config.metrics.enabled
    ? new GatewayMetrics({
        maxLabelValues: config.metrics.max_label_values,
        maxLabelLength: config.metrics.max_label_length,
        maxSeries: config.metrics.max_series,
        resourceUriPrefix: config.metrics.resource_uri_prefix,
      })
    : undefined;
  if (metrics) sinks.push(metrics);
  // The audit log (on by default: SQLite next to the config); sinks open at start().
  const audit = config.audit.enabled
    ? await AuditLog.create({
        config: config.audit,
        routes: config.routes,
        baseDir,
        resolveSecret: (ref) => resolveSecret(ref, baseDir, loaded.env ?? process.env),
        logger: logger.child({ component: 'audit' }),
      })
    : undefined;
  if (audit) sinks.push(audit);
  const sink = fanOut(sinks);

  // Identity to upstreams (upstream `auth`): the gateway's signing key, token exchange, static credentials.
  const identity = await UpstreamIdentity.build({
    config,
    baseDir,
    env: loaded.env ?? process.env,
    file: loaded.file,
    logger,
  });
  const upstreams = new Map<string, Upstream>();
  for (const [name, uc] of Object.entries(config.upstreams)) {
    upstreams.set(
      name,
      await buildUpstream(
        name,
        uc,
        config,
        baseDir,
        loaded.env ?? process.env,
        logger,
        identity,
        loaded.file,
      ),
    );
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
  // Gauges read at scrape time; resource URIs labelled by the route's templates (the default profile's view).
  metrics?.setSources({
    routes: config.routes.map((r) => r.path),
    upstreams: () => [...upstreams].map(([n, u]) => [n, u.health()] as const),
    sessionsByRoute: () => sessions.countByRoute(),
    stdioProcesses: () =>
      [...upstreams.values()]
        .filter((u): u is StdioUpstream => u instanceof StdioUpstream)
        .map((u) => [u.name, u.processCount] as const),
    resourceLabel: resourceTemplateLabeller((route) => catalog.view(route, '')),
  });
  if (audit) metrics?.setAuditStats(() => audit.stats());
  const cursors = new CursorCodec();
  // OpenTelemetry spans (tracing.enabled); without it a client's trace context is still passed on.
  const tc = config.tracing;
  const tracing = tc.enabled
    ? await startTracing({
        endpoint: tc.endpoint,
        headers: Object.fromEntries(
          await Promise.all(
            Object.entries(tc.headers).map(
              async ([k, v]) => [k, await resolveSecret(v, baseDir, loaded.env ?? process.env)] as const,
            ),
          ),
        ),
        serviceName: tc.service_name,
        serviceVersion: GATEWAY_INFO.version,
        sampleRatio: tc.sample_ratio,
        includeUser: tc.include_user,
        exportDelayMs: tc.export_delay,
        logger: logger.child({ component: 'tracing' }),
      })
    : undefined;
  const routers = config.routes.map(
    (r) =>
      new Router({
        path: r.path,
        upstreams: r.upstreams.map((n) => upstreams.get(n)!),
        catalog,
        cursors,
        pageSize: r.page_size,
        acl: routeAcl(r, config, upstreams),
        stepUpChallenge:
          r.acl?.deny_response === 'step_up'
            ? (scopes: readonly string[]) => stepUpChallenge(oauthByRoute.get(r.path), scopes)
            : undefined,
        chain: new PolicyChain([]),
        sink,
        sessions,
        logger,
        gatewayInfo: GATEWAY_INFO,
        tracing,
      }),
  );

  // API keys: opened only when a route or the admin API needs them (a file next to the config, or PostgreSQL).
  const keyStore =
    config.admin || config.routes.some((r) => r.auth?.api_keys)
      ? await openKeyStore(config.api_keys.store, baseDir, {
          cacheTtlMs: config.api_keys.cache_ttl,
          logger: logger.child({ component: 'api-keys' }),
        })
      : undefined;
  const authenticators = new Map<string, Authenticate>();
  const oauthRoutes = new Map<string, OAuthValidator>();
  const oauthByRoute = new Map<string, OAuthValidator>();
  let boundPort = config.listen.port;
  const baseUrl = () =>
    config.public_url ?? `${config.listen.tls ? 'https' : 'http'}://${config.listen.host}:${boundPort}`;
  // Behind a trusted proxy without public_url, a challenge names the URL the client used (X-Forwarded-*).
  const trustsProxy =
    config.trust_proxy === true || (Array.isArray(config.trust_proxy) && config.trust_proxy.length > 0);
  const requestBase = (origin?: RequestOrigin) =>
    !config.public_url &&
    trustsProxy &&
    origin &&
    (origin.protocol === 'http' || origin.protocol === 'https') &&
    /^[\w.:[\]-]+$/.test(origin.host)
      ? `${origin.protocol}://${origin.host}`
      : baseUrl();
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
      const introspection = auth.oauth.introspection;
      // Every token introspected: the JWKS is not needed.
      const jwksUri =
        auth.oauth.jwks_uri ??
        (introspection?.tokens === 'all' ? undefined : await discoverJwksUri(auth.oauth.issuer, loaded.file));
      const introspectionEndpoint =
        introspection &&
        (introspection.endpoint ??
          (await discoverEndpoint(
            auth.oauth.issuer,
            'introspection_endpoint',
            'introspection.endpoint',
            loaded.file,
          )));
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
        tenantClaim: auth.oauth.tenant_claim,
        claims: auth.oauth.claims,
        tokenTypes: auth.oauth.token_types,
        requireTyp: auth.oauth.require_typ,
        introspection:
          introspection && introspectionEndpoint
            ? {
                endpoint: introspectionEndpoint,
                clientId: introspection.client_id,
                clientSecret: await resolveSecret(
                  introspection.client_secret,
                  baseDir,
                  loaded.env ?? process.env,
                ),
                tokens: introspection.tokens,
                cacheTtlMs: introspection.cache_ttl,
              }
            : undefined,
        scopes: auth.oauth.scopes,
        metadataUrl: (origin) => `${requestBase(origin)}${metadataPath}`,
        logger: logger.child({ route: r.path }),
      });
      oauthRoutes.set(metadataPath, oauth);
      oauthByRoute.set(r.path, oauth);
    }
    authenticators.set(
      r.path,
      routeAuthenticator({
        keys: auth.api_keys && keyStore ? { store: keyStore, header: config.api_keys.header } : undefined,
        oauth,
        requiredGroups: auth.groups_required ? aclGroups(routeAclConfig(r, config, upstreams)) : undefined,
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
    trustProxy: config.trust_proxy,
    allowedOrigins: config.allowed_origins,
    allowedHosts: config.allowed_hosts,
    maxBodyBytes: config.limits.max_body_bytes,
    routers,
    authenticators,
    protectedResources: oauthRoutes,
    jwks: identity.jwks(),
    credentialHeaders: [config.api_keys.header],
    sessions,
    sink,
    upstreamHealth: () => {
      const out: Record<string, UpstreamHealth> = {};
      for (const [n, u] of upstreams) out[n] = u.health();
      return out;
    },
    isDraining: () => draining,
    auditGate: audit ? (route: string) => audit.refusal(route) : undefined,
    latencyHeaders: config.metrics.latency_headers,
  });
  if (metrics && config.metrics.listener === 'main') {
    serveMetrics(edge, config.metrics.path, metrics);
    // /metrics needs no credential: it names routes, upstreams and tools. Fine on loopback (the default).
    if (!/^(127\.|localhost$|::1$|\[::1\]$)/.test(config.listen.host))
      logger.warn(
        { path: config.metrics.path, host: config.listen.host },
        '/metrics is served without a credential on a non-loopback listener (it names routes, upstreams and tools); consider metrics.listener: admin with admin.listen on an internal address',
      );
  }

  // The admin API: under /admin on the main listener, or on its own listener (then not on the main one).
  let adminListener: FastifyInstance | undefined;
  let adminUrl: string | undefined;
  if (config.admin && keyStore) {
    const ao = config.admin.oauth;
    const adminDeps = {
      keys: keyStore,
      keyHeader: config.api_keys.header,
      oauth: ao
        ? {
            groups: ao.groups,
            validator: new OAuthValidator({
              issuer: ao.issuer,
              jwksUri: ao.jwks_uri ?? (await discoverJwksUri(ao.issuer, loaded.file)),
              resource: ao.audience,
              relaxedAudience: false,
              leewayMs: 30_000,
              subjectClaim: 'sub',
              groupsClaim: ao.groups_claim,
              agentClaim: undefined,
              scopes: [],
              metadataUrl: () => `${baseUrl()}/admin`,
            }),
          }
        : undefined,
      catalog,
      routes: config.routes,
      upstreamTypes: Object.fromEntries(Object.entries(config.upstreams).map(([n, u]) => [n, u.type])),
      upstreamHealth: () => {
        const out: Record<string, UpstreamHealth> = {};
        for (const [n, u] of upstreams) out[n] = u.health();
        return out;
      },
      sessionsByRoute: () => sessions.countByRoute(),
      audit,
      logger: logger.child({ component: 'admin' }),
    };
    if (config.admin.listen)
      adminListener = buildAdminListener(adminDeps, { maxBodyBytes: config.limits.max_body_bytes });
    else registerAdminApi(edge, adminDeps);
  }
  if (metrics && config.metrics.listener === 'admin' && adminListener)
    serveMetrics(adminListener, config.metrics.path, metrics);

  const watchers: FSWatcher[] = [];

  return {
    config,
    logger,
    edge,
    catalog,
    audit,
    get adminUrl() {
      return adminUrl;
    },
    async start() {
      const address = await edge.listen({ host: config.listen.host, port: config.listen.port });
      const bound = edge.server.address();
      if (bound && typeof bound === 'object') boundPort = bound.port;
      catalog.start();
      audit?.start();
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
      if (adminListener && config.admin?.listen) {
        adminUrl = (
          await adminListener.listen({ host: config.admin.listen.host, port: config.admin.listen.port })
        ).replace('[::1]', 'localhost');
        logger.info({ url: `${adminUrl}/admin/` }, 'admin API listening');
      }
      return address.replace('[::1]', 'localhost');
    },
    async stop() {
      if (draining) return;
      draining = true;
      for (const w of watchers) w.close();
      await adminListener?.close();
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
      await keyStore?.close();
      // Spans still queued are exported (bounded: an unreachable collector never holds up the stop).
      await tracing?.shutdown(2_000);
      // Last: every exchange above has emitted its record; what the sinks cannot take now is spooled.
      await audit?.stop();
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
  identity: UpstreamIdentity,
  configFile: string,
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
  const auth = await identity.forUpstream(name, uc);
  Object.assign(headers, auth.headers);
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
  if (uc.type === 'rest') {
    const query: Record<string, string> = {};
    for (const [k, v] of Object.entries(uc.query)) query[k] = await resolveSecret(v, baseDir, env);
    const { baseUrl, tools, acls } = await restTools(name, uc, baseDir, log, configFile);
    return new RestUpstream({
      name,
      baseUrl,
      headers,
      query,
      tools,
      toolAcls: acls,
      credentials: auth.credentials,
      connectTimeoutMs: uc.connect_timeout,
      requestTimeoutMs: uc.request_timeout,
      maxConcurrency: uc.max_concurrency,
      maxResponseBytes: config.limits.max_response_bytes,
      ...(tls ? { tls } : {}),
      gatewayInfo: GATEWAY_INFO,
      logger: log,
    });
  }
  const common = {
    name,
    url: uc.url,
    headers,
    connectTimeoutMs: uc.connect_timeout,
    requestTimeoutMs: uc.request_timeout,
    maxConcurrency: uc.max_concurrency,
    maxMessageBytes: config.limits.max_response_bytes,
    ...(tls ? { tls } : {}),
    credentials: auth.credentials,
    logger: log,
  };
  if (uc.type === 'sse') return new LegacySseUpstream(common);
  return new StreamableHttpUpstream({ ...common, gatewayInfo: GATEWAY_INFO });
}

type RestUpstreamConfig = Extract<UpstreamConfig, { type: 'rest' }>;

/**
 * A REST upstream's tools: generated from its OpenAPI document (operations that cannot be made tools are
 * skipped and logged), then the ones declared by hand. A broken document or name clash stops the start.
 */
async function restTools(
  name: string,
  uc: RestUpstreamConfig,
  baseDir: string,
  log: Logger,
  file: string,
): Promise<{ baseUrl: string; tools: CompiledRestTool[]; acls: [string, AclRule][] }> {
  const problem = (path: string, message: string) =>
    new ConfigError(file, [{ path: `upstreams.${name}.${path}`, message }]);
  const tools: CompiledRestTool[] = [];
  const acls: [string, AclRule][] = [];
  let baseUrl = uc.base_url;
  if (uc.openapi && !uc.base_url && /^http:\/\//i.test(uc.openapi.spec)) {
    // A document fetched over plain http could be swapped in transit, and it would choose where the
    // upstream's credentials go: without base_url, only https (or loopback) documents are trusted for it.
    const host = new URL(uc.openapi.spec).hostname;
    if (!(host === 'localhost' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host)))
      throw problem(
        'base_url',
        `set base_url: ${uc.openapi.spec} is plain http, so its servers cannot decide where requests (and their credentials) go`,
      );
  }
  if (uc.openapi) {
    let generated: ReturnType<typeof toolsFromOpenApi>;
    try {
      generated = toolsFromOpenApi(await loadOpenApi(uc.openapi.spec, baseDir), uc.openapi);
    } catch (err) {
      throw problem('openapi.spec', err instanceof Error ? err.message : String(err));
    }
    for (const note of generated.notes) log.warn({ openapi: uc.openapi.spec }, note);
    for (const spec of generated.tools) {
      try {
        tools.push(compileRestTool(spec));
        if (spec.acl) acls.push([spec.name, spec.acl]);
      } catch (err) {
        log.warn(
          { openapi: uc.openapi.spec },
          `operation skipped: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
    }
    if (!baseUrl && generated.baseUrl && /^https?:\/\//.test(generated.baseUrl)) baseUrl = generated.baseUrl;
  }
  if (!baseUrl) throw problem('base_url', 'set base_url: the OpenAPI document gives no absolute server URL');
  const names = new Set(tools.map((t) => t.tool.name as string));
  for (const t of uc.tools) {
    if (names.has(t.name))
      throw problem('tools', `tool "${t.name}" is also generated from the OpenAPI document`);
    tools.push(compileRestTool(t));
    if (t.acl) acls.push([t.name, t.acl]);
  }
  return { baseUrl, tools, acls };
}

/** A route's access rules: its own, and the ACLs on the tool entries of the upstreams it serves. */
function routeAclConfig(r: RouteConfig, config: Config, upstreams: ReadonlyMap<string, Upstream>): AclConfig {
  const toolEntries: Record<string, AclRule> = {};
  for (const name of r.upstreams) {
    const u = config.upstreams[name];
    const up = upstreams.get(name);
    if (up instanceof RestUpstream || u?.type === 'rest') {
      // Declared with the tool, or given to a generated one by an OpenAPI override (by its final name).
      if (up instanceof RestUpstream)
        for (const [tool, acl] of up.options.toolAcls) toolEntries[`${name}:${tool}`] = acl;
      continue;
    }
    for (const [tool, o] of Object.entries(u?.tools?.overrides ?? {}))
      if (o.acl) toolEntries[`${name}:${tool}`] = o.acl;
  }
  return { ...r.acl, toolEntries };
}

function routeAcl(
  r: RouteConfig,
  config: Config,
  upstreams: ReadonlyMap<string, Upstream>,
): AclPolicy | undefined {
  const acl = new AclPolicy(routeAclConfig(r, config, upstreams));
  return acl.empty ? undefined : acl;
}

/** RFC 6750 §3.1 / MCP 2025-11-25 step-up: 403 insufficient_scope, naming the scopes to ask for. */
function stepUpChallenge(oauth: OAuthValidator | undefined, scopes: readonly string[]): string {
  const metadata = oauth ? `, resource_metadata="${oauth.options.metadataUrl()}"` : '';
  return `Bearer error="insufficient_scope", scope="${scopes.join(' ')}"${metadata}, error_description="a scope this call needs is missing from the token"`;
}

/** A route's catalogue rules, compiled once from config. */
function routeCatalogConfig(r: RouteConfig, config: Config): RouteCatalogConfig {
  const curation = new Map<string, UpstreamCuration>();
  for (const name of r.upstreams) {
    const u = config.upstreams[name]!;
    if (u.type === 'rest') {
      // A REST upstream's tools are curated where they are declared.
      curation.set(name, { tools: () => true, prompts: () => true, overrides: new Map() });
      continue;
    }
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

/** The issuer's JWKS URI from its metadata; a clear error when it cannot be had. */
function discoverJwksUri(issuer: string, file: string): Promise<string> {
  return discoverEndpoint(issuer, 'jwks_uri', 'jwks_uri', file);
}

/** An endpoint of the issuer from its metadata (OpenID Connect, then RFC 8414); a clear error when it cannot be had. */
async function discoverEndpoint(
  issuer: string,
  field: 'jwks_uri' | 'introspection_endpoint',
  setting: string,
  file: string,
): Promise<string> {
  const base = issuer.replace(/\/$/, '');
  for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
    try {
      const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(5_000) });
      if (!res.ok) continue;
      const doc = (await res.json()) as Record<string, unknown>;
      const value = doc[field];
      if (typeof value === 'string') return value;
    } catch {
      // try the next form
    }
  }
  throw new ConfigError(file, [
    {
      path: 'auth.oauth',
      message: `cannot discover the ${field} of ${issuer} (its metadata is unreachable or has no ${field}); set auth.oauth.${setting}`,
    },
  ]);
}
