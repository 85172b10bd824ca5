// `gatehouse import kong DECK.yaml [-o gatehouse.yaml]`: a Kong decK file as a Gatehouse config. The
// config goes to the output file (or stdout); the report — every field mapped approximately or not at
// all — goes to stderr. Exit 0 when the config was written, 1 when the file could not be imported.

import { readFile, writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { ConfigError, parseConfig } from '../config/load.ts';
import { importKong } from '../kong/import.ts';

export async function importKongCommand(
  file: string,
  flags: { output?: string },
  env: NodeJS.ProcessEnv = process.env,
  stderr: (s: string) => void = (s) => process.stderr.write(s),
  stdout: (s: string) => void = (s) => process.stdout.write(s),
): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    stderr(`gatehouse: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`);
    return 1;
  }
  const { config, report } = importKong(text, env);
  const yaml = `# Imported from the Kong decK file ${file} by \`gatehouse import kong\`.\n# Review the report printed with it: what could not be mapped is listed there.\n${stringify(config, { lineWidth: 120 })}`;
  // The result must be a valid config (unset variables are given a placeholder value to check the rest).
  if (report.errors.length === 0) {
    const placeholders: NodeJS.ProcessEnv = { ...env };
    for (const m of yaml.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g))
      if (placeholders[m[1]!] === undefined) placeholders[m[1]!] = 'http://placeholder.invalid';
    try {
      parseConfig(yaml, output(flags), placeholders);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      report.errors.push(`the imported config is not valid:\n${err.message}`);
    }
  }
  for (const w of report.warnings) stderr(`warning: ${w}\n`);
  for (const e of report.errors) stderr(`error: ${e}\n`);
  if (report.errors.length > 0) {
    stderr(`gatehouse: ${file} was not imported (${report.errors.length} error(s))\n`);
    return 1;
  }
  if (flags.output) await writeFile(flags.output, yaml);
  else stdout(yaml);
  const upstreams = Object.keys(config.upstreams as object).length;
  const routes = (config.routes as unknown[]).length;
  stderr(
    `imported ${upstreams} upstream(s) and ${routes} route(s)${flags.output ? ` into ${flags.output}` : ''}; ${report.warnings.length} warning(s)\n`,
  );
  return 0;
}

const output = (flags: { output?: string }) => flags.output ?? 'imported.yaml';
