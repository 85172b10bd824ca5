// One event per exchange, emitted at its end: the seam where audit and metrics plug in. Sinks must not
// block the request path; the default sink does nothing.

export type Outcome = 'ok' | 'error' | 'denied' | 'upstream_error' | 'cancelled';

export interface ExchangeEvent {
  /** Epoch ms when the gateway received the message. */
  startedAt: number;
  route: string;
  sessionId: string | undefined;
  /** The principal's subject, when identity is configured. */
  subject: string | undefined;
  mcpMethod: string;
  /** The upstream that handled it, when one did. */
  upstream: string | undefined;
  /** tool name / resource uri / prompt name, when the method has one. */
  target: string | undefined;
  outcome: Outcome;
  httpStatus: number;
  /** JSON-RPC error code of the answer, when it is an error. */
  rpcCode: number | undefined;
  /** Total time in the gateway, ms (fractional). */
  durationMs: number;
  /** Time waiting for the upstream, ms (fractional), when one was called. */
  upstreamMs: number | undefined;
  requestId: string;
  /** Why a policy decided as it did (ACL), for audit. */
  reason?: string;
}

export interface ExchangeSink {
  emit(event: ExchangeEvent): void;
}

export const noopSink: ExchangeSink = { emit() {} };

/** Fans one event out to several sinks; a failing sink never breaks the exchange or the others. */
export function fanOut(sinks: readonly ExchangeSink[]): ExchangeSink {
  if (sinks.length === 0) return noopSink;
  if (sinks.length === 1) return sinks[0]!;
  return {
    emit(event) {
      for (const s of sinks) {
        try {
          s.emit(event);
        } catch {
          // sinks own their failures (counted and logged there)
        }
      }
    },
  };
}
