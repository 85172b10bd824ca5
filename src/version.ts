// The gateway's own name and version, as reported to upstreams and on the CLI.

import { createRequire } from 'node:module';

const pkg = createRequire(import.meta.url)('../package.json') as { version: string };

export const GATEWAY_INFO = { name: 'gatehouse', version: pkg.version } as const;
