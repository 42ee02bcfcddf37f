/**
 * Error and close codes are data: the server never changes what a published code means, so the
 * SDK branches on them (retry on `rate_limited`, stop on `invalid_token`...) and hands them to the
 * application as they are. Same names as `docs/protocol.md` and the Rust SDK's `ErrorCode`.
 */

/** Every error code the protocol documents (`docs/protocol.md#error-codes`, `docs/rpc.md`). */
export const ERROR_CODES = [
  "malformed_frame",
  "unknown_op",
  "bad_request",
  "message_too_large",
  "not_connected",
  "already_connected",
  "invalid_token",
  "token_expired",
  "token_wrong_app",
  "unauthorized",
  "forbidden",
  "invalid_channel",
  "too_many_channels",
  "presence_full",
  "rate_limited",
  "app_not_found",
  "connection_limit",
  "no_signing_secret",
  "unavailable",
  "internal",
  "not_found",
  "conflict",
  "reserved_id",
  "no_route",
  "too_many_requests",
  "no_responder",
  "timeout",
  "upstream_error",
  "response_too_large",
] as const;

/** A documented error code; later servers may send others, kept as plain strings. */
export type KnownErrorCode = (typeof ERROR_CODES)[number];
export type ErrorCode = KnownErrorCode | (string & {});

export function isKnownErrorCode(code: string): code is KnownErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code);
}

/** Close codes the server uses (`docs/protocol.md#close-codes`). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  /** No close frame: the connection dropped (browsers report it; never sent on the wire). */
  ABNORMAL: 1006,
  MESSAGE_TOO_BIG: 1009,
  SLOW_CONSUMER: 4000,
  HEARTBEAT_TIMEOUT: 4001,
  CONNECT_TIMEOUT: 4002,
  SERVER_ERROR: 4003,
  CONNECTION_LIMIT: 4004,
  INVALID_TOKEN: 4500,
  TOKEN_EXPIRED: 4501,
  APP_NOT_FOUND: 4502,
  ORIGIN_NOT_ALLOWED: 4503,
} as const;

/**
 * Whether a close code allows reconnecting with the same credentials: 4500–4999 (credentials
 * refused, app gone) and 1000 (a normal end) do not; everything else, 1006 included, does.
 */
export function shouldReconnect(code: number): boolean {
  return !(code >= 4500 && code <= 4999) && code !== CloseCode.NORMAL;
}

/** Refusals at connect time that another attempt with the same configuration would get again. */
export const FATAL_AT_CONNECT: readonly string[] = [
  "invalid_token",
  "token_expired",
  "token_wrong_app",
  "app_not_found",
  "unauthorized",
  "forbidden",
];
