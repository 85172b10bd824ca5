// The router of one route (one virtual MCP server over several upstreams): answers initialize, ping and
// the list methods itself from the catalogue, resolves every other request's owner (by exposed name or
// URI), runs the policy chain, dispatches with the upstream's own names, and emits one event per exchange.

import type { Catalog } from '../catalog/catalog.ts';
import type { CursorCodec } from '../catalog/cursor.ts';
import { exposeUri, type Item, type RouteView, resolveUri } from '../catalog/view.ts';
import { asGatehouseError, Errors, type GatehouseError } from '../mcp/errors.ts';
import {
  ErrorCode,
  HTTP_ANSWER,
  type HttpAnswer,
  httpAnswer,
  isRequest,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
  RAW_RESULT,
  UPSTREAM_CODE,
} from '../mcp/jsonrpc.ts';
import { mapTaskIds } from '../mcp/server-request-id.ts';
import { negotiateVersion } from '../mcp/versions.ts';
import { type AclCaller, type AclKind, type AclPolicy, aclCaller } from '../policy/acl.ts';
import type { PolicyChain } from '../policy/chain.ts';
import { type ExchangeEvent, type ExchangeSink, noopSink, type Outcome } from '../telemetry/events.ts';
import type { Logger } from '../telemetry/logger.ts';
import {
  type RequestSpan,
  type TraceContext,
  type Tracing,
  traceRequest,
  upstreamCall,
} from '../telemetry/tracing.ts';
import type { Upstream } from '../upstream/types.ts';
import type { CallContext, CallTarget, Principal } from './context.ts';
import type { GatewaySession } from './session.ts';
import type { SessionRegistry } from './sessions.ts';

/** Where the answer to one request is being written: lets the upstream's streaming choice show through. */
export interface ReplyChannel {
  /** The upstream answers with a stream: open one to the client now. */
  stream(): void;
  /** A message for the client while the request is in flight (progress, logging, server requests). */
  send(m: JsonRpcMessage): void;
  /** The upstream paused its stream (polling): the client's stream may be closed for it to resume. */
  pause(): void;
}

export interface RequestMeta {
  requestId: string;
  principal: Principal | undefined;
  startedAt: number;
  /** High-resolution start (performance.now()) for durations. */
  t0: number;
  /** The caller's address and User-Agent (for audit). */
  clientIp?: string | undefined;
  userAgent?: string | undefined;
  /** Bytes of the HTTP request body. */
  bytesIn?: number | undefined;
  /** W3C trace context of the exchange (set by tracing, or taken from the client). */
  traceId?: string | undefined;
  spanId?: string | undefined;
  /** The client's W3C trace context (traceparent header, or the message's params._meta), validated. */
  traceContext?: TraceContext | undefined;
  /** This request's span, when tracing is on. */
  span?: RequestSpan | undefined;
  /** Time spent waiting for upstreams so far, ms (set by the router; for the latency headers). */
  upstreamMs?: number | undefined;
}

export interface RouteDeps {
  path: string;
  upstreams: readonly Upstream[];
  catalog: Catalog;
  cursors: CursorCodec;
  pageSize: number;
  /** Access control of the route's tools, prompts and resources, when it has any. */
  acl?: AclPolicy | undefined;
  /**
   * With `deny_response: step_up`: the WWW-Authenticate challenge for a caller lacking only scopes (the
   * scopes to ask for in). Without it, every refusal looks like an unknown item.
   */
  stepUpChallenge?: ((scopes: readonly string[]) => string) | undefined;
  chain: PolicyChain;
  sink: ExchangeSink;
  sessions: SessionRegistry;
  logger: Logger;
  gatewayInfo: { name: string; version: string };
  /** OpenTelemetry spans, when tracing is on. */
  tracing?: Tracing | undefined;
}

/** A caller without identity (a route without auth): no subjects, no scopes. */
const ANONYMOUS: { caller: AclCaller; key: string } = {
  caller: { tokens: new Set(), scopes: new Set() },
  key: '',
};

/** Distinct callers (subject sets) whose filtered lists are kept per view. */
const MAX_FILTERED_VIEWS = 1_000;

/** How long a client's initialize waits for upstreams the gateway has not listed yet. */
const INITIAL_WAIT_MS = 5_000;

interface ListSpec {
  view: (v: RouteView) => Item[];
  field: string;
  kind: string;
  /** The kind of item the ACL sees, and the owner (upstream and own name) of a listed item. */
  acl: AclKind;
  owner: (v: RouteView, item: Item) => { upstream: string; original: string } | undefined;
}

const LISTS: Record<string, ListSpec> = {
  'tools/list': {
    view: (v) => v.tools.items,
    field: 'tools',
    kind: 'tools',
    acl: 'tool',
    owner: (v, i) => v.tools.byName.get(i.name as string),
  },
  'prompts/list': {
    view: (v) => v.prompts.items,
    field: 'prompts',
    kind: 'prompts',
    acl: 'prompt',
    owner: (v, i) => v.prompts.byName.get(i.name as string),
  },
  'resources/list': {
    view: (v) => v.resources.items,
    field: 'resources',
    kind: 'resources',
    acl: 'resource',
    owner: (v, i) => v.resources.byUri.get(i.uri as string),
  },
  'resources/templates/list': {
    view: (v) => v.templates.items,
    field: 'resourceTemplates',
    kind: 'templates',
    acl: 'resource',
    owner: (v, i) => v.templates.byTemplate.get(i.uriTemplate as string),
  },
};

/** Server→client requests and the client capability each needs. */
const CLIENT_CAPABILITY: Record<string, string> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

type Dispatch =
  | { target: CallTarget; request: JsonRpcRequest }
  | { error: GatehouseError }
  /** A resource read nothing places: the upstreams that serve resources are tried in turn. */
  | { anywhere: true };

export class Router {
  readonly path: string;
  readonly #deps: RouteDeps;
  readonly #byName: ReadonlyMap<string, Upstream>;
  /** The upstream of a one-upstream route: requests the catalogue cannot place go to it unchanged. */
  readonly #sole: string | undefined;
  /** Each principal's ACL caller, computed once. */
  readonly #callers = new WeakMap<Principal, { caller: AclCaller; key: string }>();
  /** Per view (so it goes when the lists change), each caller's filtered lists and their pages. */
  readonly #filtered = new WeakMap<RouteView, Map<string, { items: Item[]; pages: RouteView['pages'] }>>();

  constructor(deps: RouteDeps) {
    this.#deps = deps;
    this.path = deps.path;
    this.#byName = new Map(deps.upstreams.map((u) => [u.name, u]));
    this.#sole = deps.upstreams.length === 1 ? deps.upstreams[0]!.name : undefined;
  }

  /** initialize: a new session whose view is the catalogue's; upstream sessions open on first use. */
  initialize(
    req: JsonRpcRequest,
    meta: RequestMeta,
  ): Promise<{ response: JsonRpcResponse; session?: GatewaySession }> {
    const m = traceRequest(this.#deps.tracing, meta, req, this.path, undefined, undefined);
    if (m === meta) return this.#initialize(req, meta);
    return this.#initialize(req, m).finally(() => m.span?.end());
  }

  async #initialize(
    req: JsonRpcRequest,
    meta: RequestMeta,
  ): Promise<{ response: JsonRpcResponse; session?: GatewaySession }> {
    const p = req.params ?? {};
    const bad =
      typeof p.protocolVersion !== 'string'
        ? '"protocolVersion" (a string)'
        : !isObject(p.capabilities)
          ? '"capabilities" (an object)'
          : !isObject(p.clientInfo)
            ? '"clientInfo" (an object)'
            : undefined;
    if (bad) {
      const response = Errors.invalidParams(`Invalid params: initialize needs ${bad}`).toResponse(req.id);
      this.#emit(undefined, req.method, undefined, meta, response, 'error', undefined, undefined, req);
      return { response };
    }
    const capabilities = p.capabilities as Record<string, unknown>;
    const profile = this.#deps.catalog.profileFor(capabilities);
    const t = performance.now();
    const view = await this.#deps.catalog.ready(this.path, profile, INITIAL_WAIT_MS);
    if (view.present.length === 0) {
      const problems = this.#deps.catalog.problems(this.path, profile.key);
      const why =
        problems.length === 1
          ? (problems[0]?.error ?? '')
          : `no upstream of route ${this.path} is reachable: ${problems.map((x) => `${x.upstream}: ${x.error}`).join('; ')}`;
      const response = Errors.upstreamUnavailable(why).toResponse(req.id);
      this.#emit(
        undefined,
        req.method,
        this.#sole,
        meta,
        response,
        'upstream_error',
        performance.now() - t,
        undefined,
        req,
      );
      return { response };
    }
    const version = negotiateVersion(p.protocolVersion);
    const session = await this.#deps.sessions.create(
      {
        route: this.path,
        profile: profile.key,
        protocolVersion: version,
        clientCapabilities: capabilities,
        clientInfo: p.clientInfo as Record<string, unknown>,
      },
      meta.principal,
      this.#byName,
      meta.startedAt,
    );
    session.inbound = (upstream, m) => this.#inbound(session, upstream, m);
    const response: JsonRpcResponse = {
      jsonrpc: '2.0',
      id: req.id,
      result: this.#initializeResult(view, version),
    };
    this.#emit(
      session.id,
      req.method,
      this.#sole,
      meta,
      response,
      'ok',
      performance.now() - t,
      undefined,
      req,
    );
    return { response, session };
  }

  /** One upstream: its answer as it is (transparency). Several: the union, under the gateway's name. */
  #initializeResult(view: RouteView, version: string): Record<string, unknown> {
    const results = view.initializeResults;
    if (this.#sole !== undefined && results.length === 1) {
      const up = results[0]!.result;
      const out: Record<string, unknown> = {
        protocolVersion: version,
        capabilities: up.capabilities ?? {},
        serverInfo: up.serverInfo ?? this.#deps.gatewayInfo,
      };
      if (typeof up.instructions === 'string') out.instructions = up.instructions;
      return out;
    }
    const caps: Record<string, Record<string, unknown>> = {};
    const instructions: string[] = [];
    for (const { upstream, result } of results) {
      const c = (isObject(result.capabilities) ? result.capabilities : {}) as Record<
        string,
        Record<string, unknown> | undefined
      >;
      if (c.tools) caps.tools = { listChanged: true };
      if (c.prompts) caps.prompts = { listChanged: true };
      if (c.resources) {
        caps.resources = { ...caps.resources, listChanged: true };
        if (c.resources.subscribe) caps.resources.subscribe = true;
      }
      if (c.logging) caps.logging = {};
      if (c.completions) caps.completions = {};
      if (isObject(c.experimental)) caps.experimental = { ...caps.experimental, ...c.experimental };
      // Task ids are rewritten to name their upstream, so tasks work across an aggregating route.
      if (isObject(c.tasks)) caps.tasks = { ...caps.tasks, ...c.tasks };
      if (typeof result.instructions === 'string' && result.instructions.trim() !== '') {
        instructions.push(`## ${upstream}\n${result.instructions.trim()}`);
      }
    }
    const out: Record<string, unknown> = {
      protocolVersion: version,
      capabilities: caps,
      serverInfo: { ...this.#deps.gatewayInfo, title: `Gatehouse ${this.path}` },
    };
    if (instructions.length > 0) out.instructions = instructions.join('\n\n');
    return out;
  }

  /** Any request but initialize. Never throws: every failure becomes a JSON-RPC error answer. */
  request(
    session: GatewaySession,
    req: JsonRpcRequest,
    channel: ReplyChannel,
    meta: RequestMeta,
  ): Promise<JsonRpcResponse> {
    // With a trace of its own (a span, or a context in params._meta), the request gets its own meta (a
    // batch's requests share the HTTP request's); its upstream time is added back to the shared one.
    const m = traceRequest(this.#deps.tracing, meta, req, this.path, session.id, session.protocolVersion);
    if (m === meta) return this.#request(session, req, channel, meta);
    const base = m.upstreamMs ?? 0;
    return this.#request(session, req, channel, m).finally(() => {
      m.span?.end();
      if (m.upstreamMs !== undefined) meta.upstreamMs = (meta.upstreamMs ?? 0) + m.upstreamMs - base;
    });
  }

  async #request(
    session: GatewaySession,
    req: JsonRpcRequest,
    channel: ReplyChannel,
    meta: RequestMeta,
  ): Promise<JsonRpcResponse> {
    const method = req.method;
    if (method === 'ping') return this.#local(session, req, meta, { jsonrpc: '2.0', id: req.id, result: {} });
    if (method === 'initialize') {
      return this.#local(
        session,
        req,
        meta,
        Errors.invalidRequest('Invalid Request: this session is already initialized').toResponse(req.id),
      );
    }
    const view = this.#deps.catalog.view(this.path, session.profile);
    const list = LISTS[method];
    if (list) {
      // With an ACL, a caller's lists hold only what it may use (pages are then not shared).
      const acl = this.#deps.acl;
      if (acl?.governs(list.acl)) {
        // Filtered once per view, list and caller; its pages are cached like the unfiltered ones.
        const { caller, key } = this.#caller(meta.principal);
        let byCaller = this.#filtered.get(view);
        if (!byCaller) {
          byCaller = new Map();
          this.#filtered.set(view, byCaller);
        }
        const cacheKey = `${list.kind}\u0001${key}`;
        let mine = byCaller.get(cacheKey);
        if (!mine) {
          // Step-up only helps a caller with an OAuth token (API keys hold no scopes and cannot ask for one).
          const stepUp = this.#deps.stepUpChallenge !== undefined && meta.principal?.source === 'oauth';
          const items = list.view(view).filter((item) => {
            const owner = list.owner(view, item);
            return owner !== undefined && acl.lists(caller, list.acl, owner.upstream, owner.original, stepUp);
          });
          mine = { items, pages: new Map() };
          if (byCaller.size < MAX_FILTERED_VIEWS) byCaller.set(cacheKey, mine);
        }
        return this.#local(
          session,
          req,
          meta,
          this.#page(req, mine.pages, mine.items, list.field, list.kind),
        );
      }
      return this.#local(
        session,
        req,
        meta,
        this.#page(req, view.pages, list.view(view), list.field, list.kind),
      );
    }
    if (method === 'logging/setLevel') return this.#setLevel(session, req, meta);
    if (method === 'tasks/list' && this.#sole === undefined) return this.#listTasks(session, req, meta);

    const d = this.#resolve(session, view, req);
    if ('anywhere' in d) return this.#readAnywhere(session, req, view, channel, meta);
    if (!('error' in d)) {
      const refused = this.#refuse(session, req, d.target, meta);
      if (refused) return refused;
    }
    if ('error' in d) {
      // The name or URI asked for is recorded, so that refusals of unknown or hidden tools are visible.
      const asked = req.params?.name ?? req.params?.uri;
      const target =
        typeof asked === 'string' ? { upstream: '', original: asked, kind: 'none' as const } : undefined;
      return this.#local(session, req, meta, d.error.toResponse(req.id), target);
    }
    return this.#dispatch(session, req, d, view, channel, meta);
  }

  #local(
    session: GatewaySession,
    req: JsonRpcRequest,
    meta: RequestMeta,
    response: JsonRpcResponse,
    target?: CallTarget,
  ): JsonRpcResponse {
    this.#emit(
      session.id,
      req.method,
      target,
      meta,
      response,
      'error' in response ? 'error' : 'ok',
      undefined,
      undefined,
      req,
    );
    return response;
  }

  /**
   * A page of an aggregated list; the cursor is the gateway's own (opaque, tamper-checked). Pages are
   * serialised once per view, so a warm tools/list costs a map lookup and a write.
   */
  #page(
    req: JsonRpcRequest,
    pages: RouteView['pages'],
    items: Item[],
    field: string,
    kind: string,
  ): JsonRpcResponse {
    const cursor = req.params?.cursor;
    let offset = 0;
    if (cursor !== undefined) {
      const state = this.#deps.cursors.decode(cursor, `${this.path} ${kind}`);
      if (!state)
        return Errors.invalidParams(
          'Invalid params: unknown or tampered cursor; list again without one',
        ).toResponse(req.id);
      offset = state.offset;
    }
    const size = this.#deps.pageSize;
    const key = `${kind}:${offset}`;
    let page = pages.get(key);
    if (!page) {
      const result: Record<string, unknown> = {
        [field]: offset === 0 && items.length <= size ? items : items.slice(offset, offset + size),
      };
      if (offset + size < items.length)
        result.nextCursor = this.#deps.cursors.encode({
          kind: `${this.path} ${kind}`,
          offset: offset + size,
        });
      page = { result, json: Buffer.from(JSON.stringify(result)) };
      pages.set(key, page);
    }
    return { jsonrpc: '2.0', id: req.id, result: page.result, [RAW_RESULT]: page.json } as JsonRpcResponse;
  }

  /** Which upstream owns a request, and the request as that upstream must see it (its own names). */
  #resolve(session: GatewaySession, view: RouteView, req: JsonRpcRequest): Dispatch {
    const p = req.params ?? {};
    switch (req.method) {
      case 'tools/call':
      case 'prompts/get': {
        const tool = req.method === 'tools/call';
        const name = p.name;
        if (typeof name !== 'string')
          return { error: Errors.invalidParams(`Invalid params: ${req.method} needs "name" (a string)`) };
        const owner = (tool ? view.tools : view.prompts).byName.get(name);
        if (!owner) return { error: Errors.invalidParams(`Unknown ${tool ? 'tool' : 'prompt'}: ${name}`) };
        return {
          target: { upstream: owner.upstream, original: owner.original, kind: tool ? 'tool' : 'prompt' },
          request: owner.original === name ? req : { ...req, params: { ...p, name: owner.original } },
        };
      }
      case 'resources/read':
      case 'resources/subscribe':
      case 'resources/unsubscribe': {
        const uri = p.uri;
        if (typeof uri !== 'string')
          return { error: Errors.invalidParams(`Invalid params: ${req.method} needs "uri" (a string)`) };
        const owner = resolveUri(view, uri);
        if (owner === 'ambiguous') {
          return {
            error: Errors.invalidParams(
              `Invalid params: resource ${uri} is offered by several upstreams (or matches several of their templates); use gatehouse://<upstream>/${uri}`,
            ),
          };
        }
        if (owner) {
          return {
            target: { upstream: owner.upstream, original: owner.original, kind: 'resource' },
            request: owner.original === uri ? req : { ...req, params: { ...p, uri: owner.original } },
          };
        }
        if (this.#sole !== undefined)
          return { target: { upstream: this.#sole, original: uri, kind: 'resource' }, request: req };
        if (req.method === 'resources/read') return { anywhere: true };
        return { error: Errors.invalidParams(`Unknown resource: ${uri}`) };
      }
      case 'completion/complete': {
        const ref = isObject(p.ref) ? (p.ref as Record<string, unknown>) : {};
        if (ref.type === 'ref/prompt' && typeof ref.name === 'string') {
          const owner = view.prompts.byName.get(ref.name);
          if (!owner) return { error: Errors.invalidParams(`Unknown prompt: ${ref.name}`) };
          return {
            target: { upstream: owner.upstream, original: owner.original, kind: 'prompt' },
            request: { ...req, params: { ...p, ref: { ...ref, name: owner.original } } },
          };
        }
        if (ref.type === 'ref/resource' && typeof ref.uri === 'string') {
          const owner = view.templates.byTemplate.get(ref.uri) ?? resolveUri(view, ref.uri);
          if (owner && owner !== 'ambiguous') {
            return {
              target: { upstream: owner.upstream, original: owner.original, kind: 'resource' },
              request: { ...req, params: { ...p, ref: { ...ref, uri: owner.original } } },
            };
          }
          if (this.#sole !== undefined)
            return { target: { upstream: this.#sole, original: ref.uri, kind: 'resource' }, request: req };
          return { error: Errors.invalidParams(`Unknown resource template: ${ref.uri}`) };
        }
        return {
          error: Errors.invalidParams(
            'Invalid params: completion/complete needs a ref/prompt or ref/resource "ref"',
          ),
        };
      }
      case 'tasks/get':
      case 'tasks/result':
      case 'tasks/cancel': {
        if (this.#sole !== undefined)
          return { target: { upstream: this.#sole, original: undefined, kind: 'none' }, request: req };
        // On an aggregating route a task id names its upstream (the gateway rewrote it when the task began).
        const task = session.ids.parseTask(session.id, p.taskId);
        if (!task || !this.#byName.has(task.upstream))
          return { error: Errors.invalidParams(`Unknown task: ${String(p.taskId)}`) };
        return {
          target: { upstream: task.upstream, original: task.taskId, kind: 'none' },
          request: { ...req, params: { ...p, taskId: task.taskId } },
        };
      }
      default:
        if (this.#sole !== undefined)
          return { target: { upstream: this.#sole, original: undefined, kind: 'none' }, request: req };
        return {
          error: Errors.methodNotFound(
            `Method not found: ${req.method} (this route aggregates several upstreams and no rule places this method)`,
          ),
        };
    }
  }

  async #dispatch(
    session: GatewaySession,
    req: JsonRpcRequest,
    d: { target: CallTarget; request: JsonRpcRequest },
    view: RouteView,
    channel: ReplyChannel,
    meta: RequestMeta,
  ): Promise<JsonRpcResponse> {
    const { target } = d;
    const ctx: CallContext = {
      route: this.path,
      sessionId: session.id,
      principal: meta.principal,
      protocolVersion: session.protocolVersion,
      request: d.request,
      target,
      requestId: meta.requestId,
      now: meta.startedAt,
    };
    const chain = this.#deps.chain;
    if (!chain.empty) {
      const decision = await chain
        .onRequest(ctx)
        .catch((err: unknown) => ({ allow: false as const, error: asGatehouseError(err) }));
      if (!decision.allow) {
        const response = decision.error.toResponse(req.id);
        this.#emit(session.id, req.method, target, meta, response, 'denied', undefined, undefined, req);
        return response;
      }
    }
    const { key, tracked } = session.trackRequest(req.id, target.upstream);
    const t = performance.now();
    let response: JsonRpcResponse;
    let outcome: Outcome;
    // The trace context the upstream gets (in params._meta and HTTP headers): the call's span, or the client's.
    const call = upstreamCall(meta, target.upstream, target.kind, target.original, ctx.request);
    try {
      const us = session.readyUpstream(target.upstream) ?? (await session.upstream(target.upstream));
      response = await us.request(call ? call.request : ctx.request, {
        trace: call?.headers,
        onStream: () => channel.stream(),
        onPause: () => channel.pause(),
        onMessage: (m) => {
          const out = this.#inbound(session, target.upstream, m);
          if (out) channel.send(out);
        },
      });
      outcome = 'error' in response ? 'error' : 'ok';
      call?.end(response);
      if (this.#sole === undefined && !('error' in response)) {
        const result = mapTaskIds(response.result, (id) => session.ids.task(session.id, target.upstream, id));
        if (result !== response.result) response = { ...response, result };
      }
      if (req.method === 'resources/read' && view.wrapped.has(target.upstream))
        response = this.#exposeContents(view, target.upstream, response);
    } catch (err) {
      const e = asGatehouseError(err);
      call?.end(undefined, e);
      outcome = e.code === 'ERR_CANCELLED' ? 'cancelled' : 'upstream_error';
      if (e.code === 'ERR_UPSTREAM_UNAVAILABLE' || e.code === 'ERR_UPSTREAM_TIMEOUT')
        this.#deps.catalog.refresh(target.upstream, session.profile);
      response = e.toResponse(req.id);
    } finally {
      session.untrackRequest(key, tracked);
    }
    const upstreamMs = performance.now() - t;
    meta.upstreamMs = (meta.upstreamMs ?? 0) + upstreamMs;
    if (!chain.empty) {
      response = await chain
        .onResponse(ctx, response)
        .catch((err: unknown) => asGatehouseError(err).toResponse(req.id));
    }
    this.#emit(session.id, req.method, target, meta, response, outcome, upstreamMs, undefined, req);
    return response;
  }

  /** resources/read of a URI no list or template places: the first upstream that can read it answers. */
  async #readAnywhere(
    session: GatewaySession,
    req: JsonRpcRequest,
    view: RouteView,
    channel: ReplyChannel,
    meta: RequestMeta,
  ): Promise<JsonRpcResponse> {
    const uri = String(req.params?.uri);
    const candidates = view.initializeResults.filter(
      (r) => isObject(r.result.capabilities) && (r.result.capabilities as Record<string, unknown>).resources,
    );
    const acl = this.#deps.acl?.governs('resource') ? this.#deps.acl : undefined;
    for (const { upstream } of candidates) {
      // An upstream the caller may not read this URI from is skipped, as if it did not have it.
      if (acl && !acl.decide(this.#caller(meta.principal).caller, 'resource', upstream, uri).allow) continue;
      const res = await this.#dispatch(
        session,
        req,
        { target: { upstream, original: uri, kind: 'resource' }, request: req },
        view,
        channel,
        meta,
      );
      if (!('error' in res)) return res;
    }
    return this.#local(
      session,
      req,
      meta,
      Errors.invalidParams(`Unknown resource: ${uri}`).toResponse(req.id),
    );
  }

  /** Contents read from an upstream whose URIs are wrapped carry the wrapped form, as listed. */
  #exposeContents(view: RouteView, upstream: string, res: JsonRpcResponse): JsonRpcResponse {
    if ('error' in res || !Array.isArray(res.result.contents)) return res;
    const contents = (res.result.contents as Item[]).map((c) =>
      typeof c.uri === 'string' ? { ...c, uri: exposeUri(view, upstream, c.uri) } : c,
    );
    return { ...res, result: { ...res.result, contents } };
  }

  /**
   * The ACL's verdict on a call to a tool, prompt or resource: undefined when allowed, else the refusal —
   * answered before any upstream is contacted. A hidden item is indistinguishable from an unknown one; with
   * step-up, a caller lacking only scopes is told (403 insufficient_scope) which to ask for.
   */
  #refuse(
    session: GatewaySession,
    req: JsonRpcRequest,
    target: CallTarget,
    meta: RequestMeta,
  ): JsonRpcResponse | undefined {
    const acl = this.#deps.acl;
    if (!acl || target.kind === 'none' || target.original === undefined || !acl.governs(target.kind)) return;
    const decision = acl.decide(
      this.#caller(meta.principal).caller,
      target.kind,
      target.upstream,
      target.original,
    );
    if (decision.allow) return;
    let response: JsonRpcResponse;
    const stepUp = this.#deps.stepUpChallenge;
    if (stepUp && decision.missingScopes && meta.principal?.source === 'oauth') {
      const scopes = [...new Set([...(meta.principal?.scopes ?? []), ...decision.missingScopes])];
      response = Errors.policyDenied(
        `Forbidden: this ${target.kind} needs the OAuth scope ${decision.missingScopes.join(' ')}; obtain a token with it and retry`,
        { requiredScopes: decision.missingScopes },
      ).toResponse(req.id);
      (response as { [HTTP_ANSWER]?: HttpAnswer })[HTTP_ANSWER] = {
        status: 403,
        headers: { 'www-authenticate': stepUp(scopes) },
      };
    } else {
      const p = req.params ?? {};
      const ref = isObject(p.ref) ? (p.ref as Record<string, unknown>) : {};
      const asked = p.name ?? p.uri ?? ref.name ?? ref.uri;
      const what =
        target.kind === 'resource' && ref.type === 'ref/resource' ? 'resource template' : target.kind;
      response = Errors.invalidParams(`Unknown ${what}: ${String(asked)}`).toResponse(req.id);
    }
    this.#emit(session.id, req.method, target, meta, response, 'denied', undefined, decision.reason, req);
    return response;
  }

  /**
   * The ACL's view of the request's caller and a key naming it (for the per-caller list cache). It is the
   * principal of this request — the session's caller, whose token may have been renewed with other scopes
   * or groups (a step-up) — computed once per principal object (validators reuse them while cached).
   */
  #caller(p: Principal | undefined): { caller: AclCaller; key: string } {
    if (!p) return ANONYMOUS;
    let s = this.#callers.get(p);
    if (!s) {
      const caller = aclCaller({
        user: p.subject,
        userKind: p.source === 'api_key' ? 'key' : 'user',
        groups: p.groups,
        agent: p.agent,
        tenant: p.tenant,
        claims: p.claimValues,
        scopes: p.scopes,
      });
      const scopes = this.#deps.acl?.usesScopes ? [...caller.scopes].sort().join(' ') : '';
      s = { caller, key: `${[...caller.tokens].sort().join('\u0000')}\u0001${scopes}` };
      this.#callers.set(p, s);
    }
    return s;
  }

  /** tasks/list on an aggregating route: the client's tasks on every upstream session it has, merged. */
  async #listTasks(
    session: GatewaySession,
    req: JsonRpcRequest,
    meta: RequestMeta,
  ): Promise<JsonRpcResponse> {
    const open = await session.openUpstreams();
    const lists = await Promise.allSettled(
      open.map(async (us) => {
        const res = await us.request({ jsonrpc: '2.0', id: req.id, method: 'tasks/list', params: {} });
        if ('error' in res) return [];
        const tasks = mapTaskIds(res.result, (id) => session.ids.task(session.id, us.upstream, id)).tasks;
        return Array.isArray(tasks) ? tasks : [];
      }),
    );
    const tasks = lists.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    return this.#local(session, req, meta, { jsonrpc: '2.0', id: req.id, result: { tasks } });
  }

  /** logging/setLevel applies to every upstream session of the client, now and opened later. */
  async #setLevel(session: GatewaySession, req: JsonRpcRequest, meta: RequestMeta): Promise<JsonRpcResponse> {
    const level = req.params?.level;
    if (typeof level !== 'string') {
      return this.#local(
        session,
        req,
        meta,
        Errors.invalidParams('Invalid params: logging/setLevel needs "level" (a string)').toResponse(req.id),
      );
    }
    session.logLevel = level;
    const open = await session.openUpstreams();
    const results = await Promise.allSettled(open.map((us) => session.applyLogLevel(us)));
    const failed = results.filter((r) => r.status === 'rejected').length;
    if (failed > 0)
      this.#deps.logger.debug(
        { sessionId: session.id, failed },
        'logging/setLevel did not reach every upstream',
      );
    return this.#local(session, req, meta, { jsonrpc: '2.0', id: req.id, result: {} });
  }

  /**
   * A message from an upstream to this client. list_changed is the catalogue's business (it refreshes and
   * tells clients when their view changed); resource URIs are shown as listed; the rest goes through,
   * server→client requests with ids that name their upstream.
   */
  #inbound(session: GatewaySession, upstream: string, message: JsonRpcMessage): JsonRpcMessage | undefined {
    if (!('method' in message)) return undefined;
    let m = message;
    if (this.#sole === undefined && m.params) {
      // Task ids in notifications (tasks/status, related-task metadata) name their upstream too.
      const params = mapTaskIds(m.params, (id) => session.ids.task(session.id, upstream, id));
      if (params !== m.params) m = { ...m, params };
    }
    if (m.method.endsWith('/list_changed') && m.method !== 'notifications/roots/list_changed') {
      this.#deps.catalog.refresh(upstream, session.profile);
      return undefined;
    }
    if (m.method === 'notifications/resources/updated' && typeof m.params?.uri === 'string') {
      const view = this.#deps.catalog.view(this.path, session.profile);
      if (view.wrapped.has(upstream))
        return { ...m, params: { ...m.params, uri: exposeUri(view, upstream, m.params.uri) } };
      return m;
    }
    if (isRequest(m)) {
      // A server→client request the client cannot answer (it did not declare the capability) is refused
      // to the upstream at once, with why, instead of reaching a client that would fail it.
      const needs = CLIENT_CAPABILITY[m.method];
      if (needs && session.record.clientCapabilities[needs] === undefined) {
        const error = {
          code: ErrorCode.MethodNotFound,
          message: `the client did not declare the ${needs} capability, so the gateway cannot relay ${m.method} to it`,
        };
        void session
          .readyUpstream(upstream)
          ?.respond({ jsonrpc: '2.0', id: m.id, error })
          .catch(() => {});
        return undefined;
      }
    }
    return session.rewriteForClient(upstream, m);
  }

  /** Client notifications: cancellation follows the rewritten id; the rest goes to open upstream sessions. */
  async notification(session: GatewaySession, n: JsonRpcNotification): Promise<void> {
    if (n.method === 'notifications/initialized') return; // each upstream session was initialized by the gateway
    if (n.method === 'notifications/cancelled') {
      const requestId = n.params?.requestId;
      if (typeof requestId !== 'string' && typeof requestId !== 'number') return;
      const inflight = session.inflightRequest(requestId);
      if (!inflight) return; // already answered, or never ours: nothing to cancel
      const us = session.readyUpstream(inflight.upstream);
      if (!us) return; // its upstream session is gone, and the request with it
      const reason = typeof n.params?.reason === 'string' ? n.params.reason : undefined;
      await us.cancel(requestId, reason);
      return;
    }
    const open = await session.openUpstreams();
    await Promise.allSettled(open.map((us) => us.notify(n)));
  }

  /** A client's answer to a server→client request: back to the upstream that asked, by its id alone. */
  async response(session: GatewaySession, res: JsonRpcResponse): Promise<void> {
    const origin = res.id === null ? undefined : session.ids.parseServerRequest(session.id, res.id);
    if (!origin || !this.#byName.has(origin.upstream)) {
      this.#deps.logger.warn(
        { sessionId: session.id },
        'dropped a client response whose id matches no server request',
      );
      return;
    }
    const us = session.readyUpstream(origin.upstream);
    if (!us) {
      this.#deps.logger.warn(
        { sessionId: session.id, upstream: origin.upstream },
        'dropped a client response: the upstream session that asked is gone',
      );
      return;
    }
    await us.respond({ ...res, id: origin.id });
  }

  #emit(
    sessionId: string | undefined,
    method: string,
    target: CallTarget | string | undefined,
    meta: RequestMeta,
    response: JsonRpcResponse,
    outcome: Outcome,
    upstreamMs: number | undefined,
    reason?: string,
    request?: JsonRpcRequest,
  ): void {
    const sink = this.#deps.sink;
    const span = meta.span;
    if (sink === noopSink && !span) return; // nothing listens: build no event
    const t = typeof target === 'string' ? { upstream: target, original: undefined } : target;
    const p = meta.principal;
    const kind = t && 'kind' in t && t.kind !== 'none' ? t.kind : undefined;
    const event: ExchangeEvent = {
      startedAt: meta.startedAt,
      route: this.path,
      sessionId,
      subject: p?.subject,
      mcpMethod: method,
      upstream: t?.upstream || undefined,
      target: t?.original,
      outcome,
      httpStatus: httpAnswer(response)?.status ?? 200,
      rpcCode: 'error' in response ? response.error.code : undefined,
      durationMs: performance.now() - meta.t0,
      upstreamMs,
      requestId: meta.requestId,
      ...(reason === undefined ? {} : { reason }),
      agent: p?.agent,
      tenant: p?.tenant,
      targetKind: kind,
      isError: 'result' in response && response.result.isError === true ? true : undefined,
      // An error answer an upstream gave (not one the gateway made when the call failed) is the upstream's code.
      upstreamCode:
        upstreamCode(response) ??
        (outcome === 'error' && upstreamMs !== undefined && 'error' in response
          ? response.error.code
          : undefined),
      clientIp: meta.clientIp,
      userAgent: meta.userAgent,
      requestBytes: meta.bytesIn,
      traceId: meta.traceId,
      spanId: meta.spanId,
      request,
      response,
    };
    span?.record(event);
    if (sink !== noopSink) sink.emit(event);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The upstream's own answer code an answer carries (see UPSTREAM_CODE), else its JSON-RPC error code. */
function upstreamCode(res: JsonRpcResponse): number | undefined {
  const code = (res as { [UPSTREAM_CODE]?: number })[UPSTREAM_CODE];
  return code;
}
