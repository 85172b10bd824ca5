// The policy chain: ordered stages built once from config, run on every request and response.
// Adding a policy never touches the router or the upstreams.

import type { CallContext } from '../gateway/context.ts';
import type { GatehouseError } from '../mcp/errors.ts';
import type { JsonRpcRequest, JsonRpcResponse } from '../mcp/jsonrpc.ts';

export type Decision = { allow: true; request?: JsonRpcRequest } | { allow: false; error: GatehouseError };

export interface PolicyStage {
  readonly name: string;
  onRequest?(call: CallContext): Decision | Promise<Decision>;
  onResponse?(call: CallContext, res: JsonRpcResponse): JsonRpcResponse | Promise<JsonRpcResponse>;
}

const ALLOW: Decision = Object.freeze({ allow: true });

export class PolicyChain {
  readonly #requestStages: PolicyStage[];
  readonly #responseStages: PolicyStage[];

  constructor(stages: readonly PolicyStage[]) {
    this.#requestStages = stages.filter((s) => s.onRequest);
    // Responses unwind the chain in reverse, like middleware.
    this.#responseStages = stages.filter((s) => s.onResponse).reverse();
  }

  get empty(): boolean {
    return this.#requestStages.length === 0 && this.#responseStages.length === 0;
  }

  /** Runs request stages in order; the first deny wins; a stage may replace the request. */
  async onRequest(call: CallContext): Promise<Decision> {
    for (const stage of this.#requestStages) {
      const d = await stage.onRequest!(call);
      if (!d.allow) return d;
      if (d.request) call.request = d.request;
    }
    return ALLOW;
  }

  async onResponse(call: CallContext, res: JsonRpcResponse): Promise<JsonRpcResponse> {
    let out = res;
    for (const stage of this.#responseStages) out = await stage.onResponse!(call, out);
    return out;
  }
}
