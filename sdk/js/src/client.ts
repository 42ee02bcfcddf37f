/**
 * The client applications hold: one connection (to one of several gateways), every
 * subscription and served service restored after each reconnect.
 *
 * JavaScript runs one thing at a time, so the Rust SDK's actor task is this object itself: its
 * methods change the `Session` (the I/O-free protocol state) and flush what it queued to the
 * socket. The reconnect loop decides from the close code whether to go on
 * (`docs/protocol.md#close-codes`), waits a jittered backoff, dials the next URL in rotation and
 * resubscribes with each channel's last position, so missed messages are recovered.
 */

import { FATAL_AT_CONNECT, shouldReconnect } from "./codes.js";
import { Deferred } from "./deferred.js";
import {
  ClientClosedError,
  ClosedError,
  ConfigError,
  ReconnectFailedError,
  RejectedError,
  TimeoutError,
  WaasError,
  WebSocketError,
} from "./errors.js";
import { Emitter, type ClientEvents } from "./events.js";
import { discover } from "./discovery.js";
import * as nearest from "./nearest.js";
import { checkChannel, checkMethod, checkPath, checkService } from "./names.js";
import { Reply, ServerRequest, toReply, type Handler } from "./server.js";
import { Session, type Frame, type IncomingRequest, type Response } from "./session.js";
import { settings, type ClientOptions, type Settings } from "./options.js";
import { Subscription } from "./subscription.js";
import { endpointUrl, resolveWebSocket, Transport, type WebSocketConstructor } from "./transport.js";
import type {
  DeviceKey,
  Headers,
  HistoryPage,
  HistoryQuery,
  Member,
  Position,
  StoredRoomKey,
  WrappedKey,
} from "./types.js";

export type ClientState = "connected" | "reconnecting" | "closed";

/** A request with every option (`docs/rpc.md#request`). */
export interface Call {
  method?: string;
  path: string;
  headers?: Headers;
  body?: unknown;
  /** Shortens the route's timeout for this request, ms. */
  timeoutMs?: number;
}

/** Extra wait past a request's own timeout for the server's `timeout` error. */
const LOCAL_GRACE_MS = 1000;
/** Requests one service's handlers may be running at once; beyond it the SDK answers 503. */
const MAX_RUNNING = 1024;

function fatalAtConnect(e: unknown): boolean {
  if (!(e instanceof WaasError)) return false;
  if (e instanceof RejectedError) return FATAL_AT_CONNECT.includes(e.code ?? "");
  if (e instanceof ClosedError) return !shouldReconnect(e.closeCode!);
  return e.kind === "config";
}

export class Client extends Emitter<ClientEvents> {
  private readonly session: Session;
  private transport: Transport | undefined;
  /**
   * The gateways: the URLs given, or those the discovery document lists (`discovery.ts`), fetched
   * again before every re-probe.
   */
  private urls: string[] = [];
  /** Index in `urls` of the current (or last) connection. */
  private endpoint = 0;
  /** URL indices in the order reconnects try them: as given, or nearest first (`nearest.ts`). */
  private order: number[] = [];
  /** The last probe's ranking, refined by the answers of its probes that finish late. */
  private ranking: nearest.Ranking | undefined;
  /** Counts probes, so that late answers to a probe a newer one replaced are ignored. */
  private probeGeneration = 0;
  private reprobeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Aborted by `close()`: probes still running then end at once instead of at their timeout. */
  private readonly probing = new AbortController();
  /** A nearer gateway's connection, taken once no request is in flight (or at `deadline`). */
  private moving: { index: number; transport: Transport; timer: ReturnType<typeof setTimeout> } | undefined;
  private nextSubscriber = 1;
  private stopped: WaasError | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private pongTimer: ReturnType<typeof setTimeout> | undefined;
  private wakeReconnect: (() => void) | undefined;
  private currentState: ClientState = "connected";

  private constructor(
    private readonly s: Settings,
    private readonly WS: WebSocketConstructor,
  ) {
    super();
    this.session = new Session(s.offlineQueue);
  }

  /**
   * Connects and waits for the server's `ready`. Each URL is tried once, in order; refusals
   * another attempt would get again (`invalid_token`, `app_not_found`...) fail at once, so
   * configuration mistakes surface here as typed errors.
   */
  static async connect(options: ClientOptions): Promise<Client> {
    const s = settings(options);
    const WS = await resolveWebSocket(options.webSocket);
    const client = new Client(s, WS);
    client.urls = await client.gateways(undefined);
    client.order = client.urls.map((_, i) => i);
    if (s.nearest && client.urls.length > 1) {
      const ranking = await client.probe(client.urls);
      const best = ranking.probed[0]!;
      if (!best.transport) throw nearest.rankingError(ranking);
      client.ranking = ranking;
      client.order = nearest.order(ranking);
      client.endpoint = best.index;
      client.online(best.transport);
      return client;
    }
    let last: unknown;
    for (let i = 0; i < client.urls.length; i++) {
      try {
        const transport = await client.dial(i);
        client.endpoint = i;
        client.online(transport);
        return client;
      } catch (e) {
        last = e;
        if (fatalAtConnect(e)) break;
      }
    }
    throw last;
  }

  /** What the client is doing now. */
  get state(): ClientState {
    return this.currentState;
  }

  /** Re-read after an `await`: the state may have changed meanwhile. */
  private isClosed(): boolean {
    return this.currentState === "closed";
  }

  /** The server's id for the current connection (changes on reconnect). */
  get connectionId(): string | undefined {
    return this.currentState === "connected" ? this.transport?.ready.connectionId : undefined;
  }

  /** Who the server authenticated (`sub` of the token, `"server"` for an API key). */
  get sub(): string | undefined {
    return this.transport?.ready.sub;
  }

  /** The gateway URL of the current (or last) connection. */
  get url(): string | undefined {
    return this.transport?.url;
  }

  /** The last delivered position of a subscribed channel. */
  position(channel: string): Position | undefined {
    return this.session.position(channel);
  }

  private dial(index: number): Promise<Transport> {
    return this.dialUrl(this.urls[index]!);
  }

  private async dialUrl(base: string, signal?: AbortSignal): Promise<Transport> {
    const token = await this.s.token();
    const url = endpointUrl(base, this.s.app, this.s.serverName);
    return Transport.dial(this.WS, url, token, this.session.id(), this.s.connectTimeoutMs, signal);
  }

  /**
   * The gateways to probe: the discovery document's with `discoveryUrl`, else the URLs given.
   * When the document cannot be fetched or read, the URLs given (or `known`, those of a previous
   * fetch) are used if there are any, so a discovery endpoint being down does not stop clients
   * that have another way in; with none, the error is thrown.
   */
  private async gateways(known: string[] | undefined): Promise<string[]> {
    if (this.s.discoveryUrl === undefined) return this.s.urls;
    try {
      return await discover(this.s.discoveryUrl, this.s.connectTimeoutMs);
    } catch (e) {
      const fallback = known ?? this.s.urls;
      if (fallback.length === 0) throw e;
      return fallback;
    }
  }

  /** Probes `urls` (`nearest.ts`); `own` is the index of the connected one when re-probing. */
  private probe(urls: string[], own?: number): Promise<nearest.Ranking> {
    const generation = ++this.probeGeneration;
    return nearest.probeAll(
      urls.length,
      (i) => this.dialUrl(urls[i]!, this.probing.signal),
      this.s.probeSamples,
      this.s.connectTimeoutMs,
      own,
      (late) => {
        if (generation !== this.probeGeneration || !this.ranking || this.isClosed()) return;
        this.ranking = nearest.merge(this.ranking, late);
        this.order = nearest.order(this.ranking);
      },
      this.probing.signal,
    );
  }

  /**
   * Probes again while connected (after fetching the URLs again with `discoveryUrl`), waiting
   * for the own gateway's answer too so that the move compares it with the best; takes the
   * ranking as the reconnect order, maybe moves. A gateway the client is connected to that a new
   * document no longer lists stays on the list (last) while the client is connected to it.
   */
  private async reprobe(transport: Transport): Promise<void> {
    const connected = this.urls[this.endpoint]!;
    let urls = await this.gateways(this.urls);
    if (!urls.includes(connected)) urls = [...urls, connected];
    const own = urls.indexOf(connected);
    const ranking = await this.probe(urls, own);
    const best = ranking.probed[0]!;
    if (transport !== this.transport || !this.session.online || this.isClosed()) {
      best.transport?.drop(1000);
      return;
    }
    this.urls = urls;
    this.endpoint = own;
    this.ranking = ranking;
    this.order = nearest.order(ranking);
    const current = nearest.rttOf(ranking, this.endpoint);
    if (best.transport && best.index !== this.endpoint && nearest.shouldMove(current, best.rttMs!)) {
      const timer = setTimeout(() => this.move(true), this.s.requestTimeoutMs);
      this.moving = { index: best.index, transport: best.transport, timer };
      this.move(false);
    } else {
      best.transport?.drop(1000);
      this.reprobeTimer = setTimeout(() => void this.reprobe(transport), this.s.reprobeIntervalMs);
    }
  }

  /** Switches to the nearer gateway found by `reprobe` once nothing waits for an answer (or `force`). */
  private move(force: boolean): void {
    const m = this.moving;
    if (!m || !(force || this.session.quiet())) return;
    this.dropMoving();
    const old = this.transport;
    this.stopHeartbeat();
    this.session.onDisconnect();
    this.currentState = "reconnecting";
    this.endpoint = m.index;
    old?.drop(1000);
    this.online(m.transport);
  }

  private dropMoving(): void {
    if (!this.moving) return;
    clearTimeout(this.moving.timer);
    this.moving = undefined;
  }

  private online(transport: Transport): void {
    clearTimeout(this.reprobeTimer);
    if (this.s.nearest && (this.urls.length > 1 || this.s.discoveryUrl !== undefined)) {
      this.reprobeTimer = setTimeout(() => void this.reprobe(transport), this.s.reprobeIntervalMs);
    }
    this.transport = transport;
    transport.attach({
      frame: (f) => this.onFrame(f),
      closed: (code, reason) => this.lost(transport, code, reason),
    });
    this.session.onConnect();
    this.flush();
    this.startHeartbeat(transport);
  }

  private onFrame(frame: Frame): void {
    this.session.onFrame(frame);
    this.flush();
    if (this.moving) this.move(false);
  }

  /** Writes what the session queued, then tells the application what happened. */
  private flush(): void {
    const frames = this.session.takeOutbox();
    if (this.transport && this.session.online) {
      for (const text of frames) {
        if (!this.transport.send(text)) break; // the close event follows
      }
    }
    for (const n of this.session.takeNotices()) {
      switch (n.type) {
        case "all_live":
          this.currentState = "connected";
          this.emit("connected", {
            connectionId: this.transport!.ready.connectionId,
            sub: this.transport!.ready.sub,
            url: this.transport!.url,
          });
          break;
        case "unrecovered":
          this.emit("unrecovered", { channel: n.channel });
          break;
        case "resubscribe_failed":
          this.emit("resubscribe_failed", { channel: n.channel, error: n.error });
          break;
        case "presence":
          this.emit("presence", n.event);
          break;
      }
    }
  }

  private startHeartbeat(transport: Transport): void {
    this.stopHeartbeat();
    this.heartbeatTimer = setInterval(() => {
      if (this.transport !== transport || this.session.heartbeatOutstanding()) return;
      this.session.sendHeartbeat();
      this.flush();
      this.pongTimer = setTimeout(() => {
        if (this.transport === transport && this.session.heartbeatOutstanding()) {
          transport.drop(4001);
          this.lost(transport, undefined, `no pong within ${this.s.pingTimeoutMs} ms`);
        }
      }, this.s.pingTimeoutMs);
    }, this.s.pingIntervalMs);
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.pongTimer);
  }

  private lost(transport: Transport, code: number | undefined, reason: string): void {
    if (transport !== this.transport || this.currentState === "closed" || !this.session.online) return;
    this.stopHeartbeat();
    clearTimeout(this.reprobeTimer);
    if (this.moving) {
      // The nearer gateway's connection stays unused: reconnects start over from the ranking.
      this.moving.transport.drop(1000);
      this.dropMoving();
    }
    this.session.onDisconnect();
    this.emit("disconnected", { code, reason });
    const mayReconnect =
      code === undefined ||
      shouldReconnect(code) ||
      (this.s.canRefresh && (code === 4500 || code === 4501));
    if (!mayReconnect) {
      this.finish(new ClosedError(code ?? 1000, reason));
      return;
    }
    this.currentState = "reconnecting";
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const delayMs = this.s.backoff.delay(attempt);
      this.emit("reconnecting", { attempt, delayMs });
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delayMs);
        this.wakeReconnect = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wakeReconnect = undefined;
      if (this.isClosed()) return;
      this.endpoint = this.order[(this.order.indexOf(this.endpoint) + 1) % this.order.length]!;
      let transport: Transport;
      try {
        transport = await this.dial(this.endpoint);
      } catch (e) {
        if (this.isClosed()) return;
        const error = e instanceof WaasError ? e : new WebSocketError(String(e));
        if (fatalAtConnect(error)) return this.finish(error);
        if (this.s.maxReconnectAttempts !== undefined && attempt >= this.s.maxReconnectAttempts) {
          return this.finish(new ReconnectFailedError(attempt, error));
        }
        continue;
      }
      if (this.isClosed()) {
        transport.drop();
        return;
      }
      this.online(transport);
      return;
    }
  }

  private finish(error: WaasError | undefined): void {
    if (this.currentState === "closed") return;
    this.currentState = "closed";
    this.stopHeartbeat();
    clearTimeout(this.reprobeTimer);
    if (this.moving) {
      this.moving.transport.drop(1000);
      this.dropMoving();
    }
    this.wakeReconnect?.();
    this.stopped = error;
    this.session.shutdown(() => error ?? new ClientClosedError());
    this.emit("closed", { error });
  }

  private stoppedError(): WaasError {
    return this.stopped ?? new ClientClosedError();
  }

  /** Waits for `done` at most `ms`, failing it with `TimeoutError(operation)` after. */
  private async wait<T>(operation: string, done: Deferred<T>, ms = this.s.requestTimeoutMs): Promise<T> {
    if (this.currentState === "closed") done.reject(this.stoppedError());
    const timer = setTimeout(() => done.reject(new TimeoutError(operation)), ms);
    try {
      return await done.promise;
    } finally {
      clearTimeout(timer);
    }
  }

  private run<T>(operation: string, start: (done: Deferred<T>) => void, ms?: number): Promise<T> {
    const done = new Deferred<T>();
    if (this.currentState === "closed") {
      done.reject(this.stoppedError());
    } else {
      start(done);
      this.flush();
    }
    return this.wait(operation, done, ms);
  }

  /**
   * Subscribes to a channel; resolves once the server acknowledged, so a message published
   * after it resolves is delivered. Rejects with `RejectedError` (`forbidden`,
   * `too_many_channels`...) when the server refuses. The subscription survives reconnects.
   */
  async subscribe<T = unknown>(channel: string): Promise<Subscription<T>> {
    checkChannel(channel);
    const sub = new Subscription<T>(channel, this.nextSubscriber++, this.s.subscriptionCapacity, (s) =>
      this.unsubscribe(s),
    );
    try {
      await this.run<void>("subscribe", (done) => this.session.subscribe(channel, sub, done));
    } catch (e) {
      sub.end(e instanceof WaasError ? e : undefined);
      throw e;
    }
    return sub;
  }

  private unsubscribe(sub: { channel: string; id: number }): Promise<void> {
    if (this.currentState === "closed") return Promise.resolve();
    return this.run<void>("unsubscribe", (done) => this.session.unsubscribe(sub.channel, sub.id, done));
  }

  /**
   * Publishes `data` (any JSON value) and resolves with the offset the server gave it. While
   * reconnecting the publish is held and sent once connected (within the request timeout); if
   * the connection drops after it was sent it rejects with `DisconnectedError`: it may or may
   * not have been published, and is not resent.
   */
  async publish(channel: string, event: string, data: unknown): Promise<number> {
    checkChannel(channel);
    return this.run<number>("publish", (done) => this.session.publish(channel, event, data, done));
  }

  /** One round trip to the server (protocol `ping`/`pong`), in ms. */
  async ping(): Promise<number> {
    return this.run<number>("ping", (done) => this.session.ping(done));
  }

  /** The members of a presence channel as the server knows them now. */
  async members(channel: string): Promise<Member[]> {
    checkChannel(channel);
    return this.run<Member[]>("members", (done) => this.session.members(channel, done));
  }

  /** A page of `channel`'s stored messages (`docs/history.md`); needs the right to subscribe. */
  async history(channel: string, query: HistoryQuery = {}): Promise<HistoryPage> {
    checkChannel(channel);
    return this.run<HistoryPage>("history", (done) => this.session.history(channel, query, done));
  }

  /**
   * Sends a request to the app's routes and resolves with the responder's answer, whatever its
   * status. Rejects with `RejectedError` when there is none (`forbidden`, `no_route`,
   * `no_responder`, `timeout`, `upstream_error`...), `DisconnectedError` when the connection
   * dropped meanwhile (it is not resent).
   */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<Response<T>> {
    return this.call<T>({ method, path, body });
  }

  /** A request with headers and a timeout. */
  async call<T = unknown>(call: Call): Promise<Response<T>> {
    const method = call.method ?? "GET";
    checkMethod(method);
    checkPath(call.path);
    const headers: Headers = {};
    for (const [k, v] of Object.entries(call.headers ?? {})) headers[k.toLowerCase()] = v;
    const wait = call.timeoutMs === undefined ? undefined : call.timeoutMs + LOCAL_GRACE_MS;
    return this.run<Response>(
      "request",
      (done) => this.session.request({ ...call, method, headers }, done),
      wait,
    ) as Promise<Response<T>>;
  }

  /**
   * Serves `service`: requests the app's routes send to it are answered by `handler` (a function
   * or `router.handler`). Resolves once the gateway routes them here. Needs an API key
   * (`forbidden` otherwise). Served again after every reconnect.
   */
  async serve(service: string, handler: Handler): Promise<Serving> {
    checkService(service);
    let running = 0;
    const dispatch = (r: IncomingRequest) => {
      if (running >= MAX_RUNNING) {
        this.session.respond(r.generation, r.id, 503, {}, { error: "the server is overloaded" });
        return;
      }
      running++;
      const request = new ServerRequest(r);
      void (async () => {
        let reply: Reply;
        try {
          reply = toReply(await handler(request));
        } catch (e) {
          reply = e instanceof Reply ? e : Reply.error(500, "the handler failed");
        }
        running--;
        this.session.respond(request.generation, request.id, reply.status, reply.headers, reply.body);
        this.flush();
      })();
    };
    await this.run<void>("serve", (ready) => {
      if (!this.session.serve(service, dispatch, ready)) {
        ready.reject(new ConfigError(`service ${JSON.stringify(service)} is already served by this client`));
      }
    });
    return new Serving(service, () => {
      if (this.currentState === "closed") return Promise.resolve();
      return this.run<void>("unserve", (done) => this.session.unserve(service, done));
    });
  }

  /**
   * Sends an op this SDK has no method for and resolves with the answering frame (`ack` or the
   * op's own answer); used by the E2EE key directory. Fails at once while disconnected.
   */
  async send(frame: Record<string, unknown> & { op: string }): Promise<Frame> {
    return this.run<Frame>(frame.op, (done) => this.session.call(frame, done));
  }

  /** Publishes this device's public key (base64 SPKI) to the key directory; the device id. */
  async keysPublish(publicKey: string): Promise<string> {
    const f = await this.send({ op: "keys_publish", public_key: publicKey });
    return String(f.device ?? "");
  }

  /** The published device keys of user `sub`, newest first (`docs/e2ee.md#keys_get`). */
  async keysGet(sub: string): Promise<DeviceKey[]> {
    const f = await this.send({ op: "keys_get", sub });
    return (f.keys as DeviceKey[] | undefined) ?? [];
  }

  /** Stores room key `(keyId, version)` wrapped for devices (`docs/e2ee.md#room_key_put`). */
  async roomKeyPut(channel: string, keyId: string, version: number, wrapped: WrappedKey[]): Promise<void> {
    checkChannel(channel);
    await this.send({ op: "room_key_put", channel, key_id: keyId, version, wrapped });
  }

  /** The channel's room keys wrapped for this connection's user (`docs/e2ee.md#room_key_get`). */
  async roomKeyGet(channel: string): Promise<StoredRoomKey[]> {
    checkChannel(channel);
    const f = await this.send({ op: "room_key_get", channel });
    return (f.keys as StoredRoomKey[] | undefined) ?? [];
  }

  /** Closes the connection (1000) and stops reconnecting; later calls fail, iterations end. */
  async close(): Promise<void> {
    if (this.currentState === "closed") return;
    const transport = this.transport;
    this.finish(undefined);
    transport?.drop(1000);
    this.probing.abort();
  }
}

/** A service being served; `stop()` stops taking its requests. */
export class Serving {
  private stopped = false;

  constructor(
    readonly service: string,
    private readonly unserve: () => Promise<void>,
  ) {}

  /** Stops taking requests; resolves once the server acknowledged. Requests running still answer. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.unserve();
  }
}
