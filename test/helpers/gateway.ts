// Starts a real gateway in-process on a random 127.0.0.1 port from YAML config text.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createGateway, type Gateway } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';

export interface RunningGateway {
  gateway: Gateway;
  /** http://127.0.0.1:PORT */
  base: string;
  close(): Promise<void>;
}

export async function startGateway(yamlText: string, env: NodeJS.ProcessEnv = {}): Promise<RunningGateway> {
  const config = parseConfig(yamlText, 'test.yaml', env);
  config.listen.port = 0;
  // Audit is on by default: unless the test configures it, its database and spool go to a temporary
  // directory (removed on close), not next to the working directory.
  const auditDir = /^audit:/m.test(yamlText) ? undefined : await mkdtemp(join(tmpdir(), 'gatehouse-audit-'));
  const sqlite = config.audit.sinks[0];
  if (auditDir && sqlite?.type === 'sqlite') {
    sqlite.path = join(auditDir, 'audit.db');
    config.audit.spool.dir = join(auditDir, 'spool');
  }
  const logger = pino({ level: process.env.GATEHOUSE_TEST_LOG ?? 'silent' });
  const gateway = await createGateway({ config, file: 'test.yaml', baseDir: process.cwd(), env }, { logger });
  const base = (await gateway.start()).replace('localhost', '127.0.0.1');
  return {
    gateway,
    base,
    close: async () => {
      await gateway.stop();
      if (auditDir) await rm(auditDir, { recursive: true, force: true });
    },
  };
}

/** A minimal one-route config in front of `url`. */
export function singleUpstreamConfig(url: string, extra = ''): string {
  return `
upstreams:
  up: { type: streamable-http, url: "${url}" }
routes:
  - path: /mcp
    upstreams: [up]
    tools: { prefix: never }
health: { interval: 0 }
${extra}`;
}
