/**
 * Picking the nearest gateway among several (one per region, say): the `nearest` option.
 *
 * Every URL is probed at once: a connection is opened to each (the same dial as a real
 * connection, credentials included) and sent `probeSamples` protocol `ping`s one after the other;
 * the median round trip ranks it. The fastest connection is kept and becomes the client's, so
 * probing costs the slowest answer among the gateways that answer, not a second connect; the
 * others are closed (1000). A gateway that cannot be reached or refuses ranks last, in the order
 * given. The Rust SDK's `nearest.rs` does the same.
 */

import { FATAL_AT_CONNECT, shouldReconnect } from "./codes.js";
import { ClosedError, ConfigError, RejectedError, WaasError } from "./errors.js";
import type { Transport } from "./transport.js";

/**
 * A connected client moves only to a gateway whose median round trip is below this share of its
 * own gateway's, so two gateways at about the same distance do not swap it back and forth on noise.
 */
export const MOVE_RATIO = 0.8;

export interface Probed {
  /** Index in the client's URLs. */
  index: number;
  /** Median round trip, ms; undefined when the gateway could not be reached. */
  rttMs: number | undefined;
  transport: Transport | undefined;
  error: unknown;
}

/** Every gateway, nearest first; only the nearest's connection is still open. */
export interface Ranking {
  probed: Probed[];
}

export function order(r: Ranking): number[] {
  return r.probed.map((p) => p.index);
}

export function rttOf(r: Ranking, index: number): number | undefined {
  return r.probed.find((p) => p.index === index)?.rttMs;
}

/** Sorts by round trip, unreachable last (stable: in the order given). */
export function rank(probed: Probed[]): Probed[] {
  return [...probed].sort((a, b) => {
    if (a.rttMs === undefined || b.rttMs === undefined) {
      return (a.rttMs === undefined ? 1 : 0) - (b.rttMs === undefined ? 1 : 0);
    }
    return a.rttMs - b.rttMs;
  });
}

/** Probes `count` gateways in parallel; `dial(i)` opens a connection to the i-th. */
export async function probeAll(
  count: number,
  dial: (index: number) => Promise<Transport>,
  samples: number,
  timeoutMs: number,
): Promise<Ranking> {
  const probed = await Promise.all(
    Array.from({ length: count }, async (_, index): Promise<Probed> => {
      let transport: Transport | undefined;
      try {
        transport = await dial(index);
        const rttMs = await transport.measure(samples, timeoutMs);
        return { index, rttMs, transport, error: undefined };
      } catch (error) {
        transport?.drop();
        return { index, rttMs: undefined, transport: undefined, error };
      }
    }),
  );
  const ranked = rank(probed);
  for (const p of ranked.slice(1)) {
    p.transport?.drop(1000);
    p.transport = undefined;
  }
  return { probed: ranked };
}

/** The error to report when no gateway answered: a refusal that would recur before a network error. */
export function rankingError(r: Ranking): unknown {
  const errors = r.probed.map((p) => p.error).filter((e) => e !== undefined);
  const fatal = errors.find(
    (e) =>
      e instanceof WaasError &&
      ((e instanceof RejectedError && FATAL_AT_CONNECT.includes(e.code ?? "")) ||
        (e instanceof ClosedError && !shouldReconnect(e.closeCode!)) ||
        e.kind === "config"),
  );
  return fatal ?? errors.at(-1) ?? new ConfigError("no gateway URL given");
}

/** Whether a client on a gateway with round trip `currentMs` should move to one with `bestMs`. */
export function shouldMove(currentMs: number | undefined, bestMs: number): boolean {
  return currentMs === undefined || bestMs < currentMs * MOVE_RATIO;
}
