/**
 * The serving side of requests over the socket (`docs/rpc.md#serving-a-service`): a tenant's
 * server, connected with an API key, answers a service's requests with a handler. Same shapes as
 * the Rust SDK's `server` module: a `Handler` gets a `ServerRequest` (method, path, headers, JSON
 * body, and the caller as the gateway vouches for it) and returns what `toReply` accepts.
 */

import type { IncomingRequest } from "./session.js";
import type { Caller, Headers } from "./types.js";

/** What a handler answers: a status, headers and a JSON body. */
export class Reply {
  constructor(
    readonly status: number,
    readonly body: unknown = null,
    readonly headers: Headers = {},
  ) {}

  /** `{"error": message}` with `status`. */
  static error(status: number, message: string): Reply {
    return new Reply(status, { error: message });
  }

  header(name: string, value: string): Reply {
    return new Reply(this.status, this.body, { ...this.headers, [name.toLowerCase()]: value });
  }
}

/**
 * A handler's result becomes a reply: a `Reply` as is, `undefined` is 204, anything else is a
 * 200 with that JSON body. A thrown `Reply` answers too; any other throw answers 500.
 */
export function toReply(value: unknown): Reply {
  if (value instanceof Reply) return value;
  if (value === undefined) return new Reply(204, null);
  return new Reply(200, value);
}

export class ServerRequest {
  readonly service: string;
  readonly method: string;
  /** The path as the caller sent it, query string included. */
  readonly path: string;
  readonly headers: Headers;
  readonly body: unknown;
  /** Who sent it: `sub` from their token (`"server"` for an API key), app, connection id. */
  readonly caller: Caller;
  /** How long the caller still waits, ms; answering later is useless. */
  readonly timeoutMs: number;
  /** `{name}` segments captured by a `Router` route. */
  params: Record<string, string> = {};
  /** @internal */
  readonly generation: number;
  /** @internal */
  readonly id: number;

  constructor(r: IncomingRequest) {
    this.service = r.service;
    this.method = r.method;
    this.path = r.path;
    this.headers = r.headers;
    this.body = r.body;
    this.caller = r.caller;
    this.timeoutMs = r.timeoutMs;
    this.generation = r.generation;
    this.id = r.id;
  }

  /** A header by name (names arrive in lower case). */
  header(name: string): string | undefined {
    return this.headers[name.toLowerCase()];
  }

  /** A `{name}` segment of the route that matched, e.g. `city` in `/weather/{city}`. */
  param(name: string): string | undefined {
    return this.params[name];
  }

  /** The query string, without `?`. */
  get query(): string | undefined {
    const q = this.path.indexOf("?");
    return q < 0 ? undefined : this.path.slice(q + 1);
  }
}

export type Handler = (request: ServerRequest) => unknown | Promise<unknown>;

/**
 * Dispatches on method and path pattern (`/weather/{city}`: literal segments, and `{name}`
 * segments capturing one segment each). No match answers 404, a path matched with another
 * method 405.
 */
export class Router {
  private routes: { method: string; segments: string[]; handler: Handler }[] = [];

  route(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method: method.toUpperCase(), segments: pattern.replace(/^\//, "").split("/"), handler });
    return this;
  }

  /** The router as a handler, for `client.serve(service, router.handler)`. */
  readonly handler: Handler = (request) => {
    const path = request.path.split("?")[0]!.replace(/^\//, "").split("/");
    let pathMatched = false;
    for (const route of this.routes) {
      const params = match(route.segments, path);
      if (!params) continue;
      pathMatched = true;
      if (route.method === request.method) {
        request.params = params;
        return route.handler(request);
      }
    }
    return pathMatched
      ? Reply.error(405, `${request.method} is not allowed here`)
      : Reply.error(404, `no handler for ${request.path}`);
  };
}

function match(pattern: string[], path: string[]): Record<string, string> | undefined {
  if (pattern.length !== path.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const s = path[i]!;
    if (p.startsWith("{") && p.endsWith("}")) params[p.slice(1, -1)] = s;
    else if (p !== s) return undefined;
  }
  return params;
}
