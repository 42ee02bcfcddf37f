/**
 * The shapes of what the server sends that a client reads: server frames, responses to requests,
 * requests for a served service, and delivered messages.
 */

import type { Caller, Headers, Message } from "./types.js";

/** A server frame, parsed from JSON; fields as `docs/protocol.md` lists them. */
export type Frame = { op: string; id?: number; [field: string]: unknown };

/** The responder's answer to a request (`docs/rpc.md#response`). */
export interface Response<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/** A request the gateway forwards to a service this client serves. */
export interface IncomingRequest {
  generation: number;
  id: number;
  service: string;
  method: string;
  path: string;
  headers: Headers;
  body: unknown;
  caller: Caller;
  timeoutMs: number;
}

export function toMessage(f: Frame): Message {
  return {
    channel: f.channel as string,
    event: f.event as string,
    data: f.data,
    offset: f.offset as number,
    ts: f.ts as number,
    replayed: f.replayed === true,
  };
}
