// MCP protocol revisions the gateway speaks, and the rules that differ between them.

export const PROTOCOL_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'] as const;
export type ProtocolVersion = (typeof PROTOCOL_VERSIONS)[number];

export const LATEST_VERSION: ProtocolVersion = '2025-11-25';
/** The version assumed when a client sends no MCP-Protocol-Version header and none was negotiated. */
export const DEFAULT_NEGOTIATED_VERSION: ProtocolVersion = '2025-03-26';

const known = new Set<string>(PROTOCOL_VERSIONS);

export function isSupportedVersion(v: string): v is ProtocolVersion {
  return known.has(v);
}

/** The version the gateway answers an initialize with: the client's if supported, else the latest. */
export function negotiateVersion(requested: unknown): ProtocolVersion {
  return typeof requested === 'string' && isSupportedVersion(requested) ? requested : LATEST_VERSION;
}

/** JSON-RPC batches were removed in 2025-06-18; 2025-03-26 still allows them. */
export function allowsBatches(v: ProtocolVersion): boolean {
  return v === '2025-03-26' || v === '2024-11-05';
}

/** Resumable SSE with priming events and `retry` (polling) arrived in 2025-11-25. */
export function primesStreams(v: ProtocolVersion): boolean {
  return v >= '2025-11-25';
}
