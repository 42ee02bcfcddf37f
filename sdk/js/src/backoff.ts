/**
 * How long to wait before each reconnect attempt.
 *
 * When a gateway restarts, every client it served loses its connection at the same moment; if
 * they all came back after the same delay they would hit the next gateway as one wave, again on
 * every retry. The delay therefore grows exponentially (a long outage costs few attempts) and is
 * jittered: each attempt waits a random time between half and all of the current ceiling
 * ("equal jitter"). Half, not zero, so that a client never hammers a server that just refused it.
 * Same policy and defaults as the Rust SDK's `Backoff`.
 */
export class Backoff {
  /** Ceiling of the first attempt's delay, ms. Default 100. */
  readonly initialMs: number;
  /** Largest ceiling, ms. Default 5000. */
  readonly maxMs: number;
  /** Growth of the ceiling per attempt. Default 2. */
  readonly multiplier: number;

  constructor(options: { initialMs?: number; maxMs?: number; multiplier?: number } = {}) {
    this.initialMs = options.initialMs ?? 100;
    this.maxMs = options.maxMs ?? 5000;
    this.multiplier = options.multiplier ?? 2;
  }

  /** The ceiling for `attempt` (1-based): `initial * multiplier^(attempt-1)`, at most `max`. */
  ceiling(attempt: number): number {
    const exp = Math.min(Math.max(attempt - 1, 0), 64);
    const ms = this.initialMs * Math.max(this.multiplier, 1) ** exp;
    return Number.isFinite(ms) && ms < this.maxMs ? ms : this.maxMs;
  }

  /** The jittered delay before `attempt`, drawn from `[ceiling/2, ceiling]`. */
  delay(attempt: number, unit: number = Math.random()): number {
    const u = Math.min(Math.max(unit, 0), 1);
    return this.ceiling(attempt) * (0.5 + 0.5 * u);
  }
}
