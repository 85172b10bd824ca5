// `gatehouse demo` (npm start): the demo MCP server and the gateway in front of it, no external service.

import { fileURLToPath } from 'node:url';
import { startDemoServer } from '../demo/demo-server.ts';
import { serve } from './serve.ts';

export async function demo(flags: { host?: string; port?: string }): Promise<void> {
  const upstream = await startDemoServer({ port: 0 });
  const config = fileURLToPath(new URL('../../examples/demo.yaml', import.meta.url));
  const gateway = await serve({ config, ...flags }, { ...process.env, DEMO_UPSTREAM_URL: upstream.url });
  const base = `http://${gateway.config.listen.host}:${gateway.config.listen.port}`;
  process.stdout.write(
    [
      '',
      `Demo MCP server (upstream): ${upstream.url}`,
      'Connect any MCP client to the gateway, for example:',
      `  npx @modelcontextprotocol/inspector   (transport "Streamable HTTP", URL ${base}/mcp)`,
      `  claude mcp add --transport http gatehouse-demo ${base}/mcp`,
      'Ctrl-C stops both.',
      '',
    ].join('\n'),
  );
  process.once('exit', () => void upstream.close());
}
