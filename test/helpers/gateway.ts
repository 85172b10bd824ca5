// Starts a real gateway in-process on a random 127.0.0.1 port from YAML config text.

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
  const logger = pino({ level: process.env.GATEHOUSE_TEST_LOG ?? 'silent' });
  const gateway = await createGateway({ config, file: 'test.yaml', baseDir: process.cwd(), env }, { logger });
  const base = (await gateway.start()).replace('localhost', '127.0.0.1');
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
