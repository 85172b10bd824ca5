// An exchange sink that writes one debug log line per exchange (installed only when the log level is
// debug or trace, so that it costs nothing otherwise).

import type { ExchangeEvent, ExchangeSink } from './events.ts';
import type { Logger } from './logger.ts';

export function logSink(logger: Logger): ExchangeSink {
  return {
    emit(e: ExchangeEvent) {
      logger.debug(
        {
          requestId: e.requestId,
          traceId: e.traceId,
          sessionId: e.sessionId,
          route: e.route,
          method: e.mcpMethod,
          upstream: e.upstream,
          target: e.target,
          outcome: e.outcome,
          httpStatus: e.httpStatus,
          rpcCode: e.rpcCode,
          ms: Math.round(e.durationMs * 1000) / 1000,
          upstreamMs: e.upstreamMs === undefined ? undefined : Math.round(e.upstreamMs * 1000) / 1000,
        },
        'exchange',
      );
    },
  };
}
