// CallContext: everything a policy stage may read about one call. Stages never see HTTP objects.

import type { JsonRpcRequest } from '../mcp/jsonrpc.ts';

export interface Principal {
  /** How the caller proved who it is: an OAuth access token, or a Gatehouse API key (separate namespaces). */
  source?: 'oauth' | 'api_key';
  subject: string;
  groups: readonly string[];
  tenant?: string;
  agent?: string;
  scopes: readonly string[];
  claims: Readonly<Record<string, unknown>>;
  /** The values of the route's configured ACL claims (auth.oauth.claims), by claim path: `claim:<path>=<value>` subjects. */
  claimValues?: Readonly<Record<string, readonly string[]>>;
}

export interface CallTarget {
  upstream: string;
  /** The name (tool/prompt) or uri (resource) as the upstream knows it. */
  original: string | undefined;
  kind: 'tool' | 'resource' | 'prompt' | 'none';
}

export interface CallContext {
  route: string;
  sessionId: string;
  principal: Principal | undefined;
  protocolVersion: string;
  request: JsonRpcRequest;
  target: CallTarget;
  requestId: string;
  /** Epoch ms at receipt; stages read the clock from here, not Date.now(). */
  now: number;
}
