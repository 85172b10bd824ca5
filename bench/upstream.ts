// The benchmark's upstream: minimal, stateful MCP servers over Streamable HTTP (JSON responses, no SSE)
// with an `echo` tool and optionally `--tools M` synthetic ones. One process can be `--servers N`
// independent servers at /mcp/0 … /mcp/N-1 (/mcp is server 0). Plain node:http and hand-written
// JSON-RPC, with every tools/list page serialised at start-up, so that it is never the bottleneck.
// Usage: node bench/upstream.ts --port P [--servers N] [--tools M] [--page-size K]
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { callAnswer, syntheticTools } from './fixture-tools.ts';

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

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    servers: { type: 'string', default: '1' },
    tools: { type: 'string', default: '0' },
    'page-size': { type: 'string', default: '0' },
  },
});
const serverCount = Number(values.servers);
const toolCount = Number(values.tools);
const pageSize = Number(values['page-size']);
if (
  !(Number.isInteger(serverCount) && serverCount >= 1) ||
  !(Number.isInteger(toolCount) && toolCount >= 0)
) {
  console.error('--servers must be an integer ≥ 1 and --tools an integer ≥ 0');
  process.exit(2);
}
if (!(Number.isInteger(pageSize) && pageSize >= 0)) {
  console.error('--page-size must be an integer ≥ 0 (0: every tool on one page)');
  process.exit(2);
}

/** One MCP server of this process: its own sessions; the tools (and their pages) are the same on all. */
type Server = { readonly index: number; readonly sessions: Set<string> };

const TOOLS = [ECHO_TOOL, ...syntheticTools(toolCount)];
const SYNTHETIC = new Set(TOOLS.slice(1).map((t) => t.name));
/** The `result` of every tools/list page, serialised once; the cursor of page k (k ≥ 1) is `p<k>`. */
const PAGES: string[] = (() => {
  const size = pageSize === 0 ? TOOLS.length : pageSize;
  const pages: string[] = [];
  for (let start = 0, k = 1; start < TOOLS.length; start += size, k++) {
    const tools = TOOLS.slice(start, start + size);
    const more = start + size < TOOLS.length;
    pages.push(JSON.stringify(more ? { tools, nextCursor: `p${k}` } : { tools }));
  }
  return pages;
})();

const servers: Server[] = Array.from({ length: serverCount }, (_, index) => ({ index, sessions: new Set() }));
/** Request path → server; /mcp stays server 0, as it was before there were several. */
const byPath = new Map<string, Server>([['/mcp', servers[0]!]]);
for (const s of servers) byPath.set(`/mcp/${s.index}`, s);

/** What to answer over HTTP: a status and, unless 202/200-empty, one JSON body (or its serialised text). */
type Reply = { status: number; body?: unknown; text?: string; headers?: Record<string, string> };

function httpError(status: number, code: number, message: string): Reply {
  return { status, body: { jsonrpc: '2.0', id: null, error: { code, message } } };
}

function result(id: Id, value: unknown): unknown {
  return { jsonrpc: '2.0', id, result: value };
}

function rpcError(id: Id, code: number, message: string): unknown {
  return { jsonrpc: '2.0', id, error: { code, message } };
}

function initialize(server: Server, id: Id, params: Record<string, unknown>): unknown {
  const requested = params.protocolVersion;
  const version =
    typeof requested === 'string' && SUPPORTED_VERSIONS.includes(requested) ? requested : LATEST_VERSION;
  return result(id, {
    protocolVersion: version,
    capabilities: { tools: {} },
    serverInfo: {
      name: serverCount === 1 ? 'gatehouse-bench-upstream' : `gatehouse-bench-upstream-${server.index}`,
      version: '0.1.0',
    },
  });
}

function call(server: Server, id: Id, params: Record<string, unknown>): unknown {
  const name = params.name;
  if (typeof name === 'string' && SYNTHETIC.has(name)) {
    return result(id, { content: [{ type: 'text', text: callAnswer(server.index, name) }] });
  }
  if (name !== 'echo') return rpcError(id, -32602, `Unknown tool: ${String(name)}`);
  const args = params.arguments as Record<string, unknown> | undefined;
  const message = args?.message;
  if (typeof message !== 'string') return rpcError(id, -32602, 'echo: `message` must be a string');
  return result(id, { content: [{ type: 'text', text: message }] });
}

const CURSOR = /^p[1-9][0-9]*$/;

/** The page a tools/list cursor names: none is page 0, `p<k>` page k; undefined when it names no page. */
function pageOf(cursor: unknown): number | undefined {
  if (cursor === undefined) return 0;
  if (typeof cursor !== 'string' || !CURSOR.test(cursor)) return undefined;
  const page = Number(cursor.slice(1));
  return page < PAGES.length ? page : undefined;
}

function list(id: Id, params: Record<string, unknown>): Reply {
  const page = pageOf(params.cursor);
  if (page === undefined) {
    return { status: 200, body: rpcError(id, -32602, `Invalid cursor: ${String(params.cursor)}`) };
  }
  return { status: 200, text: `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${PAGES[page]}}` };
}

function answer(server: Server, msg: Message & { id: Id }): Reply {
  const params = msg.params ?? {};
  switch (msg.method) {
    case 'tools/call':
      return { status: 200, body: call(server, msg.id, params) };
    case 'tools/list':
      return list(msg.id, params);
    case 'ping':
      return { status: 200, body: result(msg.id, {}) };
    default:
      return { status: 200, body: rpcError(msg.id, -32601, `Method not found: ${String(msg.method)}`) };
  }
}

function onMessage(server: Server, req: IncomingMessage, body: string): Reply {
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
    server.sessions.add(sessionId);
    return {
      status: 200,
      body: initialize(server, msg.id, msg.params ?? {}),
      headers: { 'mcp-session-id': sessionId },
    };
  }

  const sessionId = req.headers['mcp-session-id'];
  if (typeof sessionId !== 'string')
    return httpError(400, -32000, 'Bad Request: Mcp-Session-Id header is required');
  if (!server.sessions.has(sessionId)) return httpError(404, -32001, 'Session not found');
  const version = req.headers['mcp-protocol-version'];
  if (typeof version === 'string' && !SUPPORTED_VERSIONS.includes(version)) {
    return httpError(400, -32000, `Bad Request: Unsupported protocol version: ${version}`);
  }

  // Notifications (notifications/initialized included) and responses are accepted without a body.
  if (msg.id === undefined || msg.method === undefined) return { status: 202 };
  return answer(server, msg as Message & { id: Id });
}

function onPost(server: Server, req: IncomingMessage, body: string): Reply {
  const accept = req.headers.accept ?? '';
  if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
    return httpError(406, -32000, 'Not Acceptable: accept both application/json and text/event-stream');
  }
  if (!req.headers['content-type']?.startsWith('application/json')) {
    return httpError(415, -32000, 'Unsupported Media Type: Content-Type must be application/json');
  }
  return onMessage(server, req, body);
}

function onDelete(server: Server, req: IncomingMessage): Reply {
  const sessionId = req.headers['mcp-session-id'];
  if (typeof sessionId !== 'string' || !server.sessions.delete(sessionId)) {
    return httpError(404, -32001, 'Session not found');
  }
  return { status: 200 };
}

function route(req: IncomingMessage, body: string): Reply {
  const server = byPath.get(req.url ?? '');
  if (server === undefined) return httpError(404, -32000, 'Not Found');
  if (req.method === 'POST') return onPost(server, req, body);
  if (req.method === 'DELETE') return onDelete(server, req);
  // This server offers no server-initiated stream (GET) and nothing else.
  return { status: 405, headers: { allow: 'POST, DELETE' } };
}

function write(res: ServerResponse, reply: Reply): void {
  if (reply.body === undefined && reply.text === undefined) {
    res.writeHead(reply.status, reply.headers).end();
    return;
  }
  const text = reply.text ?? JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...reply.headers,
  });
  res.end(text);
}

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
  const many = serverCount === 1 ? '' : ` and ${serverCount} servers at /mcp/0 … /mcp/${serverCount - 1}`;
  const tools = `${TOOLS.length} tool${TOOLS.length === 1 ? '' : 's'}${serverCount === 1 ? '' : ' each'}`;
  console.log(`upstream listening on http://127.0.0.1:${port}/mcp${many}, ${tools}`);
});
