// The demo MCP server that `npm start` runs next to the gateway, so that a first run has something to route
// to: four small tools (one streams progress), a resource and a prompt, over stateful Streamable HTTP.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';
import { Errors, type GatehouseError } from '../mcp/errors.ts';
import { errorResponse } from '../mcp/jsonrpc.ts';

export type DemoServer = { url: string; close(): Promise<void> };

export type DemoServerOptions = {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. On a loopback address, requests must name a loopback Host and Origin. */
  host?: string;
};

const SERVER_INFO = { name: 'gatehouse-demo', version: '0.1.0' };
const MCP_PATH = '/mcp';
const MAX_BODY_BYTES = 1024 * 1024;
const MAX_SESSIONS = 1000;
const SESSION_IDLE_MS = 30 * 60_000;
const SWEEP_INTERVAL_MS = 60_000;
const LOOPBACK_HOSTNAMES = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

const ABOUT = `# Gatehouse demo server

A small MCP server that ships with Gatehouse. Its tools:

- \`echo\` returns the message it is given;
- \`add\` adds two numbers (with structured output);
- \`get_time\` tells the time in a time zone;
- \`slow_count\` counts slowly and reports progress on the way.
`;

function text(value: string): { type: 'text'; text: string } {
  return { type: 'text', text: value };
}

function createDemoMcpServer(): McpServer {
  const mcp = new McpServer(SERVER_INFO, {
    instructions: 'A demo server: try the echo, add, get_time and slow_count tools.',
  });

  mcp.registerTool(
    'echo',
    {
      title: 'Echo',
      description: 'Returns the given message unchanged.',
      inputSchema: { message: z.string().describe('The message to return') },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ message }) => ({ content: [text(message)] }),
  );

  mcp.registerTool(
    'add',
    {
      title: 'Add',
      description: 'Adds two numbers.',
      inputSchema: { a: z.number().describe('First addend'), b: z.number().describe('Second addend') },
      outputSchema: { sum: z.number() },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ a, b }) => {
      const sum = a + b;
      return { content: [text(String(sum))], structuredContent: { sum } };
    },
  );

  mcp.registerTool(
    'get_time',
    {
      title: 'Get time',
      description: 'Returns the current time, in ISO 8601 and as local time in the given IANA time zone.',
      inputSchema: {
        timeZone: z.string().optional().describe('An IANA time zone such as Europe/Paris (default: UTC)'),
      },
      outputSchema: { iso: z.string(), timeZone: z.string(), local: z.string() },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ timeZone = 'UTC' }) => {
      let format: Intl.DateTimeFormat;
      try {
        format = new Intl.DateTimeFormat('en-GB', { timeZone, dateStyle: 'full', timeStyle: 'long' });
      } catch {
        return {
          isError: true,
          content: [text(`Unknown time zone '${timeZone}': use an IANA name such as Europe/Paris or UTC.`)],
        };
      }
      const now = new Date();
      const result = { iso: now.toISOString(), timeZone, local: format.format(now) };
      return { content: [text(`${result.local} (${result.iso})`)], structuredContent: result };
    },
  );

  mcp.registerTool(
    'slow_count',
    {
      title: 'Slow count',
      description:
        'Counts from 1 to `count`, waiting `intervalMs` between numbers, and reports each step as a ' +
        'progress notification when the caller asks for progress. Stops when the call is cancelled.',
      inputSchema: {
        count: z.number().int().min(1).max(50).default(5).describe('How far to count (1-50)'),
        intervalMs: z.number().int().min(10).max(5000).default(500).describe('Pause between steps, in ms'),
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async ({ count, intervalMs }, extra) => {
      const progressToken = extra._meta?.progressToken;
      for (let step = 1; step <= count; step++) {
        // Rejects with an AbortError when the client cancels; the SDK then sends no response.
        await sleep(intervalMs, undefined, { signal: extra.signal });
        if (progressToken !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken, progress: step, total: count, message: `Counted ${step} of ${count}` },
          });
        }
      }
      return { content: [text(`Counted to ${count}.`)] };
    },
  );

  mcp.registerResource(
    'about',
    'demo://about',
    { title: 'About this server', description: 'What the demo server offers.', mimeType: 'text/markdown' },
    (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/markdown', text: ABOUT }] }),
  );

  mcp.registerPrompt(
    'summarize',
    {
      title: 'Summarize',
      description: 'Asks the model for a one-paragraph summary of a text.',
      argsSchema: { text: z.string().describe('The text to summarize') },
    },
    ({ text: input }) => ({
      messages: [
        { role: 'user', content: text(`Summarize the following text in one paragraph:\n\n${input}`) },
      ],
    }),
  );

  return mcp;
}

// --- HTTP --------------------------------------------------------------------------------------------

function sendError(
  res: ServerResponse,
  error: GatehouseError,
  headers: Record<string, string> = {},
  status = error.httpStatus,
): void {
  const body = JSON.stringify(errorResponse(null, error.rpcCode, error.message));
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function hostnameOf(url: string): string | undefined {
  try {
    return new URL(url).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

/** DNS-rebinding protection for a loopback listener: a web page must not reach it under another name. */
function rebindingError(req: IncomingMessage): GatehouseError | undefined {
  const host = headerValue(req, 'host');
  if (!LOOPBACK_HOSTNAMES.has(hostnameOf(`http://${host ?? ''}`) ?? '')) {
    return Errors.forbiddenHost(
      `Host '${host ?? ''}' is not allowed: this server only answers to localhost.`,
    );
  }
  const origin = headerValue(req, 'origin');
  if (origin !== undefined && !LOOPBACK_HOSTNAMES.has(hostnameOf(origin) ?? '')) {
    return Errors.forbiddenOrigin(
      `Origin '${origin}' is not allowed: this server only answers to localhost.`,
    );
  }
  return undefined;
}

class BodyTooLargeError extends Error {}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(headerValue(req, 'content-length') ?? 0);
  if (declared > MAX_BODY_BYTES) throw new BodyTooLargeError();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new BodyTooLargeError();
    chunks.push(buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

type Session = { transport: StreamableHTTPServerTransport; lastSeen: number };

/** Starts the demo server; resolves once it listens. `close()` ends every session and the listener. */
export async function startDemoServer(opts: DemoServerOptions = {}): Promise<DemoServer> {
  const host = opts.host ?? '127.0.0.1';
  const checkRebinding = LOOPBACK_HOSTNAMES.has(host.toLowerCase());
  const sessions = new Map<string, Session>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (new URL(req.url ?? '/', 'http://localhost').pathname !== MCP_PATH) {
      return sendError(res, Errors.invalidRequest(`Not found: the MCP endpoint is ${MCP_PATH}.`), {}, 404);
    }
    if (req.method !== 'POST' && req.method !== 'GET' && req.method !== 'DELETE') {
      return sendError(res, Errors.methodNotAllowed(`Method ${req.method} is not allowed.`), {
        allow: 'GET, POST, DELETE',
      });
    }
    const rejected = checkRebinding ? rebindingError(req) : undefined;
    if (rejected !== undefined) return sendError(res, rejected);

    let body: unknown;
    if (req.method === 'POST') {
      try {
        body = await readJson(req);
      } catch (error) {
        if (error instanceof BodyTooLargeError) {
          return sendError(res, Errors.payloadTooLarge(`The body exceeds ${MAX_BODY_BYTES} bytes.`));
        }
        return sendError(res, Errors.parse('Parse error: the body is not valid JSON.'));
      }
    }

    const sessionId = headerValue(req, 'mcp-session-id');
    if (sessionId !== undefined) {
      const session = sessions.get(sessionId);
      if (session === undefined) {
        return sendError(res, Errors.sessionNotFound('Session not found: initialize a new session.'));
      }
      session.lastSeen = Date.now();
      return session.transport.handleRequest(req, res, body);
    }
    if (req.method !== 'POST' || !isInitializeRequest(body)) {
      return sendError(res, Errors.sessionRequired('Missing Mcp-Session-Id header: send initialize first.'));
    }
    if (sessions.size >= MAX_SESSIONS) {
      return sendError(res, Errors.overloaded('Too many open sessions; retry later.'), {
        'retry-after': '60',
      });
    }

    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, lastSeen: Date.now() });
      },
    });
    transport.onclose = () => {
      if (transport.sessionId !== undefined) sessions.delete(transport.sessionId);
    };
    await createDemoMcpServer().connect(transport);
    await transport.handleRequest(req, res, body);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendError(
        res,
        Errors.internal(`Internal error: ${error instanceof Error ? error.message : String(error)}`),
      );
    });
  });

  // Sessions whose client went away without DELETE would otherwise live forever.
  const sweeper = setInterval(() => {
    const idleSince = Date.now() - SESSION_IDLE_MS;
    for (const { transport, lastSeen } of sessions.values()) {
      if (lastSeen < idleSince) void transport.close();
    }
  }, SWEEP_INTERVAL_MS);
  sweeper.unref();

  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', fail);
      done();
    });
  });
  const address = server.address() as AddressInfo;
  // A wildcard listener is reachable on loopback; the URL must name an address one can connect to.
  const wildcard = address.address === '0.0.0.0' || address.address === '::';
  const urlHost = wildcard
    ? '127.0.0.1'
    : address.family === 'IPv6'
      ? `[${address.address}]`
      : address.address;

  return {
    url: `http://${urlHost}:${address.port}${MCP_PATH}`,
    async close() {
      clearInterval(sweeper);
      await Promise.allSettled([...sessions.values()].map(({ transport }) => transport.close()));
      sessions.clear();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}
