/**
 * One error family for the whole SDK, with kinds an application can tell apart by class
 * (`instanceof RejectedError`) or by `kind`, and the server's codes kept as data: `code` holds the
 * error code (`forbidden`, `token_expired`...) whichever way it arrived, `closeCode` the WebSocket
 * close code when the server ended the connection. Same kinds as the Rust SDK's `Error`.
 */

import type { ErrorCode } from "./codes.js";

export type ErrorKind =
  | "rejected"
  | "http"
  | "closed"
  | "client_closed"
  | "disconnected"
  | "reconnect_failed"
  | "timeout"
  | "invalid_channel"
  | "invalid_path"
  | "config"
  | "discovery"
  | "token_provider"
  | "protocol"
  | "websocket"
  | "e2ee";

export class WaasError extends Error {
  readonly kind: ErrorKind;
  /** The server's error code, when the error comes from one (or is its local equivalent). */
  readonly code: ErrorCode | undefined;
  /** The WebSocket close code, when the server ended the connection with one. */
  readonly closeCode: number | undefined;

  constructor(
    kind: ErrorKind,
    message: string,
    extra: { code?: ErrorCode; closeCode?: number; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = new.target.name;
    this.kind = kind;
    this.code = extra.code;
    this.closeCode = extra.closeCode;
  }
}

/** The server answered a request (or the connect) with an `error` frame. */
export class RejectedError extends WaasError {
  constructor(code: ErrorCode, readonly serverMessage: string) {
    super("rejected", `refused by the server: ${code}: ${serverMessage}`, { code });
  }
}

/** A REST call got a non-2xx answer. */
export class HttpError extends WaasError {
  constructor(readonly status: number, code: ErrorCode, readonly serverMessage: string) {
    super("http", `HTTP ${status}: ${code}: ${serverMessage}`, { code });
  }
}

/**
 * The server closed the connection with a code that forbids reconnecting (4500–4999, 1000).
 * `code` is the error frame's code when one preceded the close.
 */
export class ClosedError extends WaasError {
  constructor(closeCode: number, readonly reason: string, code?: ErrorCode) {
    super("closed", `connection closed by the server: ${closeCode} ${reason}`, {
      closeCode,
      ...(code === undefined ? {} : { code }),
    });
  }
}

/** `close()` was called; the client is finished. */
export class ClientClosedError extends WaasError {
  constructor() {
    super("client_closed", "the client is closed");
  }
}

/**
 * The connection dropped while the request was in flight (or was down when it was made), so
 * whether the server applied it is unknown. It is not resent.
 */
export class DisconnectedError extends WaasError {
  constructor() {
    super("disconnected", "disconnected before the server answered");
  }
}

/** Reconnecting was given up after `maxReconnectAttempts`. */
export class ReconnectFailedError extends WaasError {
  constructor(readonly attempts: number, readonly last: WaasError) {
    super("reconnect_failed", `gave up reconnecting after ${attempts} attempts: ${last.message}`, {
      ...(last.code === undefined ? {} : { code: last.code }),
      ...(last.closeCode === undefined ? {} : { closeCode: last.closeCode }),
      cause: last,
    });
  }
}

export class TimeoutError extends WaasError {
  constructor(readonly operation: string) {
    super("timeout", `${operation} timed out`);
  }
}

/** Refused locally: the name can never be valid, so it is not worth a round trip. */
export class InvalidChannelError extends WaasError {
  constructor(readonly channel: string, readonly reason: string) {
    super("invalid_channel", `invalid channel name ${JSON.stringify(channel)}: ${reason}`, {
      code: "invalid_channel",
    });
  }
}

/** Refused locally: a request method, path or service name that can never be valid. */
export class InvalidPathError extends WaasError {
  constructor(readonly path: string, readonly reason: string) {
    super("invalid_path", `invalid ${JSON.stringify(path)}: ${reason}`);
  }
}

/** The options given cannot work (no URL, bad scheme, no WebSocket implementation...). */
export class ConfigError extends WaasError {
  constructor(message: string) {
    super("config", `invalid configuration: ${message}`);
  }
}

/**
 * The discovery document (`discoveryUrl`) could not be fetched or is not a valid regions document
 * (too large, not JSON, a URL that is not `ws://` or `wss://`, more than 32 regions...).
 */
export class DiscoveryError extends WaasError {
  constructor(readonly url: string, readonly reason: string) {
    super("discovery", `discovery document ${url}: ${reason}`);
  }
}

export class TokenProviderError extends WaasError {
  constructor(cause: unknown) {
    super("token_provider", `token provider failed: ${String(cause)}`, { cause });
  }
}

/** The server sent something this SDK cannot understand. */
export class ProtocolError extends WaasError {
  constructor(message: string) {
    super("protocol", `protocol violation: ${message}`);
  }
}

/** The socket could not be opened or broke (no close code from the server). */
export class WebSocketError extends WaasError {
  constructor(message: string) {
    super("websocket", `WebSocket: ${message}`);
  }
}

/** Codes of `E2eeError` (`docs/e2ee.md#sdk-errors`); `storage` and `crypto` are local failures. */
export type E2eeErrorCode =
  | "unknown_key"
  | "decrypt_failed"
  | "malformed_envelope"
  | "not_shared"
  | "storage"
  | "crypto";

/**
 * Encrypting, decrypting or sharing failed (same codes as the Rust SDK's `E2eeError`). No
 * decryption failure ever yields plaintext.
 */
export class E2eeError extends WaasError {
  declare readonly code: E2eeErrorCode;

  constructor(code: E2eeErrorCode, message: string, cause?: unknown) {
    super("e2ee", `${code}: ${message}`, { code, ...(cause === undefined ? {} : { cause }) });
  }
}
