// The 2024-11-05 HTTP+SSE transport for old clients, per route: GET <route>/sse opens the stream and
// names, in an `endpoint` event, where to POST (<route>/messages?sessionId=…); every answer and server
// message travels on that stream. The MCP session lives as long as the stream.

import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Authenticate } from '../auth/authenticate.ts';
import type { ReplyChannel, Router } from '../gateway/router.ts';
import type { GatewaySession } from '../gateway/session.ts';
import { principalKey, type SessionRegistry } from '../gateway/sessions.ts';
import { asGatehouseError, Errors, type GatehouseError } from '../mcp/errors.ts';
import {
  ErrorCode,
  errorResponse,
  isNotification,
  isRequest,
  type JsonRpcMessage,
  parseBody,
} from '../mcp/jsonrpc.ts';
import { accepts } from './guards.ts';
import { header, isJsonType, meta } from './request.ts';
import { SseWriter } from './sse-writer.ts';

export interface LegacyEndpointDeps {
  router: Router;
  sessions: SessionRegistry;
  corsHeaders(req: FastifyRequest): Record<string, string>;
  keepaliveMs: number;
  /** The route's authentication, when it has one: a principal, or a thrown 401. */
  authenticate: Authenticate | undefined;
  /** `audit: required`: the refusal (503) of new calls while audit records cannot be kept. */
  auditGate?: ((route: string) => GatehouseError | undefined) | undefined;
  /** Streams that have not initialized yet, at most (they hold a connection each). */
  maxPending: number;
  /** How long a stream may stay without initialize before it is ended. */
  initializeTimeoutMs: number;
}

interface Connection {
  /** The principal that opened the stream: only it may post to it. */
  owner: string;
  writer: SseWriter;
  session: GatewaySession | undefined;
  /** initialize is under way (a second one is refused; a stream closing meanwhile ends what it opens). */
  initializing: boolean;
  /** Ends a stream that has not initialized in time. */
  timer: NodeJS.Timeout | undefined;
  /** Notifications and responses are handled in arrival order. */
  queue: Promise<void>;
}

export function legacyPaths(route: string): { sse: string; messages: string } {
  const base = route === '/' ? '' : route;
  return { sse: `${base}/sse`, messages: `${base}/messages` };
}

export function registerLegacySseEndpoint(app: FastifyInstance, deps: LegacyEndpointDeps): void {
  const { router, sessions } = deps;
  const paths = legacyPaths(router.path);
  const connections = new Map<string, Connection>();
  let uninitialized = 0;
  const settled = (conn: Connection) => {
    if (conn.timer === undefined) return;
    clearTimeout(conn.timer);
    conn.timer = undefined;
    uninitialized--;
  };
  // At shutdown every legacy stream ends (their sessions are ended by the registry): none may hold the
  // server open until the deadline.
  app.addHook('preClose', (done) => {
    for (const c of connections.values()) c.writer.close();
    done();
  });

  app.get(paths.sse, async (req, reply) => {
    const owner = principalKey(
      deps.authenticate ? await deps.authenticate(req.headers, Date.now(), req) : undefined,
    );
    if (!accepts(header(req, 'accept'), 'text/event-stream')) {
      throw Errors.notAcceptable('Not Acceptable: the SSE transport needs Accept: text/event-stream');
    }
    if (uninitialized >= deps.maxPending) {
      throw Errors.overloaded('too many SSE connections have not initialized yet; retry later');
    }
    reply.hijack();
    const id = randomBytes(24).toString('base64url');
    const writer = new SseWriter(reply.raw, deps.corsHeaders(req), deps.keepaliveMs);
    const conn: Connection = {
      owner,
      writer,
      session: undefined,
      initializing: false,
      timer: undefined,
      queue: Promise.resolve(),
    };
    uninitialized++;
    conn.timer = setTimeout(() => writer.close(), deps.initializeTimeoutMs);
    conn.timer.unref();
    connections.set(id, conn);
    reply.raw.write(`event: endpoint\ndata: ${paths.messages}?sessionId=${id}\n\n`);
    writer.onClose(() => {
      settled(conn);
      connections.delete(id);
      if (conn.session) void sessions.delete(conn.session.id, 'SSE stream closed');
    });
    return reply;
  });

  app.post(paths.messages, async (req, reply) => {
    const m = meta(req);
    if (deps.authenticate) m.principal = await deps.authenticate(req.headers, m.startedAt, req);
    const id = (req.query as Record<string, unknown>).sessionId;
    const found = typeof id === 'string' ? connections.get(id) : undefined;
    // Another principal's stream is indistinguishable from one that does not exist.
    const conn = found && found.owner === principalKey(m.principal) ? found : undefined;
    if (!conn)
      throw Errors.sessionNotFound(
        'Session not found: open the SSE stream first (GET …/sse) and post to the endpoint it names',
      );
    if (!isJsonType(header(req, 'content-type'))) {
      throw Errors.unsupportedMediaType('Unsupported Media Type: Content-Type must be application/json');
    }
    const parsed = parseBody(typeof req.body === 'string' ? req.body : '');
    if (!parsed.ok)
      throw parsed.code === ErrorCode.ParseError
        ? Errors.parse(parsed.message)
        : Errors.invalidRequest(parsed.message);
    if (parsed.batch)
      throw Errors.invalidRequest(
        'Invalid Request: JSON-RPC batches are not part of the 2024-11-05 transport',
      );
    const msg = parsed.messages[0];
    // A call that could not be audited is not served (the refusal is the POST's answer).
    const refusal = isRequest(msg) ? deps.auditGate?.(router.path) : undefined;
    if (refusal) throw refusal;
    // Accepted at once: the answer travels on the stream, possibly much later.
    void reply.code(202).headers(deps.corsHeaders(req)).send('Accepted');
    const send = (x: JsonRpcMessage) => conn.writer.send(x);
    const handle = async (): Promise<void> => {
      if (isRequest(msg) && msg.method === 'initialize') {
        if (conn.session || conn.initializing) {
          send(
            errorResponse(
              msg.id,
              ErrorCode.InvalidRequest,
              'Invalid Request: this session is already initialized',
            ),
          );
          return;
        }
        conn.initializing = true;
        const { response, session } = await router.initialize(msg, m).finally(() => {
          conn.initializing = false;
        });
        if (session) {
          if (!conn.writer.open) {
            // The stream closed while initialize ran: nobody will use (or end) this session.
            await sessions.delete(session.id, 'SSE stream closed during initialize');
            return;
          }
          settled(conn);
          conn.session = session;
          session.attachStream(conn.writer); // server messages outside requests go to the same stream
        }
        send(response);
        return;
      }
      const session = conn.session;
      if (!session || session.closed) {
        if (isRequest(msg))
          send(errorResponse(msg.id, ErrorCode.InvalidRequest, 'Invalid Request: send initialize first'));
        return;
      }
      if (isRequest(msg)) {
        const channel: ReplyChannel = { stream() {}, pause() {}, send };
        const response = await router.request(session, msg, channel, m);
        if (!('error' in response && response.error.code === ErrorCode.RequestCancelled)) send(response);
        return;
      }
      conn.queue = conn.queue.then(() =>
        (isNotification(msg) ? router.notification(session, msg) : router.response(session, msg)).catch(
          (err: unknown) => req.log.warn({ err, requestId: req.id }, 'message not delivered'),
        ),
      );
      await conn.queue;
    };
    await handle().catch((err: unknown) => {
      // The HTTP answer is gone already: a failure is reported on the stream, to the request it concerns.
      if (isRequest(msg)) send(asGatehouseError(err).toResponse(msg.id));
      else req.log.warn({ err, requestId: req.id }, 'message not handled');
    });
    return reply;
  });
}
