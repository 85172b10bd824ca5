// `gatehouse demo` (npm start): two MCP servers behind one route, no external service: our demo server
// over Streamable HTTP and the reference server-everything as a stdio process the gateway supervises.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemoServer } from '../demo/demo-server.ts';
import { serve } from './serve.ts';

export async function demo(flags: { host?: string; port?: string }): Promise<void> {
  const upstream = await startDemoServer({ port: 0 });
  const config = fileURLToPath(new URL('../../examples/demo.yaml', import.meta.url));
  const require = createRequire(import.meta.url);
  const everything = join(
    dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')),
    'dist/index.js',
  );
  const gateway = await serve(
    { config, ...flags },
    {
      ...process.env,
      DEMO_UPSTREAM_URL: upstream.url,
      DEMO_NODE: process.execPath,
      DEMO_EVERYTHING: everything,
    },
  );
  const base = `http://${gateway.config.listen.host}:${gateway.config.listen.port}`;
  process.stdout.write(
    [
      '',
      `Upstreams: the demo server at ${upstream.url}, and server-everything over stdio (started by the gateway).`,
      `Their tools are aggregated at ${base}/mcp (colliding names such as echo appear as demo__echo, everything__echo);`,
      `old SSE-only clients use ${base}/mcp/sse.`,
      'Connect any MCP client to the gateway, for example:',
      `  npx @modelcontextprotocol/inspector   (transport "Streamable HTTP", URL ${base}/mcp)`,
      `  claude mcp add --transport http gatehouse-demo ${base}/mcp`,
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  process.once('exit', () => void upstream.close());
}
