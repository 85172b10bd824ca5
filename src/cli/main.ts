// The `gatehouse` command line.

import { Command } from 'commander';
import { ConfigError } from '../config/load.ts';
import { GATEWAY_INFO } from '../version.ts';
import { auditExport, auditQuery, auditVerify } from './audit.ts';
import { demo } from './demo.ts';
import { importKongCommand } from './import.ts';
import { createKey, listKeys, revokeKey } from './keys.ts';
import { openapiCommand } from './openapi.ts';
import { schemaText } from './schema.ts';
import { serve } from './serve.ts';
import { validate } from './validate.ts';

const program = new Command()
  .name('gatehouse')
  .description('An MCP gateway: one secure, observable entry point in front of many MCP servers.')
  .version(GATEWAY_INFO.version);

const configOption = [
  '-c, --config <file>',
  'config file (env GATEHOUSE_CONFIG; default ./gatehouse.yaml)',
] as const;

program
  .command('serve')
  .description('run the gateway')
  .option(...configOption)
  .option('--host <host>', 'listen address (env GATEHOUSE_HOST; overrides listen.host)')
  .option('--port <port>', 'listen port (env GATEHOUSE_PORT; overrides listen.port)')
  .action(async (flags: { config?: string; host?: string; port?: string }) => {
    await serve(flags);
  });

program
  .command('validate')
  .description('check a config file and exit non-zero with every problem found')
  .option(...configOption)
  .option('--probe', 'also contact every upstream: report unreachable ones and name collisions of each route')
  .action(async (flags: { config?: string; probe?: boolean }) => {
    process.exitCode = await validate(flags);
  });

const keys = program.command('keys').description('API keys for agents (stored as hashes in api_keys.store)');
keys
  .command('create')
  .description('create a key and print it (once)')
  .option(...configOption)
  .requiredOption('--name <name>', 'a unique name (the principal of the key)')
  .option('--group <group...>', 'groups the key belongs to (for ACLs)')
  .option('--role <role...>', 'roles of the key, e.g. admin (the admin API); repeatable')
  .option('--agent <agent>', 'agent identity (default: the name)')
  .option('--expires <duration>', 'lifetime, e.g. 30d or 12h (default: none)')
  .action(
    async (flags: {
      config?: string;
      name: string;
      group?: string[];
      role?: string[];
      agent?: string;
      expires?: string;
    }) => {
      await createKey(flags);
    },
  );
keys
  .command('list')
  .description('list keys (never the keys themselves)')
  .option(...configOption)
  .action(async (flags: { config?: string }) => {
    await listKeys(flags);
  });
keys
  .command('revoke')
  .description('revoke a key by name')
  .option(...configOption)
  .requiredOption('--name <name>', 'the key to revoke')
  .action(async (flags: { config?: string; name: string }) => {
    process.exitCode = await revokeKey(flags);
  });

const audit = program.command('audit').description('the audit log: query, export and verify its records');
/** The record filters shared by query and export. */
const auditFilters = (c: Command) =>
  c
    .option('--since <when>', 'records from: a duration back (30m, 1h, 7d) or a date (2026-01-31T12:00:00Z)')
    .option('--until <when>', 'records up to (same forms)')
    .option('--user <id>', 'user_id (a raw id also finds its pseudonym)')
    .option('--agent <id>', 'agent_identity')
    .option('--tenant <id>', 'tenant')
    .option('--tool <name>', "tool_name (the upstream's own name)")
    .option('--resource <uri>', 'resource_uri')
    .option('--prompt <name>', 'prompt_name')
    .option('--decision <allow|deny>', 'decision')
    .option('--route <path>', 'route, e.g. /mcp')
    .option('--server <name>', 'mcp_server (upstream)')
    .option('--method <method>', 'mcp_method, e.g. tools/call')
    .option('--session <id>', 'session_id')
    .option('--trace <id>', 'trace_id')
    .option('--outcome <outcome>', 'ok, error, denied, upstream_error, cancelled');
auditFilters(
  audit
    .command('query')
    .description('records matching the filters, newest first (a table, or JSON lines with --json)')
    .option(...configOption)
    .option('--sink <name>', 'the sink to read (default: the first sqlite or postgres sink)')
    .option('--limit <n>', 'at most this many records (default 50)'),
)
  .option('--json', 'JSON lines instead of a table')
  .action(async (flags: Record<string, string | boolean | undefined>) => {
    process.exitCode = await auditQuery(flags);
  });
auditFilters(
  audit
    .command('export')
    .description('records matching the filters, oldest first, as JSON lines (with their chain hashes)')
    .option(...configOption)
    .option('--sink <name>', 'the sink to read (default: the first sqlite or postgres sink)'),
).action(async (flags: Record<string, string | undefined>) => {
  process.exitCode = await auditExport(flags);
});
audit
  .command('verify')
  .description(
    'prove the records of a range complete and unaltered (hash chain); exit 1 at the first broken record',
  )
  .option(...configOption)
  .option('--sink <name>', 'verify this sink only (default: every sqlite, postgres and jsonl sink)')
  .option('--since <when>', 'from: a duration back (7d) or a date')
  .option('--until <when>', 'up to: a duration back or a date')
  .action(async (flags: { config?: string; sink?: string; since?: string; until?: string }) => {
    process.exitCode = await auditVerify(flags);
  });

program
  .command('schema')
  .description('print the JSON Schema of the config file (for editors)')
  .action(() => {
    process.stdout.write(schemaText());
  });

program
  .command('import')
  .description("convert another gateway's configuration into a Gatehouse config")
  .command('kong <deck-file>')
  .description(
    'a Kong decK file (ai-mcp-proxy, ai-mcp-oauth2): the config to -o or stdout, the report to stderr',
  )
  .option('-o, --output <file>', 'write the config to this file (default: stdout)')
  .action(async (file: string, flags: { output?: string }) => {
    process.exitCode = await importKongCommand(file, flags);
  });

program
  .command('openapi <file-or-url>')
  .description(
    'print a REST upstream (type: rest, its tools inline) generated from an OpenAPI document, to review and commit',
  )
  .option('--name <name>', "the upstream's name (default: from the document's title)")
  .option('--base-url <url>', "the API's base URL (default: the document's first server)")
  .action(async (source: string, flags: { name?: string; baseUrl?: string }) => {
    process.exitCode = await openapiCommand(source, flags);
  });

program
  .command('demo')
  .description('run a demo MCP server with the gateway in front of it (what npm start does)')
  .option('--host <host>', 'listen address (env GATEHOUSE_HOST)')
  .option('--port <port>', 'listen port (env GATEHOUSE_PORT)')
  .action(async (flags: { host?: string; port?: string }) => {
    await demo(flags);
  });

try {
  await program.parseAsync();
} catch (err) {
  process.stderr.write(`gatehouse: ${describeFailure(err)}\n`);
  if (process.env.GATEHOUSE_DEBUG && err instanceof Error && err.stack)
    process.stderr.write(`${err.stack}\n`);
  process.exit(1);
}

/** A start-up failure in words a person can act on (set GATEHOUSE_DEBUG=1 for the stack). */
function describeFailure(err: unknown): string {
  if (err instanceof ConfigError || err instanceof RangeError) return err.message;
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e.code === 'EADDRINUSE')
    return `cannot listen on ${e.address}:${e.port}: the address is already in use (choose another --port)`;
  if (e.code === 'EACCES' && e.syscall === 'listen') {
    return `cannot listen on ${e.address}:${e.port}: permission denied (ports below 1024 need privileges)`;
  }
  if (e.code === 'EADDRNOTAVAIL')
    return `cannot listen on ${e.address}: no such local address (check listen.host / --host)`;
  return err instanceof Error ? err.message : String(err);
}
