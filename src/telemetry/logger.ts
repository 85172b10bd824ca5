// Structured logging (pino). Secrets are redacted by path wherever they could appear.

import { pino } from 'pino';

export type Logger = pino.Logger;

/** Paths that can carry credentials; their values never reach a log line. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers.cookie',
  'res.headers["set-cookie"]',
  'upstreamHeaders',
  '*.token',
  '*.secret',
  '*.password',
];

/** `secretHeaders`: further request headers that carry credentials (e.g. a configured API key header). */
export function createLogger(
  level: string,
  destination?: pino.DestinationStream,
  secretHeaders: readonly string[] = [],
): Logger {
  const extra = secretHeaders.map((h) => `req.headers["${h.toLowerCase()}"]`);
  return pino(
    {
      level,
      base: { service: 'gatehouse' },
      redact: { paths: [...REDACT_PATHS, ...extra], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
