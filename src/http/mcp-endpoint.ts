// The Streamable HTTP endpoint of one route: POST (JSON or SSE answers, following the upstream's
// choice), GET (the server→client stream) and DELETE (end the session), with every transport rule of
// 2025-03-26..2025-11-25 enforced before a message reaches the router.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Authenticate } from '../auth/authenticate.ts';
import type { ReplayableStream } from '../gateway/replay.ts';
import type { ReplyChannel, RequestMeta, Router } from '../gateway/router.ts';
import type { GatewaySession } from '../gateway/session.ts';
import type { SessionRegistry } from '../gateway/sessions.ts';
import { asGatehouseError, Errors, type GatehouseError } from '../mcp/errors.ts';
import {
  ErrorCode,
  httpAnswer,
  isNotification,
  isRequest,
  type JsonRpcResponse,
  parseBody,
  rawResult,
  serialize,
  serializeFinal,
} from '../mcp/jsonrpc.ts';
import { allowsBatches, isSupportedVersion, PROTOCOL_VERSIONS, primesStreams } from '../mcp/versions.ts';
import type { ExchangeSink } from '../telemetry/events.ts';
import { accepts } from './guards.ts';
import { acceptsBoth, header, isJsonType, JSON_TYPE, meta } from './request.ts';
import { SseWriter } from './sse-writer.ts';

export interface EndpointDeps {
  router: Router;
  sessions: SessionRegistry;
  sink: ExchangeSink;
  /** Extra headers on every MCP answer (CORS), computed per request. */
  corsHeaders(req: FastifyRequest): Record<string, string>;
  keepaliveMs: number;
  /** The route's authentication, when it has one: a principal, or a thrown 401. */
  authenticate: Authenticate | undefined;
  /** X-Gatehouse-Latency and X-Gatehouse-Upstream-Latency on JSON answers (metrics.latency_headers). */
  latencyHeaders?: boolean;
  /** `audit: required`: the refusal (503) of new calls while audit records cannot be kept. */
  auditGate?: ((route: string) => GatehouseError | undefined) | undefined;
}

/** Refusals already recorded as exchange events here (the error handler records the others). */
const recorded = new WeakSet<object>();
export function recordedAtEdge(err: unknown): boolean {
  return typeof err === 'object' && err !== null && recorded.has(err);
}

const NO_LATENCY: Record<string, string> = Object.freeze({}) as Record<string, string>;

/** The gateway's own time and the upstream's (ms, to the microsecond), like Kong's latency headers. */
function latency(m: RequestMeta): Record<string, string> {
  const up = m.upstreamMs;
  const own = performance.now() - m.t0 - (up ?? 0);
  const h: Record<string, string> = { 'x-gatehouse-latency': own.toFixed(3) };
  if (up !== undefined) h['x-gatehouse-upstream-latency'] = up.toFixed(3);
  return h;
}

/** The code of the answer the gateway makes for a request the client cancelled. */
const REQUEST_CANCELLED = ErrorCode.RequestCancelled;
/** The reconnection delay advertised to clients on resumable streams. */
const RETRY_MS = 1000;

export function registerMcpEndpoint(app: FastifyInstance, deps: EndpointDeps): void {
  const { router, sessions } = deps;
  const path = router.path;
  const latencyOf = deps.latencyHeaders ? latency : () => NO_LATENCY;

  /** A session for this request: the header is required (400), the session must exist (404). */
  async function sessionFor(req: FastifyRequest, m: RequestMeta): Promise<GatewaySession> {
    const sid = header(req, 'mcp-session-id');
    if (!sid)
      throw Errors.sessionRequired(
        'Bad Request: Mcp-Session-Id header is required (send initialize first to get one)',
      );
    const session = await sessions.get(sid, path, m.principal, m.startedAt);
    // An unsupported version is refused. A supported one that differs from the negotiated version is
    // tolerated (clients and test suites send a fixed one); the session's negotiated version governs.
    const version = header(req, 'mcp-protocol-version');
    if (version !== undefined && !isSupportedVersion(version)) {
      throw Errors.badHeader(
        `Bad Request: unsupported MCP-Protocol-Version ${JSON.stringify(version)}; supported: ${PROTOCOL_VERSIONS.join(', ')} (this session uses ${session.protocolVersion})`,
      );
    }
    return session;
  }

  function rejectEdge(m: RequestMeta, method: string, err: GatehouseError): never {
    deps.sink.emit({
      startedAt: m.startedAt,
      route: path,
      sessionId: undefined,
      subject: m.principal?.subject,
      mcpMethod: method,
      upstream: undefined,
      target: undefined,
      outcome: 'error',
      httpStatus: err.httpStatus,
      rpcCode: err.rpcCode,
      reason: err.message,
      durationMs: performance.now() - m.t0,
      upstreamMs: undefined,
      requestId: m.requestId,
      agent: m.principal?.agent,
      tenant: m.principal?.tenant,
      clientIp: m.clientIp,
      userAgent: m.userAgent,
      requestBytes: m.bytesIn,
      traceId: m.traceId,
      spanId: m.spanId,
    });
    recorded.add(err);
    throw err;
  }

  /** The caller, when the route authenticates (a refusal is recorded like any edge refusal). */
  async function identify(req: FastifyRequest, m: RequestMeta): Promise<void> {
    if (!deps.authenticate) return;
    try {
      m.principal = await deps.authenticate(req.headers, m.startedAt, req);
    } catch (err) {
      rejectEdge(m, '', asGatehouseError(err));
    }
  }

  app.post(path, async (req, reply) => {
    const m = meta(req);
    await identify(req, m);
    if (!acceptsBoth(header(req, 'accept'))) {
      rejectEdge(
        m,
        '',
        Errors.notAcceptable(
          'Not Acceptable: the Accept header must list both application/json and text/event-stream',
        ),
      );
    }
    if (!isJsonType(header(req, 'content-type'))) {
      rejectEdge(
        m,
        '',
        Errors.unsupportedMediaType('Unsupported Media Type: Content-Type must be application/json'),
      );
    }
    const parsed = parseBody(typeof req.body === 'string' ? req.body : '');
    if (!parsed.ok) {
      rejectEdge(
        m,
        '',
        parsed.code === ErrorCode.ParseError
          ? Errors.parse(parsed.message)
          : Errors.invalidRequest(parsed.message),
      );
    }
    const messages = parsed.messages;
    const first = messages[0];
    if (deps.auditGate) {
      // Checked before anything is dispatched: a call that could not be audited is not served.
      const refusal = messages.some(isRequest) ? deps.auditGate(path) : undefined;
      if (refusal) rejectEdge(m, isRequest(first) ? first.method : '', refusal);
    }
    if (!parsed.batch && isRequest(first) && first.method === 'initialize') {
      if (header(req, 'mcp-session-id')) {
        rejectEdge(
          m,
          'initialize',
          Errors.invalidRequest(
            'Invalid Request: initialize opens a new session and must not carry Mcp-Session-Id',
          ),
        );
      }
      const { response, session } = await router.initialize(first, m);
      if (session) reply.header('mcp-session-id', session.id);
      return reply
        .code(200)
        .headers({ ...deps.corsHeaders(req), ...latencyOf(m) })
        .type(JSON_TYPE)
        .send(JSON.stringify(response));
    }
    if (parsed.batch && messages.some((x) => isRequest(x) && x.method === 'initialize')) {
      rejectEdge(
        m,
        'initialize',
        Errors.invalidRequest('Invalid Request: initialize must not be part of a JSON-RPC batch'),
      );
    }
    const method = isRequest(first) || isNotification(first) ? first.method : '';
    const session = await sessionFor(req, m).catch((err: GatehouseError) => rejectEdge(m, method, err));
    if (parsed.batch && !allowsBatches(session.protocolVersion)) {
      rejectEdge(
        m,
        method,
        Errors.invalidRequest(
          `Invalid Request: JSON-RPC batches are not allowed in protocol version ${session.protocolVersion} (only 2025-03-26)`,
        ),
      );
    }

    // Notifications and responses first, in order; then the requests.
    for (const msg of messages) {
      if (isNotification(msg))
        await router
          .notification(session, msg)
          .catch((err) => req.log.warn({ err, requestId: req.id }, 'notification not delivered'));
      else if (!isRequest(msg))
        await router
          .response(session, msg)
          .catch((err) => req.log.warn({ err, requestId: req.id }, 'response not delivered'));
    }
    const requests = messages.filter(isRequest);
    if (requests.length === 0) return reply.code(202).headers(deps.corsHeaders(req)).send();

    if (!parsed.batch) {
      // The answer mirrors the upstream's choice: JSON, or an SSE stream opened as soon as it opens one.
      // From 2025-11-25 the stream is resumable: primed with an event id, every event kept for a resume.
      let sse: SseWriter | undefined;
      let replay: ReplayableStream | undefined;
      const channel: ReplyChannel = {
        stream() {
          if (sse) return;
          reply.hijack();
          sse = new SseWriter(reply.raw, deps.corsHeaders(req));
          if (primesStreams(session.protocolVersion)) {
            replay = session.openReplay(Date.now());
            sse.prime(replay.primingId, RETRY_MS);
            replay.attach(sse, 0);
            sse.onClose(() => replay?.detach(sse!));
          }
        },
        send(msg) {
          channel.stream();
          if (replay) replay.push(msg);
          else sse!.send(msg);
        },
        pause() {
          // Mirror the upstream's polling: a resumable stream is closed; the client resumes it by GET.
          if (replay && sse) {
            replay.detach(sse);
            sse.close();
          }
        },
      };
      const response = await router.request(session, requests[0]!, channel, m);
      // A request the client cancelled gets no answer (the spec's SHOULD); a stream just ends.
      const cancelled = 'error' in response && response.error.code === REQUEST_CANCELLED;
      if (replay) {
        if (!cancelled) replay.push(response);
        replay.complete(Date.now());
        return reply;
      }
      if (sse) {
        if (!cancelled) sse.send(response);
        sse.close();
        return reply;
      }
      const raw = rawResult(response);
      if (raw) {
        // A cached page: written as head, cached bytes, tail — no copy, no re-encoding of a large list.
        reply.hijack();
        const head = Buffer.from(`{"jsonrpc":"2.0","id":${JSON.stringify(response.id)},"result":`);
        reply.raw.writeHead(200, {
          ...deps.corsHeaders(req),
          ...latencyOf(m),
          'content-type': 'application/json; charset=utf-8',
          'content-length': head.length + raw.length + 1,
        });
        reply.raw.write(head);
        reply.raw.write(raw);
        reply.raw.end('}');
        return reply;
      }
      const http = httpAnswer(response);
      return reply
        .code(http?.status ?? 200)
        .headers({ ...deps.corsHeaders(req), ...latencyOf(m), ...http?.headers })
        .type(JSON_TYPE)
        .send(serializeFinal(response));
    }

    // A 2025-03-26 batch: answered as one JSON array; interim messages go to the session's GET stream.
    const batchChannel: ReplyChannel = {
      stream() {},
      pause() {},
      send(msg) {
        session.sendToClient(msg);
      },
    };
    const responses: JsonRpcResponse[] = await Promise.all(
      requests.map((r) => router.request(session, r, batchChannel, m)),
    );
    const body = `[${responses.map((r) => serialize(r) ?? 'null').join(',')}]`;
    return reply.code(200).headers(deps.corsHeaders(req)).type(JSON_TYPE).send(body);
  });

  app.get(path, async (req, reply) => {
    const m = meta(req);
    await identify(req, m);
    if (!accepts(header(req, 'accept'), 'text/event-stream')) {
      rejectEdge(m, '', Errors.notAcceptable('Not Acceptable: a GET stream needs Accept: text/event-stream'));
    }
    const session = await sessionFor(req, m).catch((err: GatehouseError) => rejectEdge(m, '', err));
    // A resume (Last-Event-ID) of an answer stream: replay what the client missed, then go live until the answer.
    const lastEventId = header(req, 'last-event-id');
    const resume = lastEventId === undefined ? undefined : session.findReplay(lastEventId);
    if (resume) {
      reply.hijack();
      const writer = new SseWriter(reply.raw, deps.corsHeaders(req));
      writer.onClose(() => resume.stream.detach(writer));
      resume.stream.attach(writer, resume.seq);
      return reply;
    }
    if (session.hasStream) {
      throw Errors.conflict('Conflict: this session already has an open GET stream; only one is allowed');
    }
    reply.hijack();
    const writer = new SseWriter(reply.raw, deps.corsHeaders(req), deps.keepaliveMs);
    session.attachStream(writer);
    writer.onClose(() => session.detachStream(writer, Date.now()));
    return reply;
  });

  app.delete(path, async (req, reply) => {
    const m = meta(req);
    await identify(req, m);
    const session = await sessionFor(req, m).catch((err: GatehouseError) => rejectEdge(m, '', err));
    await sessions.delete(session.id, 'client ended it');
    return reply.code(200).headers(deps.corsHeaders(req)).send();
  });

  app.route({
    method: ['PUT', 'PATCH', 'HEAD'],
    url: path,
    handler: async (_req, reply) => {
      reply.header('allow', 'GET, POST, DELETE, OPTIONS');
      throw Errors.methodNotAllowed('Method Not Allowed: an MCP endpoint accepts POST, GET and DELETE');
    },
  });
}
