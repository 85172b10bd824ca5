// `gatehouse validate`: check a config file as `serve` would, without starting anything (for CI); with
// --probe, also list every upstream and report what the routes would expose: unreachable upstreams and
// name collisions (a collision under `prefix: never` hides a tool, so it fails the check).

import { pino } from 'pino';
import { createGateway } from '../app.ts';
import { ConfigError, type LoadedConfig, loadConfigFile } from '../config/load.ts';
import { configPath } from './options.ts';

/** How long --probe waits for the upstreams to answer. */
const PROBE_WAIT_MS = 15_000;

export async function validate(
  flags: { config?: string; probe?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  let loaded: LoadedConfig;
  try {
    loaded = await loadConfigFile(configPath(flags.config, env), env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const { config, file } = loaded;
  const n = Object.keys(config.upstreams).length;
  process.stdout.write(
    `${file}: valid (${n} upstream${n === 1 ? '' : 's'}, ${config.routes.length} route${config.routes.length === 1 ? '' : 's'})\n`,
  );
  return flags.probe ? probe(loaded) : 0;
}

async function probe(loaded: LoadedConfig): Promise<number> {
  const gateway = await createGateway(loaded, { logger: pino({ level: 'silent' }) });
  const { catalog } = gateway;
  let failures = 0;
  try {
    catalog.start();
    const profile = catalog.profileFor({});
    for (const route of loaded.config.routes) {
      const view = await catalog.ready(route.path, profile, PROBE_WAIT_MS);
      const out: string[] = [
        `route ${route.path}: ${view.tools.items.length} tools, ${view.prompts.items.length} prompts, ` +
          `${view.resources.items.length} resources, ${view.templates.items.length} resource templates`,
      ];
      for (const p of catalog.problems(route.path, profile.key)) {
        failures++;
        out.push(`  ✗ upstream ${p.upstream}: ${p.error}`);
      }
      for (const { kind, collision } of view.collisions) {
        const mode =
          kind === 'tool'
            ? route.tools.prefix
            : kind === 'prompt'
              ? route.prompts.prefix
              : route.resources.prefix;
        const hidden = mode === 'never' && kind !== 'resource';
        if (hidden) failures++;
        const outcome = hidden
          ? `only ${collision.upstreams[0]}'s is exposed (prefix: never); the others are hidden`
          : kind === 'resource'
            ? 'exposed as gatehouse://<upstream>/<uri>'
            : 'each is exposed as <upstream>__<name>';
        out.push(
          `  ${hidden ? '✗' : '·'} ${kind} ${JSON.stringify(collision.name)} from ${collision.upstreams.join(', ')}: ${outcome}`,
        );
      }
      process.stdout.write(`${out.join('\n')}\n`);
    }
  } finally {
    await catalog.stop();
    await gateway.stop();
  }
  if (failures > 0) process.stderr.write(`probe: ${failures} problem${failures === 1 ? '' : 's'}\n`);
  return failures > 0 ? 1 : 0;
}
