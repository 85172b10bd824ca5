// The router of one route (one virtual MCP server): answers initialize and ping itself, resolves each
// request's target upstream, runs the policy chain, dispatches, and emits one event per exchange.

import { asGatehouseError, Errors } from '../mcp/errors.ts';
import {
  idKey,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../mcp/jsonrpc.ts';
import { decodeServerRequestId } from '../mcp/server-request-id.ts';
import { negotiateVersion } from '../mcp/versions.ts';
import type { PolicyChain } from '../policy/chain.ts';
import { type ExchangeSink, noopSink, type Outcome } from '../telemetry/events.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Upstream } from '../upstream/types.ts';
import type { CallContext, CallTarget, Principal } from './context.ts';
import { GatewaySession } from './session.ts';
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
}

export interface RouteDeps {
  path: string;
  upstreams: readonly Upstream[];
  chain: PolicyChain;
  sink: ExchangeSink;
  sessions: SessionRegistry;
  logger: Logger;
  gatewayInfo: { name: string; version: string };
}

export class Router {
  readonly path: string;
  readonly #deps: RouteDeps;
  readonly #byName: ReadonlyMap<string, Upstream>;
  readonly #only: Upstream;

  constructor(deps: RouteDeps) {
    if (deps.upstreams.length !== 1)
      throw Errors.internal('a route serves exactly one upstream in this version');
    this.#deps = deps;
    this.path = deps.path;
    this.#byName = new Map(deps.upstreams.map((u) => [u.name, u]));
    this.#only = deps.upstreams[0]!;
  }

  /** initialize: a new session, its upstream sessions opened, the answer built from theirs. */
  async initialize(
    req: JsonRpcRequest,
    meta: RequestMeta,
  ): Promise<{ response: JsonRpcResponse; session?: GatewaySession }> {
    const p = req.params ?? {};
    const bad =
      typeof p.protocolVersion !== 'string'
        ? '"protocolVersion" (a string)'
        : typeof p.capabilities !== 'object' || p.capabilities === null || Array.isArray(p.capabilities)
          ? '"capabilities" (an object)'
          : typeof p.clientInfo !== 'object' || p.clientInfo === null || Array.isArray(p.clientInfo)
            ? '"clientInfo" (an object)'
            : undefined;
    if (bad) {
      const response = Errors.invalidParams(`Invalid params: initialize needs ${bad}`).toResponse(req.id);
      this.#emit(undefined, req.method, undefined, meta, response, 'error', undefined);
      return { response };
    }
    const version = negotiateVersion(p.protocolVersion);
    const session = await this.#deps.sessions.create(
      {
        route: this.path,
        protocolVersion: version,
        clientCapabilities: p.capabilities as Record<string, unknown>,
        clientInfo: p.clientInfo as Record<string, unknown>,
      },
      meta.principal,
      this.#byName,
      meta.startedAt,
    );
    const t = performance.now();
    try {
      const us = await session.upstream(this.#only.name);
      const up = us.initializeResult;
      const result: Record<string, unknown> = {
        protocolVersion: version,
        capabilities: up.capabilities ?? {},
        serverInfo: up.serverInfo ?? this.#deps.gatewayInfo,
      };
      if (typeof up.instructions === 'string') result.instructions = up.instructions;
      const response: JsonRpcResponse = { jsonrpc: '2.0', id: req.id, result };
      this.#emit(session.id, req.method, this.#only.name, meta, response, 'ok', performance.now() - t);
      return { response, session };
    } catch (err) {
      await this.#deps.sessions.delete(session.id, 'initialize failed');
      const e = asGatehouseError(err);
      const response = e.toResponse(req.id);
      this.#emit(
        undefined,
        req.method,
        this.#only.name,
        meta,
        response,
        'upstream_error',
        performance.now() - t,
      );
      return { response };
    }
  }

  /** Any request but initialize. Never throws: every failure becomes a JSON-RPC error answer. */
  async request(
    session: GatewaySession,
    req: JsonRpcRequest,
    channel: ReplyChannel,
    meta: RequestMeta,
  ): Promise<JsonRpcResponse> {
    if (req.method === 'ping') {
      const response: JsonRpcResponse = { jsonrpc: '2.0', id: req.id, result: {} };
      this.#emit(session.id, req.method, undefined, meta, response, 'ok', undefined);
      return response;
    }
    if (req.method === 'initialize') {
      const response = Errors.invalidRequest(
        'Invalid Request: this session is already initialized',
      ).toResponse(req.id);
      this.#emit(session.id, req.method, undefined, meta, response, 'error', undefined);
      return response;
    }
    const target = this.#target(req);
    const ctx: CallContext = {
      route: this.path,
      sessionId: session.id,
      principal: meta.principal,
      protocolVersion: session.protocolVersion,
      request: req,
      target,
      requestId: meta.requestId,
      now: meta.startedAt,
    };
    const chain = this.#deps.chain;
    if (!chain.empty) {
      const d = await chain
        .onRequest(ctx)
        .catch((err: unknown) => ({ allow: false as const, error: asGatehouseError(err) }));
      if (!d.allow) {
        const response = d.error.toResponse(req.id);
        this.#emit(session.id, req.method, target, meta, response, 'denied', undefined);
        return response;
      }
    }
    const { key, tracked } = session.trackRequest(req.id, target.upstream);
    const t = performance.now();
    let response: JsonRpcResponse;
    let outcome: Outcome;
    try {
      const us = session.readyUpstream(target.upstream) ?? (await session.upstream(target.upstream));
      response = await us.request(ctx.request, {
        onStream: () => channel.stream(),
        onPause: () => channel.pause(),
        onMessage: (m) => channel.send(GatewaySession.rewriteForClient(target.upstream, m)),
      });
      outcome = 'error' in response ? 'error' : 'ok';
    } catch (err) {
      const e = asGatehouseError(err);
      outcome = e.code === 'ERR_CANCELLED' ? 'cancelled' : 'upstream_error';
      response = e.toResponse(req.id);
    } finally {
      session.untrackRequest(key, tracked);
    }
    const upstreamMs = performance.now() - t;
    if (!chain.empty)
      response = await chain
        .onResponse(ctx, response)
        .catch((err: unknown) => asGatehouseError(err).toResponse(req.id));
    this.#emit(session.id, req.method, target, meta, response, outcome, upstreamMs);
    return response;
  }

  /** Client notifications: cancellation follows the rewritten id; the rest goes to open upstream sessions. */
  async notification(session: GatewaySession, n: JsonRpcNotification): Promise<void> {
    if (n.method === 'notifications/initialized') return; // each upstream session was initialized by the gateway
    if (n.method === 'notifications/cancelled') {
      const requestId = n.params?.requestId;
      if (typeof requestId !== 'string' && typeof requestId !== 'number') return;
      const inflight = session.inflight.get(idKey(requestId));
      if (!inflight) return; // already answered, or never ours: nothing to cancel
      const us = await session.upstream(inflight.upstream);
      const reason = typeof n.params?.reason === 'string' ? n.params.reason : undefined;
      await us.cancel(requestId, reason);
      return;
    }
    const open = await session.openUpstreams();
    await Promise.allSettled(open.map((us) => us.notify(n)));
  }

  /** A client's answer to a server→client request: back to the upstream that asked, by its id alone. */
  async response(session: GatewaySession, res: JsonRpcResponse): Promise<void> {
    const origin = res.id === null ? undefined : decodeServerRequestId(res.id);
    if (!origin || !this.#byName.has(origin.upstream)) {
      this.#deps.logger.warn(
        { sessionId: session.id },
        'dropped a client response whose id matches no server request',
      );
      return;
    }
    const us = await session.upstream(origin.upstream);
    await us.respond({ ...res, id: origin.id });
  }

  #target(req: JsonRpcRequest): CallTarget {
    const p = req.params;
    switch (req.method) {
      case 'tools/call':
        return {
          upstream: this.#only.name,
          original: typeof p?.name === 'string' ? p.name : undefined,
          kind: 'tool',
        };
      case 'prompts/get':
        return {
          upstream: this.#only.name,
          original: typeof p?.name === 'string' ? p.name : undefined,
          kind: 'prompt',
        };
      case 'resources/read':
      case 'resources/subscribe':
      case 'resources/unsubscribe':
        return {
          upstream: this.#only.name,
          original: typeof p?.uri === 'string' ? p.uri : undefined,
          kind: 'resource',
        };
      default:
        return { upstream: this.#only.name, original: undefined, kind: 'none' };
    }
  }

  #emit(
    sessionId: string | undefined,
    method: string,
    target: CallTarget | string | undefined,
    meta: RequestMeta,
    response: JsonRpcResponse,
    outcome: Outcome,
    upstreamMs: number | undefined,
  ): void {
    const sink = this.#deps.sink;
    if (sink === noopSink) return; // nothing listens: build no event
    const t = typeof target === 'string' ? { upstream: target, original: undefined } : target;
    sink.emit({
      startedAt: meta.startedAt,
      route: this.path,
      sessionId,
      subject: meta.principal?.subject,
      mcpMethod: method,
      upstream: t?.upstream,
      target: t?.original,
      outcome,
      httpStatus: 200,
      rpcCode: 'error' in response ? response.error.code : undefined,
      durationMs: performance.now() - meta.t0,
      upstreamMs,
      requestId: meta.requestId,
    });
  }
}
