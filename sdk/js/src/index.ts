/**
 * TypeScript client SDK for WaaS, the self-hostable realtime pub/sub service; browsers and
 * Node 20+. Mirrors the Rust SDK (`sdk/rust`): same concepts, same names in camelCase.
 *
 * Layout:
 * - `client`: `Client`, the connection: subscribe, publish, presence, history, requests,
 *   serving, reconnects with recovery.
 * - `session`: the protocol state kept across connections, free of I/O (tested frame by frame).
 *   `frames` holds the shapes of server frames it reads, `channel` its state for one channel.
 * - `transport`: one WebSocket: the `connect` frame, `ready`, the platform's WebSocket or `ws`.
 * - `subscription`: `Subscription`, an async iterable of messages with a bounded buffer.
 * - `events`: connection events (`connected`, `disconnected`, `unrecovered`...) and the emitter.
 * - `server`: `Router`, `Reply`, `ServerRequest`: answering a service's requests.
 * - `rest`: `ServerClient`, the REST API for servers.
 * - `backoff`, `codes`, `errors`, `names`: reconnect delays, wire codes, typed errors, name checks.
 */

export { Backoff } from "./backoff.js";
export { Client, Serving, type Call, type ClientState } from "./client.js";
export type { ClientOptions } from "./options.js";
export { CloseCode, ERROR_CODES, isKnownErrorCode, shouldReconnect, type ErrorCode, type KnownErrorCode } from "./codes.js";
export * from "./errors.js";
export type { ClientEvents, Listener } from "./events.js";
export { channelError, isPresenceChannel } from "./names.js";
export { ServerClient, type RecordingInfo, type StartRecording, type TokenRequest } from "./rest.js";
export { Reply, Router, ServerRequest, type Handler } from "./server.js";
export type { Frame, Response } from "./session.js";
export { Subscription } from "./subscription.js";
export type { WebSocketConstructor, WebSocketLike } from "./transport.js";
export type * from "./types.js";
export {
  DeviceKeyPair,
  fromBase64,
  newKeyId,
  toBase64,
  wrapKey,
  type Envelope,
} from "./e2ee/crypto.js";
export { E2ee, EncryptedSubscription, ROOM_KEY_EVENT, type Decrypted, type E2eeEvents } from "./e2ee/e2ee.js";
export { Keyring, type RoomKeyEntry } from "./e2ee/keyring.js";
export { Owner, type OwnerEvents } from "./e2ee/owner.js";
export {
  FileStorage,
  IndexedDbStorage,
  MemoryStorage,
  type KeyringStorage,
  type RoomKeysFile,
  type StoredKey,
} from "./e2ee/storage.js";
