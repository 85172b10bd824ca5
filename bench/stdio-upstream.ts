// The peers benchmark's upstream: a minimal MCP server over stdio (newline-delimited JSON-RPC on
// stdin/stdout) with one `echo` tool. Hand-written, no SDK, answers of one input chunk written at once,
// so that the relays in front of it dominate. Nothing but JSON-RPC goes to stdout; exits at stdin's end.
// Usage: node bench/stdio-upstream.ts
import { StringDecoder } from 'node:string_decoder';

const SUPPORTED_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];
const LATEST_VERSION = '2025-11-25';
/** A line longer than this (no newline in sight) is dropped rather than buffered without end. */
const MAX_LINE_CHARS = 4 * 1024 * 1024;

const TOOLS_LIST = JSON.stringify({
  tools: [
    {
      name: 'echo',
      description: 'Returns its `message` argument.',
      inputSchema: {
        type: 'object',
        properties: { message: { type: 'string' } },
        required: ['message'],
      },
    },
  ],
});

type Id = string | number;
type Message = { id?: Id | null; method?: unknown; params?: unknown };

function result(id: Id, value: unknown): string {
  return JSON.stringify({ jsonrpc: '2.0', id, result: value });
}

function rpcError(id: Id | null, code: number, message: string): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } });
}

function paramsOf(msg: Message): Record<string, unknown> {
  return typeof msg.params === 'object' && msg.params !== null ? (msg.params as Record<string, unknown>) : {};
}

function initialize(id: Id, params: Record<string, unknown>): string {
  const requested = params.protocolVersion;
  const version =
    typeof requested === 'string' && SUPPORTED_VERSIONS.includes(requested) ? requested : LATEST_VERSION;
  return result(id, {
    protocolVersion: version,
    capabilities: { tools: {} },
    serverInfo: { name: 'gatehouse-bench-stdio-upstream', version: '0.1.0' },
  });
}

function call(id: Id, params: Record<string, unknown>): string {
  if (params.name !== 'echo') return rpcError(id, -32602, `Unknown tool: ${String(params.name)}`);
  const args = params.arguments as Record<string, unknown> | undefined;
  const message = args?.message;
  if (typeof message !== 'string') return rpcError(id, -32602, 'echo: `message` must be a string');
  return result(id, { content: [{ type: 'text', text: message }] });
}

/** The answer to one message, or undefined for notifications and responses (they get none). */
function answer(msg: unknown): string | undefined {
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    return rpcError(null, -32600, 'Invalid Request: expected a JSON-RPC message');
  }
  const { id, method } = msg as Message;
  if (typeof method !== 'string') return undefined; // a response to us: we never ask anything
  if (id === undefined) return undefined; // notifications/initialized, cancelled, …: nothing to do
  if (typeof id !== 'string' && typeof id !== 'number') {
    return rpcError(null, -32600, 'Invalid Request: id must be a string or a number');
  }
  const params = paramsOf(msg as Message);
  switch (method) {
    case 'tools/call':
      return call(id, params);
    case 'tools/list':
      return `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${TOOLS_LIST}}`;
    case 'ping':
      return result(id, {});
    case 'initialize':
      return initialize(id, params);
    default:
      return rpcError(id, -32601, `Method not found: ${method}`);
  }
}

/** The answer to one line: a message or a batch (2025-03-26 and earlier), or a parse error. */
function onLine(line: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return rpcError(null, -32700, 'Parse error: Invalid JSON');
  }
  if (!Array.isArray(parsed)) return answer(parsed);
  if (parsed.length === 0) return rpcError(null, -32600, 'Invalid Request: empty batch');
  const answers = parsed.map(answer).filter((a) => a !== undefined);
  return answers.length === 0 ? undefined : `[${answers.join(',')}]`;
}

const decoder = new StringDecoder('utf8');
let buffered = '';
process.stdin.on('data', (chunk: Buffer) => {
  const text = buffered + decoder.write(chunk);
  let out = '';
  let start = 0;
  for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
    const line = text.slice(start, end).trim();
    start = end + 1;
    if (line === '') continue;
    const reply = onLine(line);
    if (reply !== undefined) out += `${reply}\n`;
  }
  buffered = text.slice(start);
  if (buffered.length > MAX_LINE_CHARS) {
    console.error(`stdio-upstream: dropped a line of more than ${MAX_LINE_CHARS} characters`);
    buffered = '';
  }
  if (out !== '') process.stdout.write(out);
});
process.stdin.on('end', () => process.exit(0));
// A relay that goes away closes our stdout: stop quietly instead of dying on EPIPE.
process.stdout.on('error', () => process.exit(0));
