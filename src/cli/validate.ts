// `gatehouse validate`: check a config file as `serve` would, without starting anything (for CI).

import { ConfigError, loadConfigFile } from '../config/load.ts';
import { configPath } from './options.ts';

export async function validate(
  flags: { config?: string },
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  try {
    const { config, file } = await loadConfigFile(configPath(flags.config, env), env);
    const n = Object.keys(config.upstreams).length;
    process.stdout.write(
      `${file}: valid (${n} upstream${n === 1 ? '' : 's'}, ${config.routes.length} route${config.routes.length === 1 ? '' : 's'})\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
