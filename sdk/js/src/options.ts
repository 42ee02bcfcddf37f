/**
 * What a client is given (`ClientOptions`) and what it keeps of it once checked (`Settings`):
 * every default and every refusal of a bad option in one place, before anything connects.
 */

import { Backoff } from "./backoff.js";
import { ConfigError, TokenProviderError } from "./errors.js";
import { endpointUrl, type WebSocketConstructor } from "./transport.js";

export interface ClientOptions {
  /** A gateway base URL (`ws://host:port`, `http://`, `wss://`, `https://`, optional path prefix). */
  url?: string;
  /** Several gateways: the first is tried first, reconnects rotate through the list. */
  urls?: string[];
  /** The app id. */
  app: string;
  /** A JWT for an end user, or an API key for a trusted server; sent in the `connect` frame. */
  token?: string;
  /**
   * Called for a fresh token before every connect and reconnect, for clients that outlive their
   * tokens: a 4500/4501 close then reconnects with a new token instead of stopping.
   */
  tokenProvider?: () => string | Promise<string>;
  /** How often to ping the server to detect a dead connection. Default 20000 ms. */
  pingIntervalMs?: number;
  /** How long a ping may go unanswered before the connection is replaced. Default 10000 ms. */
  pingTimeoutMs?: number;
  /** Limit for one connect (socket, `connect`, `ready`). Default 10000 ms. */
  connectTimeoutMs?: number;
  /** How long calls wait for the server's answer, reconnects included. Default 10000 ms. */
  requestTimeoutMs?: number;
  /** Reconnect delays. Default 100 ms doubling to 5 s, jittered. */
  backoff?: Backoff;
  /** Give up after this many consecutive failed reconnect attempts. Default never. */
  maxReconnectAttempts?: number;
  /** Messages buffered per subscription for a reader that lags; newer ones are dropped. Default 1024. */
  subscriptionCapacity?: number;
  /** Publishes and pings kept while reconnecting. Default 1024. */
  offlineQueue?: number;
  /** A WebSocket implementation; default the global one, else the `ws` package. */
  webSocket?: WebSocketConstructor;
  /**
   * Connect to the nearest of the URLs instead of the first (one gateway URL per region, say):
   * every URL is probed in parallel with `probeSamples` protocol pings on a real connection, the
   * one with the shortest median round trip is kept, reconnects after a failure try the next
   * nearest first, and a connected client probes again every `reprobeIntervalMs`, moving to a
   * gateway that answers in under 80% of its own's round trip. A move resubscribes from each
   * channel's last position, like any reconnect; it waits (up to the request timeout) for
   * requests in flight to be answered first, and shows as a `connected` event with the new URL.
   * Default false: the first URL is tried first (`docs/regions.md`).
   */
  nearest?: boolean;
  /** Pings per gateway and probe with `nearest`; the median counts. Default 3. */
  probeSamples?: number;
  /** How often a connected client probes the gateways again with `nearest`. Default 300000 ms. */
  reprobeIntervalMs?: number;
  /**
   * Fetch the gateways' URLs from this discovery URL instead of listing them in the client: an
   * `http://` or `https://` URL answering a regions document, such as any gateway's
   * `GET /v1/regions` (`docs/regions.md`). Turns `nearest` on: the URLs it lists are probed and
   * the nearest is kept. The document is fetched at connect and again before every re-probe, so
   * regions can be added or moved without changing clients. `url`/`urls`, if given, are a
   * fallback used when the document cannot be fetched or read; without them that failure fails
   * the connect with a `DiscoveryError`. A document larger than 64 KiB, listing more than 32
   * regions or a URL other than `ws://`/`wss://` is refused.
   */
  discoveryUrl?: string;
  /**
   * The name of this server process, for a client connecting with an API key: the dashboard's
   * Servers page and the admin API list the connection under it, with its gateway and ping
   * latency (`server_name` in `docs/protocol.md`). 1–64 of letters, digits, `.`, `_`, `:`, `-`,
   * such as a host or pod name. Ignored by the server for end users' tokens.
   */
  serverName?: string;
}

export interface Settings {
  urls: string[];
  app: string;
  token: () => Promise<string>;
  canRefresh: boolean;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  backoff: Backoff;
  maxReconnectAttempts: number | undefined;
  subscriptionCapacity: number;
  offlineQueue: number;
  nearest: boolean;
  probeSamples: number;
  reprobeIntervalMs: number;
  discoveryUrl: string | undefined;
  serverName: string | undefined;
}

export function settings(o: ClientOptions): Settings {
  const urls = [...(o.url ? [o.url] : []), ...(o.urls ?? [])];
  if (urls.length === 0 && o.discoveryUrl === undefined) throw new ConfigError("no gateway URL or discovery URL given");
  if (o.discoveryUrl !== undefined && !/^https?:\/\//.test(o.discoveryUrl)) {
    throw new ConfigError(`discovery URL ${JSON.stringify(o.discoveryUrl)}: expected http:// or https://`);
  }
  if (!o.app) throw new ConfigError("no app id given");
  for (const u of urls) endpointUrl(u, o.app);
  const { token, tokenProvider } = o;
  if (token === undefined && tokenProvider === undefined) {
    throw new ConfigError("no token, API key or token provider given");
  }
  const positive = (name: string, v: number | undefined, d: number) => {
    const value = v ?? d;
    if (!(value > 0)) throw new ConfigError(`${name} must be positive`);
    return value;
  };
  return {
    urls,
    app: o.app,
    token: tokenProvider
      ? async () => {
          try {
            return await tokenProvider();
          } catch (e) {
            throw new TokenProviderError(e);
          }
        }
      : async () => token!,
    canRefresh: tokenProvider !== undefined,
    pingIntervalMs: positive("pingIntervalMs", o.pingIntervalMs, 20_000),
    pingTimeoutMs: positive("pingTimeoutMs", o.pingTimeoutMs, 10_000),
    connectTimeoutMs: positive("connectTimeoutMs", o.connectTimeoutMs, 10_000),
    requestTimeoutMs: positive("requestTimeoutMs", o.requestTimeoutMs, 10_000),
    backoff: o.backoff ?? new Backoff(),
    maxReconnectAttempts: o.maxReconnectAttempts,
    subscriptionCapacity: positive("subscriptionCapacity", o.subscriptionCapacity, 1024),
    offlineQueue: o.offlineQueue ?? 1024,
    nearest: (o.nearest ?? false) || o.discoveryUrl !== undefined,
    probeSamples: Math.floor(positive("probeSamples", o.probeSamples, 3)),
    reprobeIntervalMs: positive("reprobeIntervalMs", o.reprobeIntervalMs, 300_000),
    discoveryUrl: o.discoveryUrl,
    serverName: checkServerName(o.serverName),
  };
}

/** The server name, or a `ConfigError` with the server's rule (`ServerName` in `sdk/protocol`). */
function checkServerName(name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(name)) {
    throw new ConfigError(`server name ${JSON.stringify(name)}: 1-64 of letters, digits, '.', '_', ':', '-'`);
  }
  return name;
}
