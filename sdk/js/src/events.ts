/**
 * Connection lifecycle notifications and a small typed emitter.
 *
 * Reconnects are invisible to subscriptions by design, so applications (and tests) that need to
 * know about them — to show "offline", to wait for a reconnect rather than sleep — listen here.
 * Same events as the Rust SDK's `ConnectionEvent`, plus `presence`.
 */

import type { WaasError } from "./errors.js";
import type { PresenceEvent } from "./types.js";

export interface ClientEvents {
  /**
   * A connection is ready and every subscription is live again (after a reconnect, once the
   * resubscriptions were acknowledged, so a publish after it is delivered).
   */
  connected: { connectionId: string; sub: string; url: string };
  /** The connection was lost; `code` is the close code when the server sent one. */
  disconnected: { code: number | undefined; reason: string };
  /** A reconnect attempt (1-based) starts after waiting `delayMs`. */
  reconnecting: { attempt: number; delayMs: number };
  /** After a reconnect the server refused a subscription that used to be live; it ends. */
  resubscribe_failed: { channel: string; error: WaasError };
  /**
   * After a reconnect, the messages `channel` missed could not all be recovered (history no
   * longer holds them, or the epoch changed): the subscription goes on with a gap. Messages that
   * were recovered are delivered in order before new ones, none twice. Also emitted when the
   * server sends a `gap` frame: its own link to the bus was down and history could not cover
   * what `channel` missed meanwhile (docs/protocol.md#gap).
   */
  unrecovered: { channel: string };
  /** Members of presence channels this client is subscribed to. */
  presence: PresenceEvent;
  /** The client is finished: no error after `close()`, else why it stopped. */
  closed: { error: WaasError | undefined };
}

export type Listener<T> = (event: T) => void;

export class Emitter<E> {
  private listeners = new Map<keyof E, Set<Listener<never>>>();

  /** Calls `listener` for every `type` event from now on; returns a function that stops it. */
  on<K extends keyof E>(type: K, listener: Listener<E[K]>): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => this.off(type, listener);
  }

  off<K extends keyof E>(type: K, listener: Listener<E[K]>): void {
    this.listeners.get(type)?.delete(listener as Listener<never>);
  }

  /** The next `type` event for which `filter` holds. */
  once<K extends keyof E>(type: K, filter: (event: E[K]) => boolean = () => true): Promise<E[K]> {
    return new Promise((resolve) => {
      const stop = this.on(type, (event) => {
        if (filter(event)) {
          stop();
          resolve(event);
        }
      });
    });
  }

  emit<K extends keyof E>(type: K, event: E[K]): void {
    for (const listener of [...(this.listeners.get(type) ?? [])]) {
      try {
        (listener as Listener<E[K]>)(event);
      } catch (e) {
        // A listener's bug must not break the connection.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}
