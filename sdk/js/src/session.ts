/**
 * The protocol state of a client, kept apart from any I/O so it can be tested frame by frame
 * (the Rust SDK's `session.rs`, same rules).
 *
 * A `Session` outlives connections: it remembers which channels the application subscribed to,
 * which requests wait for an answer, which services it serves and what to send once connected
 * again. The client feeds it calls and server frames and writes out what it queues in `outbox`.
 *
 * Several local subscriptions may share a channel, while the server knows one subscription per
 * channel per connection: the server is sent `subscribe` for the first local subscriber and
 * `unsubscribe` after the last leaves. A channel moves through: waiting for the server's ack
 * (`subscribing`), live (`acked`), and back to not subscribed on disconnect, when every channel
 * with subscribers is subscribed again with `since` = the last position delivered, so that what
 * was missed is recovered and nothing is delivered twice (`docs/history.md`).
 */

import { ChannelState } from "./channel.js";
import { Deferred } from "./deferred.js";
import { DisconnectedError, ProtocolError, RejectedError, type WaasError } from "./errors.js";
import { toMessage, type Frame, type IncomingRequest, type Response } from "./frames.js";
import type { Subscriber } from "./subscription.js";
import type { Caller, Headers, HistoryPage, HistoryQuery, Member, Position, PresenceEvent } from "./types.js";

export { toMessage, type Frame, type IncomingRequest, type Response } from "./frames.js";

type Pending =
  | { kind: "subscribe"; channel: string; atConnect: boolean }
  | { kind: "unsubscribe"; done: Deferred<void> | undefined }
  | { kind: "publish"; done: Deferred<number> }
  | { kind: "ping"; done: Deferred<number>; sent: number }
  | { kind: "heartbeat" }
  | { kind: "request"; done: Deferred<Response> }
  | { kind: "serve"; service: string }
  | { kind: "unserve"; done: Deferred<void> | undefined }
  | { kind: "members"; done: Deferred<Member[]> }
  | { kind: "history"; done: Deferred<HistoryPage> }
  /** Any other op: answered by `ack` or by a frame of its own with the same `id`. */
  | { kind: "call"; done: Deferred<Frame> };

type Queued =
  | { kind: "publish"; channel: string; event: string; data: unknown; done: Deferred<number> }
  | { kind: "ping"; done: Deferred<number> };

/** What the client should tell the application about. */
export type Notice =
  | { type: "all_live" }
  | { type: "resubscribe_failed"; channel: string; error: WaasError }
  | { type: "unrecovered"; channel: string }
  | { type: "presence"; event: PresenceEvent };

interface Service {
  dispatch: (request: IncomingRequest) => void;
  ready: Deferred<void> | undefined;
}

export class Session {
  online = false;
  outbox: string[] = [];
  notices: Notice[] = [];
  private nextId = 1;
  private channels = new Map<string, ChannelState>();
  private pending = new Map<number, Pending>();
  private queued: Queued[] = [];
  private resubscribing = 0;
  private heartbeat: number | undefined;
  private services = new Map<string, Service>();
  /** Increased on every connect: answers to requests of an older connection are dropped. */
  generation = 0;

  constructor(private readonly offlineQueue: number = 1024) {}

  id(): number {
    return this.nextId++;
  }

  private send(frame: Record<string, unknown>): void {
    this.outbox.push(JSON.stringify(frame));
  }

  takeOutbox(): string[] {
    return this.outbox.splice(0);
  }

  takeNotices(): Notice[] {
    return this.notices.splice(0);
  }

  /** The channel's last delivered position, for tests and diagnostics. */
  position(channel: string): Position | undefined {
    const p = this.channels.get(channel)?.position;
    return p && { ...p };
  }

  private sendSubscribe(channel: string, atConnect: boolean): number {
    const id = this.id();
    const since = this.channels.get(channel)?.position;
    this.send(since ? { op: "subscribe", id, channel, since } : { op: "subscribe", id, channel });
    this.pending.set(id, { kind: "subscribe", channel, atConnect });
    return id;
  }

  private sendUnsubscribe(channel: string, done: Deferred<void> | undefined): void {
    const id = this.id();
    this.send({ op: "unsubscribe", id, channel });
    this.pending.set(id, { kind: "unsubscribe", done });
  }

  subscribe(channel: string, subscriber: Subscriber, done: Deferred<void>): void {
    let state = this.channels.get(channel);
    if (!state) this.channels.set(channel, (state = new ChannelState()));
    if (state.acked) {
      // Already live on the server: the new subscriber is live as soon as it is listed.
      if (done.resolve()) state.live.push(subscriber);
      return;
    }
    state.waiting.push({ subscriber, done });
    if (this.online && state.subscribing === undefined) {
      state.subscribing = this.sendSubscribe(channel, false);
    }
  }

  unsubscribe(channel: string, subscriberId: number, done?: Deferred<void>): void {
    const state = this.channels.get(channel);
    if (!state) {
      done?.resolve();
      return;
    }
    state.live = state.live.filter((s) => s.id !== subscriberId);
    state.waiting = state.waiting.filter((w) => w.subscriber.id !== subscriberId);
    if (!state.isEmpty()) {
      done?.resolve();
      return;
    }
    this.removeChannel(channel, done);
  }

  /** Forgets an empty channel, telling the server when it still has it. */
  private removeChannel(channel: string, done: Deferred<void> | undefined): void {
    const state = this.channels.get(channel);
    if (!state) return;
    this.channels.delete(channel);
    // A subscribe in flight will be acked, so the server must be told to undo it too.
    if (this.online && (state.acked || state.subscribing !== undefined)) {
      this.sendUnsubscribe(channel, done);
    } else {
      done?.resolve();
    }
  }

  publish(channel: string, event: string, data: unknown, done: Deferred<number>): void {
    if (!this.online) {
      if (this.queued.length >= this.offlineQueue) done.reject(new DisconnectedError());
      else this.queued.push({ kind: "publish", channel, event, data, done });
      return;
    }
    const id = this.id();
    this.send({ op: "publish", id, channel, event, data: data === undefined ? null : data });
    this.pending.set(id, { kind: "publish", done });
  }

  ping(done: Deferred<number>): void {
    if (!this.online) {
      if (this.queued.length >= this.offlineQueue) done.reject(new DisconnectedError());
      else this.queued.push({ kind: "ping", done });
      return;
    }
    const id = this.id();
    this.send({ op: "ping", id });
    this.pending.set(id, { kind: "ping", done, sent: now() });
  }

  /** Sends a keepalive ping unless one is already unanswered. */
  sendHeartbeat(): void {
    if (!this.online || this.heartbeat !== undefined) return;
    const id = this.id();
    this.send({ op: "ping", id });
    this.pending.set(id, { kind: "heartbeat" });
    this.heartbeat = id;
  }

  /** Nothing but a heartbeat waits for an answer: the connection may be swapped for a nearer one. */
  quiet(): boolean {
    for (const p of this.pending.values()) if (p.kind !== "heartbeat") return false;
    return true;
  }

  heartbeatOutstanding(): boolean {
    return this.heartbeat !== undefined;
  }

  members(channel: string, done: Deferred<Member[]>): void {
    if (!this.online) {
      done.reject(new DisconnectedError());
      return;
    }
    const id = this.id();
    this.send({ op: "presence", id, channel });
    this.pending.set(id, { kind: "members", done });
  }

  history(channel: string, query: HistoryQuery, done: Deferred<HistoryPage>): void {
    if (!this.online) {
      done.reject(new DisconnectedError());
      return;
    }
    const id = this.id();
    this.send({ op: "history", id, channel, ...query });
    this.pending.set(id, { kind: "history", done });
  }

  request(
    call: { method: string; path: string; headers?: Headers; body?: unknown; timeoutMs?: number },
    done: Deferred<Response>,
  ): void {
    if (!this.online) {
      done.reject(new DisconnectedError());
      return;
    }
    const id = this.id();
    const frame: Record<string, unknown> = { op: "request", id, method: call.method, path: call.path };
    if (call.headers && Object.keys(call.headers).length > 0) frame.headers = call.headers;
    if (call.body !== undefined) frame.body = call.body;
    if (call.timeoutMs !== undefined) frame.timeout_ms = Math.max(1, Math.round(call.timeoutMs));
    this.send(frame);
    this.pending.set(id, { kind: "request", done });
  }

  /** Sends any other op (`fields` without `id`); fails at once while disconnected. */
  call(fields: Record<string, unknown> & { op: string }, done: Deferred<Frame>): void {
    if (!this.online) {
      done.reject(new DisconnectedError());
      return;
    }
    const id = this.id();
    this.send({ ...fields, id });
    this.pending.set(id, { kind: "call", done });
  }

  serve(service: string, dispatch: (r: IncomingRequest) => void, ready: Deferred<void>): boolean {
    if (this.services.has(service)) return false;
    this.services.set(service, { dispatch, ready });
    if (this.online) this.sendServe(service);
    return true;
  }

  unserve(service: string, done?: Deferred<void>): void {
    if (!this.services.delete(service) || !this.online) {
      done?.resolve();
      return;
    }
    const id = this.id();
    this.send({ op: "unserve", id, service });
    this.pending.set(id, { kind: "unserve", done });
  }

  /** A handler's answer to request `id` of connection `generation`. */
  respond(generation: number, id: number, status: number, headers: Headers, body: unknown): void {
    if (!this.online || generation !== this.generation) return;
    const frame: Record<string, unknown> = { op: "response", id, status, body: body ?? null };
    if (Object.keys(headers).length > 0) frame.headers = headers;
    this.send(frame);
  }

  private sendServe(service: string): void {
    const id = this.id();
    this.send({ op: "serve", id, service });
    this.pending.set(id, { kind: "serve", service });
  }

  /**
   * The server lost messages of a channel it could not recover (its bus was down): reported
   * like `recovered: false`, and the position moves to where the server goes on from, so later
   * messages (of a new epoch, maybe) are not taken for duplicates.
   */
  private onGap(f: Frame): void {
    const channel = f.channel as string;
    const state = this.channels.get(channel);
    if (!state || typeof f.epoch !== "string") return;
    const offset = typeof f.offset === "number" ? f.offset : 0;
    if (state.position && state.position.epoch === f.epoch) {
      state.position.offset = Math.max(state.position.offset, offset);
    } else {
      state.position = { offset, epoch: f.epoch };
    }
    this.notices.push({ type: "unrecovered", channel });
  }

  onFrame(f: Frame): void {
    switch (f.op) {
      case "message":
        return this.deliver(f);
      case "ack": {
        const p = f.id === undefined ? undefined : this.pending.get(f.id);
        if (p?.kind === "subscribe" && typeof f.epoch === "string") {
          const state = this.channels.get(p.channel);
          if (state) {
            state.ack = {
              epoch: f.epoch,
              offset: typeof f.offset === "number" ? f.offset : 0,
              recovered: typeof f.recovered === "boolean" ? f.recovered : undefined,
            };
          }
        }
        if (f.id !== undefined) this.onAnswer(f.id, f, undefined);
        return;
      }
      case "gap":
        return this.onGap(f);
      case "pong":
        if (f.id !== undefined) this.onAnswer(f.id, f, undefined);
        return;
      case "error": {
        if (f.id !== undefined && this.pending.has(f.id)) {
          this.onAnswer(f.id, f, new RejectedError(String(f.code), String(f.message ?? "")));
        }
        return;
      }
      case "members": {
        const members = (f.members as Member[]) ?? [];
        const p = f.id === undefined ? undefined : this.pending.get(f.id);
        if (p?.kind === "members") {
          this.pending.delete(f.id!);
          p.done.resolve(members);
        }
        const channel = f.channel as string;
        this.notices.push({ type: "presence", event: { type: "members", channel, members } });
        return;
      }
      case "member_added":
      case "member_removed":
        this.notices.push({
          type: "presence",
          event: { type: f.op, channel: f.channel as string, member: f.member as Member },
        });
        return;
      case "history": {
        const p = f.id === undefined ? undefined : this.pending.get(f.id);
        if (p?.kind === "history") {
          this.pending.delete(f.id!);
          p.done.resolve({
            channel: f.channel as string,
            epoch: f.epoch as string,
            offset: f.offset as number,
            messages: ((f.messages as Frame[]) ?? []).map(toMessage),
          });
        }
        return;
      }
      case "response": {
        const p = f.id === undefined ? undefined : this.pending.get(f.id);
        if (p?.kind === "request") {
          this.pending.delete(f.id!);
          p.done.resolve({
            status: f.status as number,
            headers: (f.headers as Headers) ?? {},
            body: f.body ?? null,
          });
        }
        return;
      }
      case "request":
        return this.onIncomingRequest(f);
      case "ready":
        return;
      default: {
        // Answers of ops made with `call` (the E2EE key directory's `keys`, `room_keys`...).
        const p = f.id === undefined ? undefined : this.pending.get(f.id);
        if (p?.kind === "call") {
          this.pending.delete(f.id!);
          p.done.resolve(f);
        }
      }
    }
  }

  private onIncomingRequest(f: Frame): void {
    const id = f.id as number;
    const service = f.service as string;
    const s = this.services.get(service);
    if (!s) {
      this.respond(this.generation, id, 503, {}, { error: `this server does not serve ${JSON.stringify(service)}` });
      return;
    }
    s.dispatch({
      generation: this.generation,
      id,
      service,
      method: (f.method as string) ?? "GET",
      path: f.path as string,
      headers: (f.headers as Headers) ?? {},
      body: f.body ?? null,
      caller: f.caller as Caller,
      timeoutMs: (f.timeout_ms as number) ?? 0,
    });
  }

  private deliver(f: Frame): void {
    const state = this.channels.get(f.channel as string);
    if (!state) return; // late message for a channel just unsubscribed
    if (state.subscribing !== undefined) {
      state.held.push({ frame: f });
      return;
    }
    this.dispatch(f);
  }

  /** Hands a message to the channel's subscribers unless its offset shows it was delivered. */
  private dispatch(f: Frame): void {
    const channel = f.channel as string;
    const state = this.channels.get(channel);
    if (!state) return;
    const offset = f.offset as number;
    if (state.position) {
      if (offset <= state.position.offset) return; // sent again by a recovery
      state.position.offset = offset;
    }
    const message = toMessage(f);
    const before = state.live.length;
    state.live = state.live.filter((s) => s.push(message));
    if (state.live.length < before && state.isEmpty()) this.removeChannel(channel, undefined);
  }

  private onAnswer(id: number, frame: Frame, error: WaasError | undefined): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    switch (p.kind) {
      case "subscribe":
        this.applySubscribeAnswer(p.channel, error);
        if (p.atConnect) {
          this.resubscribing = Math.max(0, this.resubscribing - 1);
          if (this.resubscribing === 0) this.notices.push({ type: "all_live" });
        }
        return;
      case "unsubscribe":
      case "unserve":
        if (error) p.done?.reject(error);
        else p.done?.resolve();
        return;
      case "publish":
        if (error) p.done.reject(error);
        else if (typeof frame.offset !== "number") p.done.reject(new ProtocolError("publish ack without an offset"));
        else p.done.resolve(frame.offset);
        return;
      case "ping":
        if (error) p.done.reject(error);
        else p.done.resolve(now() - p.sent);
        return;
      case "heartbeat":
        // Any answer, even an error, shows the connection is alive.
        this.heartbeat = undefined;
        return;
      case "serve": {
        const s = this.services.get(p.service);
        if (error) {
          this.services.delete(p.service);
          s?.ready?.reject(error);
        } else if (s?.ready) {
          s.ready.resolve();
          s.ready = undefined;
        }
        return;
      }
      case "call":
        if (error) p.done.reject(error);
        else p.done.resolve(frame);
        return;
      case "request":
      case "members":
      case "history":
        p.done.reject(error ?? new ProtocolError(`${p.kind} answered by ${frame.op}`));
        return;
    }
  }

  private applySubscribeAnswer(channel: string, error: WaasError | undefined): void {
    const state = this.channels.get(channel);
    if (!state) return;
    state.subscribing = undefined;
    const held = state.held.splice(0);
    const ack = state.ack;
    state.ack = undefined;
    if (error) {
      const hadLive = state.live.length > 0;
      this.channels.delete(channel);
      for (const s of state.live) s.end(error);
      for (const w of state.waiting) {
        w.done.reject(error);
        w.subscriber.end(error);
      }
      if (hadLive) this.notices.push({ type: "resubscribe_failed", channel, error });
      return;
    }
    state.acked = true;
    for (const w of state.waiting.splice(0)) {
      if (w.done.resolve()) state.live.push(w.subscriber);
    }
    if (ack) {
      // Offsets compare only within an epoch: a new one starts from nothing.
      if (!state.position || state.position.epoch !== ack.epoch) {
        state.position = { offset: 0, epoch: ack.epoch };
      }
      for (const m of held) this.dispatch(m.frame);
      // Live from the ack's offset on, whatever came before it.
      const p = this.channels.get(channel)?.position;
      if (p) p.offset = Math.max(p.offset, ack.offset);
      if (ack.recovered === false) this.notices.push({ type: "unrecovered", channel });
    } else {
      for (const m of held) this.dispatch(m.frame);
    }
    const after = this.channels.get(channel);
    // Every waiter gave up (timed out) meanwhile.
    if (after?.isEmpty()) this.removeChannel(channel, undefined);
  }

  /** The connection is gone: requests that cannot be resent fail, channels wait to resubscribe. */
  onDisconnect(): void {
    this.online = false;
    this.heartbeat = undefined;
    this.resubscribing = 0;
    this.outbox = [];
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      switch (p.kind) {
        case "publish":
        case "ping":
        case "members":
        case "history":
        case "request":
        case "call":
          p.done.reject(new DisconnectedError());
          break;
        case "unsubscribe":
        case "unserve":
          // The server forgets a closed connection's subscriptions and services.
          p.done?.resolve();
          break;
        default:
          break; // subscribes and serves are sent again on the next connection
      }
    }
    for (const state of this.channels.values()) {
      state.subscribing = undefined;
      state.acked = false;
      state.held = [];
      state.ack = undefined;
    }
  }

  /** A connection is ready: serve and subscribe everything again, then send what was queued. */
  onConnect(): void {
    this.online = true;
    this.generation++;
    for (const service of this.services.keys()) this.sendServe(service);
    for (const [channel, state] of [...this.channels]) {
      if (state.isEmpty()) this.channels.delete(channel);
    }
    for (const [channel, state] of this.channels) {
      state.subscribing = this.sendSubscribe(channel, true);
    }
    this.resubscribing = this.channels.size;
    for (const q of this.queued.splice(0)) {
      if (q.done.settled) continue;
      if (q.kind === "publish") this.publish(q.channel, q.event, q.data, q.done);
      else this.ping(q.done);
    }
    if (this.resubscribing === 0) this.notices.push({ type: "all_live" });
  }

  /** The client is finished: every waiting request fails with `error`, every stream ends. */
  shutdown(error: () => WaasError): void {
    this.onDisconnect();
    for (const state of this.channels.values()) {
      for (const w of state.waiting) w.done.reject(error());
      for (const s of state.live) s.end();
      for (const w of state.waiting) w.subscriber.end();
    }
    this.channels.clear();
    for (const q of this.queued.splice(0)) q.done.reject(error());
    for (const s of this.services.values()) s.ready?.reject(error());
    this.services.clear();
  }
}

function now(): number {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
}
