// The admin API: JSON endpoints under /admin/ for operators — API keys, upstream health, each route's
// tools, live sessions — behind an API key with the `admin` role or an OAuth token of an admin group.
// Mounted on the main listener or on its own (admin.listen). A small router of handlers: an endpoint
// is one entry of ADMIN_ENDPOINTS (or of `extra`), so audit queries and metrics slot in the same way.

import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import { decodeCursor, encodeCursor, parseFilter, presentRecord } from '../audit/query.ts';
import type { AuditStore } from '../audit/store.ts';
import {
  type ApiKeyRecord,
  KEY_PREFIX,
  KeyExistsError,
  type KeyStore,
  keyStoreUnavailable,
} from '../auth/api-keys.ts';
import type { OAuthValidator } from '../auth/oauth.ts';
import type { Catalog } from '../catalog/catalog.ts';
import { parseDuration } from '../config/units.ts';
import { GatehouseError } from '../mcp/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { UpstreamHealth } from '../upstream/types.ts';

export const ADMIN_PREFIX = '/admin';
/** The role an API key needs to use the admin API. */
export const ADMIN_ROLE = 'admin';

export interface AdminDeps {
  keys: KeyStore;
  /** The header carrying API keys (api_keys.header): `authorization` means a Bearer token. */
  keyHeader: string;
  /** Administrators by OIDC group: a token of any of `groups`, checked by `validator`. */
  oauth?: { validator: OAuthValidator; groups: readonly string[] } | undefined;
  catalog: Catalog;
  routes: readonly { path: string; upstreams: readonly string[] }[];
  upstreamTypes: Readonly<Record<string, string>>;
  upstreamHealth(): Record<string, UpstreamHealth>;
  sessionsByRoute(): ReadonlyMap<string, number>;
  /** The audit log's stores (GET /admin/audit), unless audit is off. */
  audit?: { store(name?: string): AuditStore | undefined } | undefined;
  logger: Logger;
}

/** Who called, once authenticated and found to be an administrator. */
export interface AdminCaller {
  subject: string;
  via: 'api_key' | 'oauth';
}

export interface AdminRequest {
  /** Path parameters (`:name`), percent-decoded. */
  params: Readonly<Record<string, string>>;
  query: URLSearchParams;
  /** The JSON body (undefined without one); POST and PUT bodies must be application/json. */
  body: unknown;
  caller: AdminCaller;
  now: number;
}

export interface AdminReply {
  status?: number;
  body: unknown;
  headers?: Record<string, string>;
}

export type AdminHandler = (req: AdminRequest, deps: AdminDeps) => AdminReply | Promise<AdminReply>;

export interface AdminEndpoint {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Below /admin, e.g. `/keys/:name`. */
  path: string;
  handler: AdminHandler;
}

/** An answer other than success, with its status and a stable code (`error` in the JSON body). */
export class AdminError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string> | undefined;
  constructor(status: number, code: string, message: string, headers?: Record<string, string>) {
    super(message);
    this.name = 'AdminError';
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

const badRequest = (message: string) => new AdminError(400, 'bad_request', `Bad Request: ${message}`);

// ---------------------------------------------------------------------------------------------------
// Endpoints

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

function keyView(k: ApiKeyRecord, now: number) {
  return {
    name: k.name,
    agent: k.agent,
    groups: k.groups,
    roles: k.roles,
    status:
      k.revokedAt !== undefined
        ? 'revoked'
        : k.expiresAt !== undefined && k.expiresAt <= now
          ? 'expired'
          : 'active',
    created_at: iso(k.createdAt),
    expires_at: iso(k.expiresAt),
    revoked_at: iso(k.revokedAt),
  };
}

const NEW_KEY_FIELDS = new Set(['name', 'agent', 'groups', 'roles', 'expires_in']);

function stringList(body: Record<string, unknown>, field: string): string[] | undefined {
  const v = body[field];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    throw badRequest(`"${field}" must be an array of strings`);
  return v as string[];
}

/** expires_in: a duration as in the config ("30d", "12h") or a number of seconds. */
function expiresIn(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const ms =
    typeof v === 'number'
      ? Number.isInteger(v) && v > 0
        ? v * 1000
        : undefined
      : typeof v === 'string'
        ? parseDuration(v)
        : undefined;
  if (ms === undefined || ms <= 0)
    throw badRequest(
      `"expires_in" must be a duration such as "30d" or "12h", or a positive number of seconds (got ${JSON.stringify(v)})`,
    );
  return ms;
}

async function createKey(req: AdminRequest, deps: AdminDeps): Promise<AdminReply> {
  const body = req.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw badRequest('the body must be a JSON object such as {"name": "billing-bot", "groups": ["support"]}');
  const fields = body as Record<string, unknown>;
  for (const f of Object.keys(fields))
    if (!NEW_KEY_FIELDS.has(f))
      throw badRequest(`unknown field "${f}" (expected name, agent, groups, roles, expires_in)`);
  if (typeof fields.name !== 'string') throw badRequest('"name" is required and must be a string');
  if (fields.agent !== undefined && typeof fields.agent !== 'string')
    throw badRequest('"agent" must be a string');
  const groups = stringList(fields, 'groups') ?? [];
  const roles = stringList(fields, 'roles') ?? [];
  const ttl = expiresIn(fields.expires_in);
  const expiresAt = ttl === undefined ? undefined : req.now + ttl;
  let key: string;
  try {
    key = await deps.keys.create({
      name: fields.name,
      agent: fields.agent as string | undefined,
      groups,
      roles,
      expiresAt,
      now: req.now,
    });
  } catch (err) {
    if (err instanceof KeyExistsError) throw new AdminError(409, 'conflict', `Conflict: ${err.message}`);
    if (err instanceof RangeError) throw badRequest(err.message);
    throw err;
  }
  deps.logger.info({ admin: req.caller.subject, key: fields.name, roles }, 'admin API: key created');
  return {
    status: 201,
    headers: { 'cache-control': 'no-store' },
    body: {
      key,
      name: fields.name,
      agent: (fields.agent as string | undefined) ?? fields.name,
      groups,
      roles,
      created_at: iso(req.now),
      expires_at: iso(expiresAt),
    },
  };
}

/** GET /admin/audit: the audit query of `gatehouse audit query`, newest first, a page at a time. */
async function auditRecords(req: AdminRequest, deps: AdminDeps): Promise<AdminReply> {
  const q = req.query;
  const name = q.get('sink') ?? undefined;
  const store = deps.audit?.store(name);
  if (!store)
    throw new AdminError(
      404,
      'not_found',
      `Not Found: ${name ? `no SQLite or PostgreSQL audit sink named ${JSON.stringify(name)}` : 'audit is off, or has no SQLite or PostgreSQL sink to query'}`,
    );
  let filter: ReturnType<typeof parseFilter>;
  let after: number | undefined;
  const limit = q.get('limit') === null ? 100 : Number(q.get('limit'));
  try {
    filter = parseFilter((k) => q.get(k) ?? undefined, req.now);
    const cursor = q.get('cursor');
    after = cursor ? decodeCursor(cursor) : undefined;
  } catch (err) {
    throw badRequest((err as Error).message);
  }
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw badRequest('"limit" must be 1..1000');
  let records: Awaited<ReturnType<AuditStore['query']>>;
  try {
    records = await store.query(filter, { limit, after });
  } catch (err) {
    deps.logger.warn({ sink: store.name, err: (err as Error).message }, 'admin API: audit query failed');
    throw new AdminError(
      503,
      'audit_unavailable',
      `Service Unavailable: the audit sink "${store.name}" cannot be read now; retry shortly`,
    );
  }
  const last = records[records.length - 1];
  return {
    body: {
      sink: store.name,
      records: records.map(presentRecord),
      next_cursor: records.length === limit && last ? encodeCursor(last.seq) : null,
    },
  };
}

export const ADMIN_ENDPOINTS: readonly AdminEndpoint[] = [
  {
    method: 'GET',
    path: '/keys',
    handler: async (req, deps) => ({
      body: { keys: (await deps.keys.list()).map((k) => keyView(k, req.now)) },
    }),
  },
  { method: 'POST', path: '/keys', handler: createKey },
  {
    method: 'DELETE',
    path: '/keys/:name',
    handler: async (req, deps) => {
      const name = req.params.name!;
      if (!(await deps.keys.revoke(name, req.now)))
        throw new AdminError(404, 'not_found', `Not Found: no active key named ${JSON.stringify(name)}`);
      deps.logger.info({ admin: req.caller.subject, key: name }, 'admin API: key revoked');
      return { body: { name, status: 'revoked', revoked_at: iso(req.now) } };
    },
  },
  {
    method: 'GET',
    path: '/upstreams',
    handler: (_req, deps) => ({
      body: {
        upstreams: Object.entries(deps.upstreamHealth()).map(([name, h]) => ({
          name,
          type: deps.upstreamTypes[name],
          status: h.status,
          since: iso(h.since),
          in_flight: h.inFlight,
          ...(h.lastError ? { last_error: h.lastError } : {}),
        })),
      },
    }),
  },
  {
    method: 'GET',
    path: '/routes',
    handler: (_req, deps) => {
      // The view a client declaring no capabilities gets (capability-gated tools may add to it).
      const profile = deps.catalog.profileFor({}).key;
      return {
        body: {
          routes: deps.routes.map((r) => {
            const view = deps.catalog.view(r.path, profile);
            const named = (list: typeof view.tools) =>
              list.items.map((item) => {
                const name = String(item.name);
                const owner = list.byName.get(name);
                return { name, upstream: owner?.upstream, original: owner?.original };
              });
            return {
              path: r.path,
              upstreams: r.upstreams,
              present: view.present,
              missing: deps.catalog.problems(r.path, profile),
              tools: named(view.tools),
              prompts: named(view.prompts),
            };
          }),
        },
      };
    },
  },
  {
    method: 'GET',
    path: '/sessions',
    handler: (_req, deps) => {
      const counts = deps.sessionsByRoute();
      const routes = deps.routes.map((r) => ({ path: r.path, sessions: counts.get(r.path) ?? 0 }));
      return { body: { total: routes.reduce((n, r) => n + r.sessions, 0), routes } };
    },
  },
  { method: 'GET', path: '/audit', handler: auditRecords },
];

// ---------------------------------------------------------------------------------------------------
// Routing

interface Compiled {
  endpoint: AdminEndpoint;
  segments: string[];
}

/** Matches a method and a path (below /admin) to an endpoint; 404 or 405 otherwise. */
export class AdminRouter {
  readonly #endpoints: Compiled[] = [];

  constructor(endpoints: readonly AdminEndpoint[]) {
    for (const e of endpoints) this.add(e);
  }

  add(endpoint: AdminEndpoint): void {
    this.#endpoints.push({ endpoint, segments: endpoint.path.split('/').filter(Boolean) });
  }

  match(
    method: string,
    segments: readonly string[],
  ): { endpoint: AdminEndpoint; params: Record<string, string> } {
    const allowed: string[] = [];
    for (const c of this.#endpoints) {
      if (c.segments.length !== segments.length) continue;
      if (!c.segments.every((s, i) => s.startsWith(':') || s === segments[i])) continue;
      const params: Record<string, string> = {};
      c.segments.forEach((s, i) => {
        if (s.startsWith(':')) params[s.slice(1)] = segments[i]!;
      });
      if (c.endpoint.method === method) return { endpoint: c.endpoint, params };
      allowed.push(c.endpoint.method);
    }
    const path = `${ADMIN_PREFIX}/${segments.map(encodeURIComponent).join('/')}`;
    if (allowed.length > 0)
      throw new AdminError(
        405,
        'method_not_allowed',
        `Method Not Allowed: ${path} accepts ${allowed.join(', ')}`,
        {
          allow: allowed.join(', '),
        },
      );
    throw new AdminError(404, 'not_found', `Not Found: no admin endpoint ${method} ${path}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Authentication

const BEARER = /^bearer\s+(\S+)\s*$/i;
const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/** Checks the caller is an administrator: 401 without a valid credential, 403 when not an admin. */
export function adminAuthenticator(deps: Pick<AdminDeps, 'keys' | 'keyHeader' | 'oauth'>) {
  const keyHeader = deps.keyHeader.toLowerCase();
  const adminGroups = new Set(deps.oauth?.groups ?? []);
  const how = [
    keyHeader === 'authorization' ? 'Authorization: Bearer <key>' : `header ${deps.keyHeader}`,
    ...(deps.oauth ? ['Authorization: Bearer <access token>'] : []),
  ].join(' or ');
  const unauthorized = (presented: boolean) =>
    new AdminError(
      401,
      'unauthorized',
      `Unauthorized: the admin API needs an API key with the ${ADMIN_ROLE} role${deps.oauth ? ' or an access token of an admin group' : ''} (${how})`,
      {
        'www-authenticate': `Bearer realm="gatehouse-admin"${presented ? ', error="invalid_token"' : ''}`,
      },
    );

  return async (
    headers: Readonly<Record<string, string | string[] | undefined>>,
    now: number,
  ): Promise<AdminCaller> => {
    const bearer = BEARER.exec(first(headers.authorization) ?? '')?.[1];
    const key = keyHeader === 'authorization' ? bearer : first(headers[keyHeader])?.trim();
    if (key?.startsWith(KEY_PREFIX)) {
      let record: ApiKeyRecord | undefined;
      try {
        record = await deps.keys.verify(key, now);
      } catch {
        throw keyStoreUnavailable();
      }
      if (!record) throw unauthorized(true);
      if (!record.roles.includes(ADMIN_ROLE))
        throw new AdminError(
          403,
          'forbidden',
          `Forbidden: API key "${record.name}" lacks the ${ADMIN_ROLE} role`,
        );
      return { subject: record.name, via: 'api_key' };
    }
    if (deps.oauth && bearer && !bearer.startsWith(KEY_PREFIX)) {
      let groups: readonly string[];
      let subject: string;
      try {
        ({ groups, subject } = await deps.oauth.validator.verify(bearer, now));
      } catch (err) {
        // An unreachable IdP stays a 503; any other failure is an invalid token.
        if (err instanceof GatehouseError && err.httpStatus >= 500) throw err;
        throw unauthorized(true);
      }
      if (!groups.some((g) => adminGroups.has(g)))
        throw new AdminError(403, 'forbidden', `Forbidden: ${subject} is in no admin group`);
      return { subject, via: 'oauth' };
    }
    throw unauthorized(bearer !== undefined || key !== undefined);
  };
}

// ---------------------------------------------------------------------------------------------------
// HTTP

function send(reply: FastifyReply, status: number, body: unknown, headers?: Record<string, string>) {
  if (headers) void reply.headers(headers);
  return reply.code(status).type('application/json').send(JSON.stringify(body));
}

function sendError(reply: FastifyReply, err: AdminError | GatehouseError) {
  if (err instanceof AdminError)
    return send(reply, err.status, { error: err.code, message: err.message }, err.headers);
  // ERR_KEY_STORE_UNAVAILABLE → key_store_unavailable: one style of codes in admin answers.
  const code = err.code.replace(/^ERR_/, '').toLowerCase();
  return send(reply, err.httpStatus, { error: code, message: err.message }, err.headers);
}

/** The path below /admin as decoded segments (400 on a malformed percent-encoding). */
function segmentsOf(url: string): string[] {
  const path = url.split('?')[0]!.slice(ADMIN_PREFIX.length);
  try {
    return path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    throw badRequest('the path has a malformed percent-encoding');
  }
}

/**
 * Registers the admin API on a fastify instance (the main edge or the admin listener), in its own
 * encapsulated context: its errors are JSON objects, never JSON-RPC, and nothing here is MCP.
 */
export function registerAdminApi(
  app: FastifyInstance,
  deps: AdminDeps,
  extra: readonly AdminEndpoint[] = [],
): void {
  const router = new AdminRouter([...ADMIN_ENDPOINTS, ...extra]);
  const authenticate = adminAuthenticator(deps);

  const handle = async (req: FastifyRequest, reply: FastifyReply) => {
    const now = Date.now();
    try {
      const caller = await authenticate(req.headers, now);
      const { endpoint, params } = router.match(req.method, segmentsOf(req.url));
      let body: unknown;
      if (endpoint.method === 'POST' || endpoint.method === 'PUT') {
        const type = String(req.headers['content-type'] ?? '');
        if (!/^application\/json\s*(;|$)/i.test(type))
          throw new AdminError(
            415,
            'unsupported_media_type',
            'Unsupported Media Type: send the body as application/json',
          );
        const text = typeof req.body === 'string' ? req.body : '';
        try {
          body = JSON.parse(text);
        } catch (err) {
          throw badRequest(`the body is not valid JSON (${(err as Error).message})`);
        }
      }
      const query = new URLSearchParams(req.url.split('?')[1] ?? '');
      const out = await endpoint.handler({ params, query, body, caller, now }, deps);
      return send(reply, out.status ?? 200, out.body, out.headers);
    } catch (err) {
      if (err instanceof AdminError || err instanceof GatehouseError) return sendError(reply, err);
      req.log.error({ err, requestId: req.id }, 'admin API: unhandled error');
      return send(reply, 500, {
        error: 'internal',
        message: 'Internal error: the admin API failed to handle this request; see the gateway log',
      });
    }
  };

  void app.register(async (admin) => {
    // Failures before the handler (body too large, unreadable body) get the admin API's JSON shape too.
    admin.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
      const status = typeof err.statusCode === 'number' && err.statusCode >= 400 ? err.statusCode : 500;
      return send(reply, status, {
        error: status === 413 ? 'payload_too_large' : 'bad_request',
        message: err.message,
      });
    });
    for (const url of [ADMIN_PREFIX, `${ADMIN_PREFIX}/*`])
      admin.route({ method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'], url, handler: handle });
  });
}

/** A listener of its own for the admin API (admin.listen): plain HTTP, nothing but /admin/… */
export function buildAdminListener(deps: AdminDeps, opts: { maxBodyBytes: number }): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    bodyLimit: opts.maxBodyBytes,
    exposeHeadRoutes: false,
    forceCloseConnections: 'idle',
  }) as unknown as FastifyInstance;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  app.setNotFoundHandler((req, reply) =>
    send(reply, 404, {
      error: 'not_found',
      message: `Not Found: this listener serves only the admin API (${ADMIN_PREFIX}/…), not ${req.method} ${req.url.split('?')[0]}`,
    }),
  );
  registerAdminApi(app, deps);
  return app;
}
