// Options shared by every command: -c/--config (GATEHOUSE_CONFIG, default ./gatehouse.yaml), --host/--port.

import type { Config } from '../config/schema.ts';

export function configPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.GATEHOUSE_CONFIG ?? './gatehouse.yaml';
}

/** Applies --host/--port (which win) and GATEHOUSE_HOST/GATEHOUSE_PORT over the config's listen address. */
export function applyListenOverrides(
  config: Config,
  flags: { host?: string; port?: string },
  env: NodeJS.ProcessEnv = process.env,
): void {
  const host = flags.host ?? env.GATEHOUSE_HOST;
  const port = flags.port ?? env.GATEHOUSE_PORT;
  if (host) config.listen.host = host;
  if (port !== undefined && port !== '') {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new RangeError(`invalid port ${JSON.stringify(port)}: use 0-65535`);
    config.listen.port = n;
  }
}
