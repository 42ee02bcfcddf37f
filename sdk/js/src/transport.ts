/**
 * One WebSocket connection to a gateway: opening it, authenticating with a `connect` frame (the
 * token never goes in the URL, where proxies log it) and waiting for `ready`, then passing frames
 * and the close to the client.
 *
 * The WebSocket implementation is the platform's: browsers' and Node 22+'s global `WebSocket`.
 * Node 20 has none by default, so there the optional peer dependency `ws` is loaded on first use
 * (by a computed specifier, so that bundlers building for browsers leave it out); an
 * implementation can also be passed as the `webSocket` option.
 */

import {
  ClientClosedError,
  ClosedError,
  ConfigError,
  RejectedError,
  TimeoutError,
  WebSocketError,
  type WaasError,
} from "./errors.js";
import type { Frame } from "./session.js";

/** The part of the WHATWG `WebSocket` interface the SDK uses (`ws` implements it too). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

let loaded: Promise<WebSocketConstructor> | undefined;

/** The given implementation, else the global one, else the `ws` package. */
export function resolveWebSocket(given?: WebSocketConstructor): Promise<WebSocketConstructor> {
  if (given) return Promise.resolve(given);
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof global === "function") return Promise.resolve(global);
  loaded ??= (async () => {
    const name = "ws";
    try {
      const mod = (await import(name)) as { WebSocket?: WebSocketConstructor; default?: WebSocketConstructor };
      const ctor = mod.WebSocket ?? mod.default;
      if (typeof ctor === "function") return ctor;
    } catch {
      // reported below
    }
    loaded = undefined;
    throw new ConfigError(
      "this runtime has no global WebSocket (Node 20): `npm install ws`, or pass the `webSocket` option",
    );
  })();
  return loaded;
}

/** A gateway base URL turned into its WebSocket endpoint for an app (and a server's name). */
export function endpointUrl(base: string, app: string, serverName?: string): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new ConfigError(`gateway URL ${JSON.stringify(base)} does not parse`);
  }
  const scheme = { "ws:": "ws:", "http:": "ws:", "wss:": "wss:", "https:": "wss:" }[url.protocol];
  if (!scheme) throw new ConfigError(`gateway URL ${JSON.stringify(base)}: expected ws://, wss://, http:// or https://`);
  const prefix = url.pathname.replace(/\/+$/, "");
  const query = serverName === undefined ? "" : `?server_name=${encodeURIComponent(serverName)}`;
  return `${scheme}//${url.host}${prefix}/v1/apps/${encodeURIComponent(app)}/ws${query}`;
}

export interface Ready {
  connectionId: string;
  sub: string;
  /** The server's ping interval, seconds. */
  heartbeat: number;
}

export interface TransportHandlers {
  frame(frame: Frame): void;
  closed(code: number | undefined, reason: string): void;
}

export class Transport {
  private handlers: TransportHandlers | undefined;
  /** Frames that arrived between `ready` and `attach`. */
  private early: Frame[] = [];
  /** A close that came before `attach` (a probed connection kept idle), reported on attach. */
  private earlyClose: { code: number | undefined; reason: string } | undefined;
  /** The ping a probe waits for (`measure`). */
  private probe: { id: number; done: (error?: WaasError) => void } | undefined;
  private ended = false;

  private constructor(
    private readonly ws: WebSocketLike,
    readonly url: string,
    readonly ready: Ready,
  ) {}

  /**
   * Opens a connection and authenticates. Rejects with `RejectedError` when the server refuses
   * (its code: `invalid_token`, `app_not_found`...), `ClosedError` when it closes first,
   * `TimeoutError` after `timeoutMs`, `WebSocketError` when the socket cannot be opened.
   * `signal` (the client's `close()`) aborts the socket and rejects with `ClientClosedError`.
   */
  static dial(
    WS: WebSocketConstructor,
    url: string,
    token: string,
    connectId: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<Transport> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(new ClientClosedError());
        return;
      }
      let ws: WebSocketLike;
      try {
        ws = new WS(url);
      } catch (e) {
        reject(new WebSocketError(`cannot open ${url}: ${String(e)}`));
        return;
      }
      let transport: Transport | undefined;
      let refused: WaasError | undefined;
      let settled = false;
      const onAbort = () => {
        fail(new ClientClosedError());
        abort(ws);
      };
      const fail = (error: WaasError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        reject(error);
      };
      const timer = setTimeout(() => {
        fail(new TimeoutError("connect"));
        abort(ws);
      }, timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      ws.onopen = () => {
        ws.send(JSON.stringify({ op: "connect", id: connectId, token }));
      };
      ws.onerror = () => {
        // The close event that follows says more.
      };
      ws.onmessage = (event) => {
        const frame = parse(event.data);
        if (!frame) return;
        if (transport) {
          transport.onFrame(frame);
          return;
        }
        if (settled) return;
        if (frame.op === "ready") {
          settled = true;
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          transport = new Transport(ws, url, {
            connectionId: String(frame.connection_id ?? ""),
            sub: String(frame.sub ?? ""),
            heartbeat: typeof frame.heartbeat === "number" ? frame.heartbeat : 25,
          });
          resolve(transport);
        } else if (frame.op === "error" && (frame.id === connectId || frame.id === undefined)) {
          // The close follows; the error frame's code is the better reason.
          refused = new RejectedError(String(frame.code), String(frame.message ?? ""));
          fail(refused);
        }
      };
      ws.onclose = (event) => {
        if (transport) {
          transport.onClose(event.code, event.reason);
          return;
        }
        if (event.code === 1006 || event.code === undefined) {
          fail(new WebSocketError(`connection to ${url} failed or dropped before ready`));
        } else {
          fail(new ClosedError(event.code, event.reason ?? ""));
        }
      };
    });
  }

  /** Starts passing frames and the close to `handlers` (what was received before first). */
  attach(handlers: TransportHandlers): void {
    this.handlers = handlers;
    for (const f of this.early.splice(0)) handlers.frame(f);
    const closed = this.earlyClose;
    this.earlyClose = undefined;
    if (closed) handlers.closed(closed.code, closed.reason);
  }

  /**
   * Median round trip, ms, of `samples` protocol pings sent one after the other on this connection
   * before it is attached (probing for the nearest gateway, `nearest.ts`). Their ids count down
   * from `Number.MAX_SAFE_INTEGER`, far from the ids the session gives its own requests.
   */
  async measure(samples: number, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    const rtts: number[] = [];
    for (let i = 0; i < samples; i++) {
      const id = Number.MAX_SAFE_INTEGER - i;
      const sent = performance.now();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => done(new TimeoutError("probe")), Math.max(0, deadline - Date.now()));
        const done = (error?: WaasError) => {
          clearTimeout(timer);
          this.probe = undefined;
          if (error) reject(error);
          else resolve();
        };
        this.probe = { id, done };
        if (!this.send(JSON.stringify({ op: "ping", id }))) done(new WebSocketError("closed while probing"));
      });
      rtts.push(performance.now() - sent);
    }
    rtts.sort((a, b) => a - b);
    return rtts[Math.floor(rtts.length / 2)]!;
  }

  private onFrame(frame: Frame): void {
    if (this.ended) return;
    if (this.probe && frame.op === "pong" && frame.id === this.probe.id) this.probe.done();
    else if (this.handlers) this.handlers.frame(frame);
    else this.early.push(frame);
  }

  private onClose(code: number | undefined, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    const c = code === 1006 ? undefined : code;
    const r = reason || "connection closed";
    this.probe?.done(c === undefined ? new WebSocketError("closed while probing") : new ClosedError(c, r));
    if (this.handlers) this.handlers.closed(c, r);
    else this.earlyClose = { code: c, reason: r };
  }

  /** `false` when the socket is no longer open. */
  send(text: string): boolean {
    if (this.ended || this.ws.readyState !== 1) return false;
    try {
      this.ws.send(text);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Ends the connection without waiting for the server (its close, if any, is not reported):
   * after `close()`, or when the server stopped answering pings.
   */
  drop(code = 1000): void {
    if (this.ended) return;
    this.ended = true;
    // The close event is not reported after this: a probe waiting for its pong ends here.
    this.probe?.done(new WebSocketError("closed while probing"));
    if (code === 1000) {
      try {
        this.ws.close(1000);
      } catch {
        abort(this.ws);
      }
    } else {
      abort(this.ws);
    }
  }
}

/** Closes at once: `ws`'s `terminate()` where there is one, else a normal close. */
function abort(ws: WebSocketLike): void {
  const t = (ws as { terminate?: () => void }).terminate;
  try {
    if (typeof t === "function") t.call(ws);
    else ws.close();
  } catch {
    // already closed
  }
}

function parse(data: unknown): Frame | undefined {
  if (typeof data !== "string") return undefined; // binary frames are not part of protocol v1
  try {
    const f = JSON.parse(data) as unknown;
    if (f && typeof f === "object" && typeof (f as Frame).op === "string") return f as Frame;
  } catch {
    // skipped, like the Rust SDK does
  }
  return undefined;
}
