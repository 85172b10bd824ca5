// `gatehouse serve`: run the gateway until SIGTERM/SIGINT, then shut down gracefully.

import { createGateway, type Gateway } from '../app.ts';
import { loadConfigFile } from '../config/load.ts';
import { applyListenOverrides, configPath } from './options.ts';

export interface ServeFlags {
  config?: string;
  host?: string;
  port?: string;
}

export async function serve(flags: ServeFlags, env: NodeJS.ProcessEnv = process.env): Promise<Gateway> {
  const loaded = await loadConfigFile(configPath(flags.config, env), env);
  applyListenOverrides(loaded.config, flags, env);
  const gateway = await createGateway(loaded);
  const base = await gateway.start();
  for (const r of loaded.config.routes) {
    gateway.logger.info({ url: `${base}${r.path}`, upstreams: r.upstreams }, 'route ready');
  }
  process.stdout.write(
    `Gatehouse listening on ${base}\n${loaded.config.routes.map((r) => `  MCP endpoint: ${base}${r.path}\n`).join('')}${loaded.config.admin ? `  Admin API: ${gateway.adminUrl ?? base}/admin/\n` : ''}`,
  );
  stopOnSignals(() => gateway.stop());
  return gateway;
}

export function stopOnSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`shutdown failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}
