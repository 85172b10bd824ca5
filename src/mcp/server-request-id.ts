// Ids of server→client requests, rewritten so that the id alone says which upstream asked and what its
// own id was: whichever instance receives the client's answer can route it back without a table.

import type { JsonRpcId } from './jsonrpc.ts';

const PREFIX = 'gh1.';

export function encodeServerRequestId(upstream: string, id: JsonRpcId): string {
  return PREFIX + Buffer.from(JSON.stringify([upstream, id])).toString('base64url');
}

export function decodeServerRequestId(id: JsonRpcId): { upstream: string; id: JsonRpcId } | undefined {
  if (typeof id !== 'string' || !id.startsWith(PREFIX)) return undefined;
  try {
    const v: unknown = JSON.parse(Buffer.from(id.slice(PREFIX.length), 'base64url').toString('utf8'));
    if (
      Array.isArray(v) &&
      v.length === 2 &&
      typeof v[0] === 'string' &&
      (typeof v[1] === 'string' || (typeof v[1] === 'number' && Number.isInteger(v[1])))
    ) {
      return { upstream: v[0], id: v[1] };
    }
  } catch {
    // not one of ours
  }
  return undefined;
}
