/** Values the SDK hands to applications. Field names follow the wire (`docs/protocol.md`). */

/** A message delivered on a subscription (or read from history). */
export interface Message<T = unknown> {
  channel: string;
  event: string;
  /** The payload, parsed from the JSON the publisher sent. */
  data: T;
  /**
   * Position in the channel: strictly increasing within the channel's epoch, not necessarily
   * contiguous. Across reconnects the SDK recovers what was missed and never delivers an offset
   * twice; when it cannot, it says so with an `unrecovered` event.
   */
  offset: number;
  /** Server time of publication, ms since the Unix epoch. */
  ts: number;
  /** Published again by a replay of a recording; `ts` is then the original publication's. */
  replayed: boolean;
}

/** A member of a presence channel: a user (`sub`), with the `info` claim of its token. */
export interface Member {
  id: string;
  info?: unknown;
}

export type PresenceEvent =
  | { type: "members"; channel: string; members: Member[] }
  | { type: "member_added"; channel: string; member: Member }
  | { type: "member_removed"; channel: string; member: Member };

/** A page of a channel's stored messages (`docs/history.md`). */
export interface HistoryPage {
  channel: string;
  epoch: string;
  /** The channel's latest offset when the history was read. */
  offset: number;
  messages: Message[];
}

export interface HistoryQuery {
  /** Forward: after this offset; with `reverse`: before it. */
  since?: number;
  /** At most this many (the server's `history_page_limit` by default). */
  limit?: number;
  /** Newest first. */
  reverse?: boolean;
}

/** A position in a channel: everything up to `offset` in `epoch` was received. */
export interface Position {
  offset: number;
  epoch: string;
}

/** Who sent a request, as the gateway vouches (`docs/rpc.md#identity-and-trust`). */
export interface Caller {
  sub: string;
  app: string;
  connection_id: string;
}

export type Headers = Record<string, string>;

/** A device key in the E2EE key directory (`docs/e2ee.md#keys_get`). */
export interface DeviceKey {
  device: string;
  /** base64 of the SPKI DER. */
  public_key: string;
  /** When it was last published, ms since the Unix epoch. */
  ts: number;
}

/** A room key wrapped for one device, as `room_key_put` takes it. */
export interface WrappedKey {
  sub: string;
  device: string;
  key: string;
}

/** A room key wrapped for one of the caller's devices, as `room_key_get` returns it. */
export interface StoredRoomKey {
  kid: string;
  v: number;
  device: string;
  key: string;
}
