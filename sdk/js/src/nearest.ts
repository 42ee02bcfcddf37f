/**
 * Picking the nearest gateway among several (one per region, say): the `nearest` option.
 *
 * Every URL is probed at once: a connection is opened to each (the same dial as a real
 * connection, credentials included) and sent `probeSamples` protocol `ping`s one after the other;
 * the median round trip ranks it. The first gateway to answer sets a deadline (`stopWaitingAt`);
 * the gateways that answered by then are ranked by round trip, the fastest one's connection is
 * kept and becomes the client's, and the others are closed (1000). Probes still running at the
 * deadline go on in the background: they rank after every gateway that answered until they
 * finish, then by their round trip (`onLate`), and their connections are closed as they finish,
 * or at once when the client closes (`signal`).
 * A gateway that cannot be reached or refuses ranks last, in the order given. The Rust SDK's
 * `nearest.rs` does the same.
 */

import { FATAL_AT_CONNECT, shouldReconnect } from "./codes.js";
import { ClientClosedError, ClosedError, ConfigError, RejectedError, WaasError } from "./errors.js";
import type { Transport } from "./transport.js";

/**
 * A connected client moves only to a gateway whose median round trip is below this share of its
 * own gateway's, so two gateways at about the same distance do not swap it back and forth on noise.
 */
export const MOVE_RATIO = 0.8;

/** How much longer than the first gateway to answer the others are waited for (`stopWaitingAt`). */
export const GRACE_FACTOR = 2;
/** The least time the others are waited for after the first answer, ms (`stopWaitingAt`). */
export const GRACE_FLOOR_MS = 5;

/**
 * When, in ms from the start of probing, to stop waiting for the gateways still probing, given
 * that the first one finished its probe (connect and pings) after `firstMs`.
 *
 * A probe costs a gateway its connect (TCP, the WebSocket upgrade, `connect`/`ready`: two or three
 * round trips plus the server's work) and `probeSamples` round trips, so its total time grows with
 * its round trip. A gateway whose round trip is no longer than the first finisher's would finish
 * at about the same time; one still probing at twice that time has a round trip about twice as
 * long, or a server much slower to accept it: either way not one to connect to now. The floor
 * keeps gateways that all answer within a few ms (one data centre, a test on loopback) from being
 * told apart by scheduling noise, at the cost of those few ms. Waiting for the rest would cost the
 * slowest gateway's connect and pings (a far region's, often hundreds of ms) for nothing.
 */
export function stopWaitingAt(firstMs: number): number {
  return Math.max(firstMs * GRACE_FACTOR, firstMs + GRACE_FLOOR_MS);
}

/**
 * What probing does next, over timings only (the Rust SDK's `next_step`): `firstMs` is when the
 * first gateway answered (ms from the start of probing, undefined while none has), `running` how
 * many probes are still running, `ownDone` whether the client's own gateway (when re-probing;
 * else true) has finished, `elapsedMs` the time since the start. `"rank"`: stop waiting;
 * `"await"`: wait for the next answer; a number: wait for it at most until then.
 *
 * Nothing is cut short before a gateway answered (an error is no answer: the next gateway may
 * still answer), nor before the own gateway finished when re-probing: the move compares its round
 * trip with the best (`shouldMove`), and a re-probe runs beside a live connection, so it costs no
 * one any waiting.
 */
export function nextStep(
  firstMs: number | undefined,
  running: number,
  ownDone: boolean,
  elapsedMs: number,
): "rank" | "await" | number {
  if (running === 0) return "rank";
  if (firstMs === undefined || !ownDone) return "await";
  const at = stopWaitingAt(firstMs);
  return elapsedMs >= at ? "rank" : at;
}

export interface Probed {
  /** Index in the client's URLs. */
  index: number;
  /** Median round trip, ms; undefined when the gateway has not answered (yet). */
  rttMs: number | undefined;
  /** Still probing in the background when the ranking was made. */
  pending: boolean;
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

/** 0: answered, 1: still probing, 2: unreachable. */
function klass(p: Probed): number {
  return p.rttMs !== undefined ? 0 : p.pending ? 1 : 2;
}

/**
 * Answered by round trip, then those still probing, then unreachable ones, each kind in the order
 * given among equals.
 */
export function rank(probed: Probed[]): Probed[] {
  return [...probed].sort((a, b) => klass(a) - klass(b) || (a.rttMs ?? 0) - (b.rttMs ?? 0) || a.index - b.index);
}

/** The ranking with the answers of probes that were still running, ranked again. */
export function merge(r: Ranking, late: Probed[]): Ranking {
  const probed = r.probed.map((p) => {
    const answer = late.find((l) => l.index === p.index);
    return answer ? { ...p, rttMs: answer.rttMs, pending: false, error: answer.error } : p;
  });
  return { probed: rank(probed) };
}

/**
 * Probes `count` gateways in parallel (`dial(i)` opens a connection to the i-th) and ranks those
 * that answer by the deadline of `stopWaitingAt`, and, when `own` is given (a connected client
 * probing again, which compares its own gateway with the best), until that one has answered or
 * failed too. `onLate` gets the answers of the probes still running then, once they all finished
 * (their connections closed). `signal` ends every probe still running: its connection is closed
 * and it counts as unreachable.
 */
export function probeAll(
  count: number,
  dial: (index: number) => Promise<Transport>,
  samples: number,
  timeoutMs: number,
  own?: number,
  onLate?: (late: Probed[]) => void,
  signal?: AbortSignal,
): Promise<Ranking> {
  return new Promise((resolve) => {
    const start = performance.now();
    const done: Probed[] = [];
    const late: Probed[] = [];
    let lateCount = 0;
    let firstMs: number | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const pending: Probed[] = [];
      for (let index = 0; index < count; index++) {
        if (!done.some((p) => p.index === index)) {
          pending.push({ index, rttMs: undefined, pending: true, transport: undefined, error: undefined });
        }
      }
      lateCount = pending.length;
      const ranked = rank([...done, ...pending]);
      for (const p of ranked.slice(1)) {
        p.transport?.drop(1000);
        p.transport = undefined;
      }
      resolve({ probed: ranked });
    };
    const check = () => {
      const ownDone = own === undefined || done.some((p) => p.index === own);
      const step = nextStep(firstMs, count - done.length, ownDone, performance.now() - start);
      if (step === "rank") return finish();
      if (step === "await") return;
      clearTimeout(timer);
      timer = setTimeout(finish, step - (performance.now() - start));
    };
    for (let index = 0; index < count; index++) {
      void probe(index, dial, samples, timeoutMs, signal).then((p) => {
        if (settled) {
          p.transport?.drop(1000);
          p.transport = undefined;
          late.push(p);
          if (late.length === lateCount) onLate?.(late);
          return;
        }
        if (p.rttMs !== undefined && firstMs === undefined) firstMs = performance.now() - start;
        done.push(p);
        check();
      });
    }
    check();
  });
}

async function probe(
  index: number,
  dial: (index: number) => Promise<Transport>,
  samples: number,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<Probed> {
  let transport: Transport | undefined;
  // A connection still dialling is aborted by `dial` itself. A dialled one is dropped with a
  // code other than 1000, which terminates it at once instead of waiting for the server's close.
  const stop = () => transport?.drop(4000);
  signal?.addEventListener("abort", stop, { once: true });
  try {
    transport = await dial(index);
    if (signal?.aborted) throw new ClientClosedError();
    const rttMs = await transport.measure(samples, timeoutMs);
    return { index, rttMs, pending: false, transport, error: undefined };
  } catch (error) {
    transport?.drop();
    return { index, rttMs: undefined, pending: false, transport: undefined, error };
  } finally {
    signal?.removeEventListener("abort", stop);
  }
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
