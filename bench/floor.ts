// The floor: the barest Node relay that is still an MCP relay — node:http in, an undici keep-alive Pool out,
// the JSON-RPC id rewritten to a relay-unique number and restored on the way back. Nothing else: no
// validation, sessions, policies or logging. No Node gateway on this machine can be cheaper than this.
// Usage: node bench/floor.ts --port N --upstream http://127.0.0.1:M/mcp
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '0' }, upstream: { type: 'string' } },
});
if (values.upstream === undefined) {
  console.error('usage: node bench/floor.ts --port N --upstream URL');
  process.exit(2);
}
const upstream = new URL(values.upstream);
const pool = new Pool(upstream.origin, { pipelining: 1, keepAliveTimeout: 60_000 });
const FORWARDED = ['content-type', 'accept', 'mcp-session-id', 'mcp-protocol-version'];

let lastId = 0;

function reply(res: ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  res.writeHead(status, headers);
  res.end(body);
}

async function relay(req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
  let msg: { id?: unknown };
  try {
    msg = JSON.parse(raw);
  } catch {
    return reply(
      res,
      400,
      { 'content-type': 'application/json' },
      '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}',
    );
  }
  const clientId = msg.id;
  const relayId = ++lastId;
  if (clientId !== undefined) msg.id = relayId;

  const headers: Record<string, string> = {};
  for (const name of FORWARDED) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  const up = await pool.request({
    method: 'POST',
    path: upstream.pathname,
    headers,
    body: JSON.stringify(msg),
  });
  let body = await up.body.text();

  const out: Record<string, string> = {};
  const contentType = up.headers['content-type'];
  const sessionId = up.headers['mcp-session-id'];
  if (typeof contentType === 'string') out['content-type'] = contentType;
  if (typeof sessionId === 'string') out['mcp-session-id'] = sessionId;
  if (body.length > 0 && clientId !== undefined) {
    const response = JSON.parse(body);
    if (response.id === relayId) response.id = clientId;
    body = JSON.stringify(response);
  }
  reply(res, up.statusCode, out, body);
}

const server = createServer((req, res) => {
  if (req.method !== 'POST') return reply(res, 405, {}, '');
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    relay(req, res, Buffer.concat(chunks).toString('utf8')).catch((err: unknown) => {
      const message = JSON.stringify(`Upstream failed: ${err instanceof Error ? err.message : String(err)}`);
      reply(
        res,
        502,
        { 'content-type': 'application/json' },
        `{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":${message}}}`,
      );
    });
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : values.port;
  console.log(`floor listening on http://127.0.0.1:${port}/mcp -> ${upstream.href}`);
});
