// Turns a request's credentials into a Principal, or refuses it with 401. Missing and invalid
// credentials get the same answer: nothing that helps an attacker tell them apart.

import type { Principal } from '../gateway/context.ts';
import { Errors } from '../mcp/errors.ts';
import type { ApiKeyStore } from './api-keys.ts';

export type Authenticate = (
  headers: Readonly<Record<string, string | string[] | undefined>>,
  now: number,
) => Principal;

/** RFC 9110: the scheme is case-insensitive. */
const BEARER = /^bearer\s+(\S+)\s*$/i;

export function apiKeyAuthenticator(store: ApiKeyStore, header: string): Authenticate {
  const name = header.toLowerCase();
  const bearer = name === 'authorization';
  return (headers, now) => {
    const raw = headers[name];
    const value = Array.isArray(raw) ? raw[0] : raw;
    const key = bearer ? BEARER.exec(value ?? '')?.[1] : value?.trim();
    let record: ReturnType<ApiKeyStore['verify']>;
    try {
      record = key ? store.verify(key, now) : undefined;
    } catch {
      // The store failed (closing, unreadable): refuse, never allow, and say it is on our side.
      throw Errors.shuttingDown('Service Unavailable: the API key store cannot be read; retry shortly');
    }
    if (!record) {
      throw Errors.unauthorized(
        `Unauthorized: this route needs a valid API key (${bearer ? 'Authorization: Bearer <key>' : `header ${header}`})`,
      );
    }
    return { subject: record.name, agent: record.agent, groups: record.groups, scopes: [], claims: {} };
  };
}
