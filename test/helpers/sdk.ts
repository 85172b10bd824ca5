// Small helpers for tests that talk to the gateway through the official SDK Client.

/** The JSON-RPC error `p` rejects with, its message without the SDK's "MCP error <code>: " prefix. */
export async function rpcError(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    // The SDK's McpError prefixes the message with "MCP error <code>: ".
    if (typeof e.code === 'number')
      return { code: e.code, message: String(e.message).replace(/^MCP error -?\d+: /, '') };
    throw err;
  }
  throw new Error('expected a JSON-RPC error, got a result');
}

/** The text of a tools/call result's content, joined. */
export function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.map((c) => c.text ?? '').join('');
}

/** Polls `cond` every `pollMs` until it holds; throws after `timeoutMs`, naming `what`. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5_000,
  pollMs = 25,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
