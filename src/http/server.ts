// The HTTP edge: one fastify instance with the MCP endpoints of every route, health, and the error
// mapping that turns every failure into a precise status and JSON-RPC error body.

import { randomUUID } from 'node:crypto';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Authenticate } from '../auth/authenticate.ts';
import type { Router } from '../gateway/router.ts';
import type { SessionRegistry } from '../gateway/sessions.ts';
import { Errors, GatehouseError, GatewayCode } from '../mcp/errors.ts';
import { errorResponse } from '../mcp/jsonrpc.ts';
import type { ExchangeSink } from '../telemetry/events.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { UpstreamHealth } from '../upstream/types.ts';
import { buildOriginPolicy } from './guards.ts';
import { legacyPaths, registerLegacySseEndpoint } from './legacy-sse-endpoint.ts';
import { recordedAtEdge, registerMcpEndpoint } from './mcp-endpoint.ts';
import { contentLength } from './request.ts';

export interface EdgeOptions {
  logger: Logger;
  listenHost: string;
  port: number;
  https?: { cert: string | Buffer; key: string | Buffer };
  publicUrl: string | undefined;
  /** fastify's trustProxy: which peers' X-Forwarded-* headers count (request.protocol, .host, .ip). */
  trustProxy?: boolean | string[];
  allowedOrigins: string[] | undefined;
  allowedHosts: string[] | undefined;
  maxBodyBytes: number;
  routers: readonly Router[];
  /** Per route path, how callers are authenticated (routes without an entry are open). */
  authenticators: ReadonlyMap<string, Authenticate>;
  /** RFC 9728 metadata documents, by their /.well-known path. */
  protectedResources: ReadonlyMap<string, { metadata(): Record<string, unknown> }>;
  /** The public keys of the gateway's identity assertions, served at /.well-known/jwks.json. */
  jwks?: Record<string, unknown> | undefined;
  /** Headers carrying credentials besides Authorization (allowed in CORS preflights). */
  credentialHeaders: readonly string[];
  sessions: SessionRegistry;
  sink: ExchangeSink;
  /** Health of every upstream, for /readyz. */
  upstreamHealth(): Record<string, UpstreamHealth>;
  isDraining(): boolean;
  /** `audit: required`: the refusal (503) of a new call on a route while audit records cannot be kept. */
  auditGate?: ((route: string) => GatehouseError | undefined) | undefined;
  /** X-Gatehouse-Latency / X-Gatehouse-Upstream-Latency on JSON answers (metrics.latency_headers). */
  latencyHeaders?: boolean;
}

const CORS_ALLOW_HEADERS =
  'content-type, accept, authorization, mcp-session-id, mcp-protocol-version, last-event-id';
const CORS_EXPOSE_HEADERS =
  'mcp-session-id, www-authenticate, x-gatehouse-latency, x-gatehouse-upstream-latency';

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

export function buildEdge(opts: EdgeOptions): FastifyInstance {
  const bootId = randomUUID().slice(0, 8);
  const allowHeaders = [
    CORS_ALLOW_HEADERS,
    ...opts.credentialHeaders.filter((h) => h.toLowerCase() !== 'authorization'),
  ].join(', ');
  let requestCounter = 0;
  const app = Fastify({
    loggerInstance: opts.logger,
    // Per-request log lines cost more than the relay itself; failures are logged where they happen.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    // No pino child per request (a measurable cost on the hot path): request-path log lines carry the
    // request id explicitly instead.
    childLoggerFactory: (logger) => logger,
    bodyLimit: opts.maxBodyBytes,
    exposeHeadRoutes: false,
    // Request ids for logs: unique per process and cheap (no random bytes per request).
    genReqId: () => `${bootId}-${(++requestCounter).toString(36)}`,
    // While draining, the gateway answers itself (see the onRequest hook): /readyz says 'draining'.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    trustProxy: opts.trustProxy ?? false,
    ...(opts.https ? { https: { cert: opts.https.cert, key: opts.https.key } } : {}),
  }) as unknown as FastifyInstance;

  // Bodies arrive as text: the MCP endpoint parses them itself to answer with precise JSON-RPC errors.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: opts.maxBodyBytes }, (_req, body, done) =>
    done(null, body),
  );

  const policy = buildOriginPolicy({
    listenHost: opts.listenHost,
    port: () => {
      const a = app.server.address();
      return a && typeof a === 'object' ? a.port : opts.port;
    },
    tls: Boolean(opts.https),
    publicUrl: opts.publicUrl,
    allowedOrigins: opts.allowedOrigins,
    allowedHosts: opts.allowedHosts,
  });
  // The route of each MCP URL (the endpoint and its legacy paths): refusals answered below are audited too.
  const routeOfUrl = new Map<string, string>();
  for (const r of opts.routers) {
    const legacy = legacyPaths(r.path);
    for (const url of [r.path, legacy.sse, legacy.messages]) routeOfUrl.set(url, r.path);
  }
  const mcpPaths = new Set(
    opts.routers.flatMap((r) => [r.path, legacyPaths(r.path).sse, legacyPaths(r.path).messages]),
  );

  // CORS headers only for allowed origins: a refusal must not grant a foreign page read access either.
  const corsHeaders = (req: FastifyRequest): Record<string, string> => {
    const origin = req.headers.origin;
    if (!origin || !policy.originAllowed(origin)) return NO_HEADERS;
    return {
      'access-control-allow-origin': origin,
      'access-control-expose-headers': CORS_EXPOSE_HEADERS,
      vary: 'Origin',
    };
  };

  // DNS-rebinding defence on every MCP endpoint, before anything else is looked at.
  // (A callback hook: an async one costs a promise per request on the hot path.)
  app.addHook('onRequest', (req, reply, done) => {
    if (opts.isDraining()) {
      // Connections end after this answer; new work is refused, health keeps answering.
      reply.header('connection', 'close');
      const url = req.routeOptions.url;
      if (url !== '/readyz' && url !== '/healthz') {
        return done(
          Errors.shuttingDown('Service Unavailable: the gateway is shutting down; retry on another instance'),
        );
      }
    }
    if (!mcpPaths.has(req.routeOptions.url ?? '')) return done();
    if (!policy.hostAllowed(req.headers.host)) {
      return done(
        Errors.forbiddenHost(
          `Forbidden: Host ${JSON.stringify(req.headers.host ?? '')} is not allowed (configure allowed_hosts)`,
        ),
      );
    }
    if (!policy.originAllowed(req.headers.origin)) {
      return done(
        Errors.forbiddenOrigin(
          `Forbidden: Origin ${JSON.stringify(req.headers.origin)} is not allowed (configure allowed_origins)`,
        ),
      );
    }
    done();
  });

  app.setErrorHandler((err: FastifyError | GatehouseError, req, reply) => {
    let e: GatehouseError;
    if (err instanceof GatehouseError) e = err;
    else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      e = Errors.payloadTooLarge(
        `Payload Too Large: the body exceeds ${opts.maxBodyBytes} bytes (limits.max_body_bytes)`,
      );
    } else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || err.code === 'FST_ERR_CTP_EMPTY_TYPE') {
      e = Errors.unsupportedMediaType('Unsupported Media Type: Content-Type must be application/json');
    } else if (typeof err.statusCode === 'number' && err.statusCode < 500) {
      e = new GatehouseError(
        'ERR_BAD_REQUEST',
        GatewayCode.Transport,
        err.statusCode,
        `Bad Request: ${err.message}`,
      );
    } else {
      req.log.error({ err, requestId: req.id }, 'unhandled error');
      e = Errors.internal(
        'Internal error: the gateway failed to handle this request; see its log for the request id',
      );
    }
    const route = routeOfUrl.get(req.routeOptions.url ?? '');
    if (route !== undefined && !recordedAtEdge(err)) {
      // Refused before an endpoint recorded it (origin, size, media type, legacy transport…): one event too.
      const length = req.headers['content-length'];
      const ua = req.headers['user-agent'];
      opts.sink.emit({
        startedAt: Date.now() - reply.elapsedTime,
        route,
        sessionId: undefined,
        subject: undefined,
        mcpMethod: '',
        upstream: undefined,
        target: undefined,
        outcome: 'error',
        httpStatus: e.httpStatus === 200 ? 400 : e.httpStatus,
        rpcCode: e.rpcCode,
        durationMs: reply.elapsedTime,
        upstreamMs: undefined,
        requestId: String(req.id),
        reason: e.message,
        clientIp: req.ip,
        userAgent: Array.isArray(ua) ? ua[0] : ua,
        requestBytes: contentLength(length),
      });
    }
    if (e.httpStatus >= 500)
      req.log.warn({ requestId: req.id, code: e.code, msg: e.message }, 'request failed');
    if (e.headers) void reply.headers(e.headers);
    else if (e.httpStatus === 401) void reply.header('www-authenticate', 'Bearer realm="gatehouse"');
    void reply
      .code(e.httpStatus === 200 ? 400 : e.httpStatus)
      .headers(corsHeaders(req))
      .type('application/json')
      .send(JSON.stringify(errorResponse(null, e.rpcCode, e.message)));
  });

  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .type('application/json')
      .send(
        JSON.stringify({
          error: 'not_found',
          message: `No route for ${req.method} ${req.url.split('?')[0]}`,
        }),
      );
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  if (opts.jwks) {
    const jwks = JSON.stringify(opts.jwks);
    // Upstreams verify the gateway's assertions with these keys; they change only with the key file.
    app.get('/.well-known/jwks.json', (_req, reply) => {
      void reply.header('cache-control', 'public, max-age=300').type('application/json').send(jwks);
    });
  }
  for (const [path, resource] of opts.protectedResources) app.get(path, async () => resource.metadata());
  // The root form answers for a gateway with one protected route.
  if (
    opts.protectedResources.size === 1 &&
    !opts.protectedResources.has('/.well-known/oauth-protected-resource')
  ) {
    const only = [...opts.protectedResources.values()][0]!;
    app.get('/.well-known/oauth-protected-resource', async () => only.metadata());
  }
  app.get('/readyz', async (_req, reply) => {
    const draining = opts.isDraining();
    return reply
      .code(draining ? 503 : 200)
      .send({ status: draining ? 'draining' : 'ready', upstreams: opts.upstreamHealth() });
  });

  for (const router of opts.routers) {
    // CORS preflight for browser-based clients; the actual request is still checked by Origin.
    app.options(router.path, async (req, reply) => {
      if (!req.headers.origin || !policy.originAllowed(req.headers.origin)) return reply.code(403).send();
      return reply
        .code(204)
        .headers({
          ...corsHeaders(req),
          'access-control-allow-methods': 'GET, POST, DELETE, OPTIONS',
          'access-control-allow-headers': allowHeaders,
          'access-control-max-age': '600',
        })
        .send();
    });
    registerLegacySseEndpoint(app, {
      router,
      sessions: opts.sessions,
      corsHeaders,
      keepaliveMs: 25_000,
      authenticate: opts.authenticators.get(router.path),
      auditGate: opts.auditGate,
      maxPending: 1000,
      initializeTimeoutMs: 30_000,
    });
    registerMcpEndpoint(app, {
      router,
      sessions: opts.sessions,
      sink: opts.sink,
      corsHeaders,
      keepaliveMs: 25_000,
      authenticate: opts.authenticators.get(router.path),
      latencyHeaders: opts.latencyHeaders === true,
      auditGate: opts.auditGate,
    });
  }
  return app;
}
