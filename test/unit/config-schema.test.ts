// config.schema.json is generated from the zod schema; it must not drift, and the examples must stay valid.

import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { schemaText } from '../../src/cli/schema.ts';
import { parseConfig } from '../../src/config/load.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const REGENERATE =
  'config.schema.json is out of date with src/config/schema.ts: regenerate it with `node src/cli/main.ts schema > config.schema.json`';

/** What the examples read from the environment (their headers say so). */
const EXAMPLE_ENV: NodeJS.ProcessEnv = {
  UPSTREAM_URL: 'http://127.0.0.1:3001/mcp',
  DEMO_UPSTREAM_URL: 'http://127.0.0.1:3002/mcp',
  DEMO_NODE: '/usr/bin/node',
  DEMO_EVERYTHING: '/opt/everything/index.js',
  GITHUB_MCP_URL: 'http://127.0.0.1:3003/mcp',
  JIRA_MCP_URL: 'http://127.0.0.1:3004/mcp',
  DOCS_MCP_URL: 'http://127.0.0.1:3005/mcp',
};

describe('config.schema.json', () => {
  const checkedIn = readFileSync(`${root}config.schema.json`, 'utf8');

  it('is exactly what `gatehouse schema` prints', () => {
    expect(checkedIn, REGENERATE).toBe(schemaText());
  });

  it('is a JSON Schema 2020-12 document for the whole config', () => {
    const schema = JSON.parse(checkedIn) as Record<string, unknown>;
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.$id).toBe('https://gatehouse.dev/config.schema.json');
    expect(schema.required).toEqual(['upstreams', 'routes']);
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties as object)).toEqual(
      expect.arrayContaining(['listen', 'upstreams', 'routes', 'public_url']),
    );
  });
});

describe('examples', () => {
  const examples = readdirSync(`${root}examples`).filter((f) => /\.ya?ml$/.test(f));

  it('exist', () => {
    expect(examples.length).toBeGreaterThan(0);
  });

  it.each(examples)('%s is a valid config', (name) => {
    const text = readFileSync(`${root}examples/${name}`, 'utf8');
    expect(() => parseConfig(text, `examples/${name}`, EXAMPLE_ENV)).not.toThrow();
  });
});

describe('docs/configuration.md', () => {
  it('is exactly what scripts/config-docs.ts generates from the schema', async () => {
    const { configReference } = await import('../../scripts/config-docs.ts');
    expect(
      readFileSync(`${root}docs/configuration.md`, 'utf8'),
      'docs/configuration.md is out of date: regenerate it with `node scripts/config-docs.ts > docs/configuration.md`',
    ).toBe(configReference());
  });
});
