/**
 * The owner of an encrypted channel (`docs/e2ee.md#roles-owner-and-members`): follows the
 * members of a presence channel and keeps the room key in step — the current version shared with
 * every member on start and with each member that joins, a new version (wrapped for those who
 * remain) whenever one leaves. Presence events are handled one at a time, in order.
 */

import { Emitter } from "../events.js";
import type { WaasError } from "../errors.js";
import type { Subscription } from "../subscription.js";
import type { PresenceEvent } from "../types.js";
import type { E2ee } from "./e2ee.js";

export interface OwnerEvents {
  /** Version `v` was shared with `members` (on start, after a reconnect, or when they joined). */
  shared: { v: number; members: string[] };
  /** Members left: version `v` was made and shared with the remaining `members`. */
  rotated: { v: number; removed: string[]; members: string[] };
  /** Sharing or rotating failed; the owner goes on with the next presence event. */
  failed: { error: WaasError | Error };
}

export class Owner extends Emitter<OwnerEvents> {
  private members = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private stopListening: (() => void) | undefined;
  private subscription: Subscription | undefined;

  constructor(
    private readonly e2ee: E2ee,
    readonly channel: string,
    readonly presence: string,
  ) {
    super();
  }

  /** @internal Use `E2ee.own`. */
  async start(): Promise<void> {
    // Listening before subscribing: the member list that answers the subscribe is not missed.
    this.stopListening = this.e2ee.client.on("presence", (e) => {
      if (e.channel !== this.presence) return;
      this.queue = this.queue.then(() => this.handle(e));
    });
    await this.e2ee.fetch(this.channel);
    if (!this.e2ee.keyring.current(this.channel)) await this.e2ee.rotate(this.channel, []);
    this.subscription = await this.e2ee.client.subscribe(this.presence);
  }

  private async handle(e: PresenceEvent): Promise<void> {
    try {
      switch (e.type) {
        case "members": {
          const now = new Set(e.members.map((m) => m.id));
          // Members who left while the owner was away (a reconnect) get no next version.
          const removed = [...this.members].filter((m) => !now.has(m));
          this.members = now;
          if (removed.length > 0) await this.rotate(removed);
          else await this.shareCurrent([...now]);
          break;
        }
        case "member_added":
          this.members.add(e.member.id);
          await this.shareCurrent([e.member.id]);
          break;
        case "member_removed":
          if (this.members.delete(e.member.id)) await this.rotate([e.member.id]);
          break;
      }
    } catch (error) {
      this.emit("failed", { error: error as Error });
    }
  }

  private async shareCurrent(members: string[]): Promise<void> {
    const current = this.e2ee.keyring.current(this.channel)!;
    await this.e2ee.share(this.channel, current, members);
    this.emit("shared", { v: current.v, members });
  }

  private async rotate(removed: string[]): Promise<void> {
    const members = [...this.members];
    const key = await this.e2ee.rotate(this.channel, members);
    this.emit("rotated", { v: key.v, removed, members });
  }

  /** Stops following the members (the presence subscription ends). */
  async stop(): Promise<void> {
    this.stopListening?.();
    await this.subscription?.unsubscribe();
  }
}
