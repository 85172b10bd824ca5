// The benchmark's upstream: a minimal, stateful MCP server over Streamable HTTP (JSON responses, no SSE)
// with one `echo` tool. Plain node:http and hand-written JSON-RPC so that it is never the bottleneck.
// Usage: node bench/upstream.ts --port N
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';

const SUPPORTED_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];
const LATEST_VERSION = '2025-11-25';
const MAX_BODY_BYTES = 1024 * 1024;

const ECHO_TOOL = {
  name: 'echo',
  description: 'Returns its `message` argument.',
  inputSchema: {
    type: 'object',
    properties: { message: { type: 'string' } },
    required: ['message'],
  },
};

type Id = string | number;
type Message = { id?: Id; method?: string; params?: Record<string, unknown> };

const sessions = new Set<string>();

/** What to answer over HTTP: a status and, unless 202/200-empty, one JSON body. */
type Reply = { status: number; body?: unknown; headers?: Record<string, string> };

function httpError(status: number, code: number, message: string): Reply {
  return { status, body: { jsonrpc: '2.0', id: null, error: { code, message } } };
}

function result(id: Id, value: unknown): unknown {
  return { jsonrpc: '2.0', id, result: value };
}

function rpcError(id: Id, code: number, message: string): unknown {
  return { jsonrpc: '2.0', id, error: { code, message } };
}

function initialize(id: Id, params: Record<string, unknown>): unknown {
  const requested = params.protocolVersion;
  const version =
    typeof requested === 'string' && SUPPORTED_VERSIONS.includes(requested) ? requested : LATEST_VERSION;
  return result(id, {
    protocolVersion: version,
    capabilities: { tools: {} },
    serverInfo: { name: 'gatehouse-bench-upstream', version: '0.1.0' },
  });
}

function call(id: Id, params: Record<string, unknown>): unknown {
  if (params.name !== 'echo') return rpcError(id, -32602, `Unknown tool: ${String(params.name)}`);
  const args = params.arguments as Record<string, unknown> | undefined;
  const message = args?.message;
  if (typeof message !== 'string') return rpcError(id, -32602, 'echo: `message` must be a string');
  return result(id, { content: [{ type: 'text', text: message }] });
}

function answer(msg: Message & { id: Id }): unknown {
  const params = msg.params ?? {};
  switch (msg.method) {
    case 'tools/call':
      return call(msg.id, params);
    case 'tools/list':
      return result(msg.id, { tools: [ECHO_TOOL] });
    case 'ping':
      return result(msg.id, {});
    default:
      return rpcError(msg.id, -32601, `Method not found: ${String(msg.method)}`);
  }
}

function onMessage(req: IncomingMessage, body: string): Reply {
  let msg: Message;
  try {
    msg = JSON.parse(body);
  } catch {
    return httpError(400, -32700, 'Parse error: Invalid JSON');
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    return httpError(400, -32600, 'Invalid Request: expected one JSON-RPC message');
  }

  if (msg.method === 'initialize' && msg.id !== undefined) {
    const sessionId = randomUUID();
    sessions.add(sessionId);
    return {
      status: 200,
      body: initialize(msg.id, msg.params ?? {}),
      headers: { 'mcp-session-id': sessionId },
    };
  }

  const sessionId = req.headers['mcp-session-id'];
  if (typeof sessionId !== 'string')
    return httpError(400, -32000, 'Bad Request: Mcp-Session-Id header is required');
  if (!sessions.has(sessionId)) return httpError(404, -32001, 'Session not found');
  const version = req.headers['mcp-protocol-version'];
  if (typeof version === 'string' && !SUPPORTED_VERSIONS.includes(version)) {
    return httpError(400, -32000, `Bad Request: Unsupported protocol version: ${version}`);
  }

  // Notifications (notifications/initialized included) and responses are accepted without a body.
  if (msg.id === undefined || msg.method === undefined) return { status: 202 };
  return { status: 200, body: answer(msg as Message & { id: Id }) };
}

function onPost(req: IncomingMessage, body: string): Reply {
  const accept = req.headers.accept ?? '';
  if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
    return httpError(406, -32000, 'Not Acceptable: accept both application/json and text/event-stream');
  }
  if (!req.headers['content-type']?.startsWith('application/json')) {
    return httpError(415, -32000, 'Unsupported Media Type: Content-Type must be application/json');
  }
  return onMessage(req, body);
}

function onDelete(req: IncomingMessage): Reply {
  const sessionId = req.headers['mcp-session-id'];
  if (typeof sessionId !== 'string' || !sessions.delete(sessionId)) {
    return httpError(404, -32001, 'Session not found');
  }
  return { status: 200 };
}

function route(req: IncomingMessage, body: string): Reply {
  if (req.url !== '/mcp') return httpError(404, -32000, 'Not Found');
  if (req.method === 'POST') return onPost(req, body);
  if (req.method === 'DELETE') return onDelete(req);
  // This server offers no server-initiated stream (GET) and nothing else.
  return { status: 405, headers: { allow: 'POST, DELETE' } };
}

function write(res: ServerResponse, reply: Reply): void {
  if (reply.body === undefined) {
    res.writeHead(reply.status, reply.headers).end();
    return;
  }
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...reply.headers,
  });
  res.end(text);
}

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  req.on('end', () => {
    const reply =
      size > MAX_BODY_BYTES
        ? httpError(413, -32000, 'Payload Too Large')
        : route(req, Buffer.concat(chunks).toString('utf8'));
    write(res, reply);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : values.port;
  console.log(`upstream listening on http://127.0.0.1:${port}/mcp`);
});
