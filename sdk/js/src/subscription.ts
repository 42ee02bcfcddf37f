/**
 * A live subscription: an async iterable of the channel's messages.
 *
 * Each subscription has its own bounded buffer (`subscriptionCapacity`, default 1024). The client
 * never waits for an application to read: when the buffer is full, newer messages for this
 * subscription are dropped and counted in `dropped`, and the gap shows in the offsets. Messages
 * handed to `onMessage` listeners are only buffered as well once the subscription is iterated. The iteration ends when the subscription is
 * unsubscribed, the client closes, or the server refuses it when restoring it after a reconnect.
 */

import type { WaasError } from "./errors.js";
import type { Message } from "./types.js";

/** What the client needs from a subscription; kept apart so the session stays I/O-free. */
export interface Subscriber {
  readonly id: number;
  /** Hands over a message; `false` once the subscription is finished. */
  push(message: Message): boolean;
  /** Ends the stream (with an error when the server refused it). */
  end(error?: WaasError): void;
}

export class Subscription<T = unknown> implements AsyncIterableIterator<Message<T>>, Subscriber {
  /** Messages dropped so far because this subscription's buffer was full. */
  dropped = 0;
  /** Why the stream ended, when it was refused. */
  error: WaasError | undefined;
  private buffer: Message<T>[] = [];
  private waiters: ((r: IteratorResult<Message<T>>) => void)[] = [];
  private listeners = new Set<(m: Message<T>) => void>();
  private taps = new Set<(m: Message) => void>();
  private finished = false;
  /** `next()` was called: buffer for the iterator even when listeners get every message. */
  private iterated = false;

  constructor(
    readonly channel: string,
    readonly id: number,
    private readonly capacity: number,
    private readonly onUnsubscribe: (s: Subscription<T>) => Promise<void>,
  ) {}

  /** Also deliver every message to `listener` (not buffered); returns a function that stops it. */
  onMessage(listener: (message: Message<T>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * @internal Sees every message as it arrives without changing how the subscription buffers
   * (E2EE reacts to key notices before the application reads).
   */
  tap(observer: (message: Message) => void): () => void {
    this.taps.add(observer);
    return () => this.taps.delete(observer);
  }

  push(message: Message): boolean {
    if (this.finished) return false;
    for (const t of this.taps) t(message);
    const m = message as Message<T>;
    for (const l of this.listeners) l(m);
    const waiter = this.waiters.shift();
    if (waiter) waiter({ value: m, done: false });
    else if (this.iterated || this.listeners.size === 0) {
      if (this.buffer.length >= this.capacity) this.dropped++;
      else this.buffer.push(m);
    }
    return true;
  }

  end(error?: WaasError): void {
    if (this.finished) return;
    this.finished = true;
    this.error = error;
    for (const w of this.waiters.splice(0)) w({ value: undefined, done: true });
  }

  get closed(): boolean {
    return this.finished;
  }

  next(): Promise<IteratorResult<Message<T>>> {
    this.iterated = true;
    const m = this.buffer.shift();
    if (m) return Promise.resolve({ value: m, done: false });
    if (this.finished) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async return(): Promise<IteratorResult<Message<T>>> {
    await this.unsubscribe();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Message<T>> {
    return this;
  }

  /** Unsubscribes and waits for the server's ack (when this was the last local subscriber). */
  async unsubscribe(): Promise<void> {
    if (this.finished) return;
    this.end();
    await this.onUnsubscribe(this);
  }
}
