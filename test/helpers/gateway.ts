// Starts a real gateway in-process on a random 127.0.0.1 port from YAML config text.

import { mkdtempSync, rmSync } from 'node:fs';
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
  // Audit is on by default: unless the test configures it, its database goes to a temporary directory,
  // removed when the gateway stops (however the test stops it), not next to the working directory.
  const sqlite = config.audit.sinks[0];
  const auditDir =
    !/^audit:/m.test(yamlText) && sqlite?.type === 'sqlite'
      ? mkdtempSync(join(tmpdir(), 'gatehouse-audit-'))
      : undefined;
  const removeAudit = () => {
    if (auditDir) rmSync(auditDir, { recursive: true, force: true });
  };
  if (auditDir && sqlite?.type === 'sqlite') {
    sqlite.path = join(auditDir, 'audit.db');
    config.audit.spool.dir = join(auditDir, 'spool');
  }
  const logger = pino({ level: process.env.GATEHOUSE_TEST_LOG ?? 'silent' });
  let gateway: Gateway;
  let base: string;
  try {
    gateway = await createGateway({ config, file: 'test.yaml', baseDir: process.cwd(), env }, { logger });
    const stop = gateway.stop.bind(gateway);
    gateway.stop = () => stop().finally(removeAudit);
    base = (await gateway.start()).replace('localhost', '127.0.0.1');
  } catch (err) {
    removeAudit();
    throw err;
  }
  return { gateway, base, close: () => gateway.stop() };
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
