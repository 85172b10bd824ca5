// What every kind of upstream shares: its health as calls and probes see it, and the cap on requests
// in flight (excess fails fast, never queues).

import { Errors } from '../mcp/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { UpstreamHealth, UpstreamStatus } from './types.ts';

export class UpstreamBase {
  readonly name: string;
  readonly #maxConcurrency: number;
  readonly #logger: Logger;
  #inFlight = 0;
  #status: UpstreamStatus = 'unknown';
  #since = Date.now();
  #lastError: string | undefined;

  constructor(name: string, maxConcurrency: number, logger: Logger) {
    this.name = name;
    this.#maxConcurrency = maxConcurrency;
    this.#logger = logger;
  }

  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Reserves one slot of max_concurrency, or fails fast. */
  acquire(): void {
    if (this.#inFlight >= this.#maxConcurrency) {
      throw Errors.overloaded(
        `upstream "${this.name}" already has ${this.#maxConcurrency} requests in flight (its max_concurrency); retry later`,
      );
    }
    this.#inFlight++;
  }

  release(): void {
    this.#inFlight--;
  }

  health(): UpstreamHealth {
    const h: UpstreamHealth = { status: this.#status, since: this.#since, inFlight: this.#inFlight };
    if (this.#lastError !== undefined) h.lastError = this.#lastError;
    return h;
  }

  markUp(): void {
    if (this.#status === 'up') return;
    this.#status = 'up';
    this.#since = Date.now();
    this.#lastError = undefined;
    this.#logger.info('upstream is up');
  }

  markDown(err: unknown): void {
    this.#lastError = err instanceof Error ? err.message : String(err);
    if (this.#status === 'down') return;
    this.#status = 'down';
    this.#since = Date.now();
    this.#logger.warn({ err: this.#lastError }, 'upstream is down');
  }
}
