// The Kong "secure internal MCP gateway" recipe, locally, with one command:
//
//   node examples/ecommerce/run.ts [--port 8080]
//
// Starts the shop API (Orders, Inventory, Customers), a local OpenID provider (oidc-provider, the one the
// tests use) and Gatehouse with examples/ecommerce/gatehouse.yaml; prints an access token for each persona
// (warehouse-ops, customer-support) and what each may do; then lists each persona's tools through the
// gateway with the official MCP SDK client. Ctrl-C stops everything. Needs the repository's dev
// dependencies (npm install).

import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { createGateway } from '../../src/app.ts';
import { loadConfigFile } from '../../src/config/load.ts';
import { startIdp } from '../../test/fixtures/idp.ts';
import { startShopApi } from './shop-api.ts';

const portFlag = process.argv.indexOf('--port');
const port = portFlag > 0 ? Number(process.argv[portFlag + 1]) : 8080;
const publicUrl = `http://127.0.0.1:${port}`;
const resource = `${publicUrl}/ecommerce-mcp`;

const shop = await startShopApi();
const idp = await startIdp();
const loaded = await loadConfigFile(fileURLToPath(new URL('./gatehouse.yaml', import.meta.url)), {
  ...process.env,
  IDP_ISSUER: idp.issuer,
  SHOP_API: shop.url,
  PUBLIC_URL: publicUrl,
});
loaded.config.listen.port = port;
const gateway = await createGateway(loaded);
await gateway.start();

const personas = [
  { name: 'wendy (warehouse-ops)', sub: 'wendy', groups: ['warehouse-ops'] },
  { name: 'sam (customer-support)', sub: 'sam', groups: ['customer-support'] },
];
const tokens = await Promise.all(
  personas.map((p) => idp.token({ sub: p.sub, groups: p.groups, resource, scope: 'mcp', expiresIn: 3600 })),
);

console.log(`
Gatehouse: ${resource}   (shop API ${shop.url}, OpenID provider ${idp.issuer})
`);
for (const [i, p] of personas.entries()) {
  const c = new Client({ name: 'ecommerce-example', version: '1' });
  await c.connect(
    new StreamableHTTPClientTransport(new URL(resource), {
      requestInit: { headers: { authorization: `Bearer ${tokens[i]}` } },
    }),
  );
  const tools = (await c.listTools()).tools.map((t) => t.name);
  await c.close();
  console.log(`${p.name} may use: ${tools.join(', ')}`);
  console.log(`  token (1 h): ${tokens[i]}\n`);
}
console.log(`Try it: npx @modelcontextprotocol/inspector, transport "Streamable HTTP", URL ${resource},
header "Authorization: Bearer <a token above>". Without a token the gateway answers 401 and points
at ${publicUrl}/.well-known/oauth-protected-resource/ecommerce-mcp. Ctrl-C stops everything.`);

const stop = async () => {
  await gateway.stop();
  await idp.close();
  await shop.close();
  process.exit(0);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
