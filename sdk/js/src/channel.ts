/**
 * A session's state for one channel: local subscribers sharing one server subscription, the
 * `subscribe` in flight and the last position delivered (see `session.ts`).
 */

import type { Deferred } from "./deferred.js";
import type { Frame } from "./frames.js";
import type { Subscriber } from "./subscription.js";
import type { Position } from "./types.js";

export interface Waiter {
  subscriber: Subscriber;
  done: Deferred<void>;
}

export interface Held {
  frame: Frame;
}

export class ChannelState {
  live: Subscriber[] = [];
  waiting: Waiter[] = [];
  /** Frame id of the `subscribe` in flight on this connection. */
  subscribing: number | undefined;
  acked = false;
  /** The epoch and last offset delivered, once a server gave an epoch. */
  position: Position | undefined;
  /** Messages that arrived while a `subscribe` was in flight: new or not is known at its ack. */
  held: Held[] = [];
  ack: { epoch: string; offset: number; recovered: boolean | undefined } | undefined;

  isEmpty(): boolean {
    return this.live.length === 0 && this.waiting.length === 0;
  }
}
