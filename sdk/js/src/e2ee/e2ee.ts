/**
 * End-to-end encryption (`docs/e2ee.md`) on top of a `Client`: `E2ee` publishes the device key,
 * encrypts publishes into envelopes, decrypts deliveries (asking the key directory once when it
 * meets a version it does not hold) and, for a channel's owner, shares and rotates the room key
 * as members come and go (`own`, in `owner.ts`). Same names as the Rust SDK's `waas_sdk::e2ee`.
 */

import type { Client } from "../client.js";
import { E2eeError, RejectedError } from "../errors.js";
import { Emitter } from "../events.js";
import type { Subscription } from "../subscription.js";
import type { Message, WrappedKey } from "../types.js";
import { newKeyId, open, parseEnvelope, randomBytes, seal, wrapKey, type Envelope } from "./crypto.js";
import type { Keyring, RoomKeyEntry } from "./keyring.js";
import { Owner } from "./owner.js";

/** The event of the directory's notices that a room key version exists. */
export const ROOM_KEY_EVENT = "waas:room_key";
/** Recipients per `room_key_put`: under the service's default limit (100) and frame size. */
const PUT_CHUNK = 50;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A delivered message with its data decrypted, or why it could not be. */
export type Decrypted<T = unknown> =
  | { message: Message; data: T; error?: undefined }
  | { message: Message; data?: undefined; error: E2eeError };

export interface E2eeEvents {
  /** A fetch from the directory added `added` room key versions for `channel`. */
  keys: { channel: string; added: number };
}

export class E2ee extends Emitter<E2eeEvents> {
  private fetching = new Map<string, Promise<number>>();

  private constructor(
    readonly client: Client,
    readonly keyring: Keyring,
    /** The user this connection is (`ready.sub`). */
    readonly sub: string,
  ) {
    super();
  }

  /**
   * Publishes the device's public key to the key directory (`keys_publish`), again after every
   * reconnect, and returns the handle.
   */
  static async start(client: Client, keyring: Keyring): Promise<E2ee> {
    await client.keysPublish(keyring.device.publicKeyB64);
    client.on("connected", () => {
      client.keysPublish(keyring.device.publicKeyB64).catch(() => {
        // The directory keeps the key published before; the next connect tries again.
      });
    });
    return new E2ee(client, keyring, client.sub ?? "");
  }

  /** This device's id. */
  get deviceId(): string {
    return this.keyring.device.id;
  }

  /**
   * Asks the directory for the channel's room keys wrapped for this device and keeps the new
   * ones; resolves with how many were new. Concurrent calls for a channel share one request.
   */
  fetch(channel: string): Promise<number> {
    let p = this.fetching.get(channel);
    if (!p) {
      p = this.fetchNow(channel).finally(() => this.fetching.delete(channel));
      this.fetching.set(channel, p);
    }
    return p;
  }

  private async fetchNow(channel: string): Promise<number> {
    const keys = await this.client.roomKeyGet(channel);
    const entries: RoomKeyEntry[] = [];
    for (const k of keys) {
      if (k.device !== this.deviceId || this.keyring.has(channel, k.kid, k.v)) continue;
      try {
        entries.push({ kid: k.kid, v: k.v, key: await this.keyring.device.unwrapKey(k.key) });
      } catch {
        // One bad entry (an owner's mistake) must not hide the others.
      }
    }
    const added = await this.keyring.insert(channel, entries);
    if (added > 0) this.emit("keys", { channel, added });
    return added;
  }

  /** Encrypts `data` for `channel` and `event` with the newest room key held. */
  async encrypt(channel: string, event: string, data: unknown): Promise<Envelope> {
    const current = this.keyring.current(channel);
    if (!current) throw new E2eeError("unknown_key", `no room key for ${channel}`);
    const aes = this.keyring.aes(current.kid, current.v)!;
    const plaintext = encoder.encode(JSON.stringify(data === undefined ? null : data));
    return seal(await aes, current.kid, current.v, channel, event, plaintext);
  }

  /** Encrypts and publishes (asking the directory once when no key is held); the offset. */
  async publish(channel: string, event: string, data: unknown): Promise<number> {
    if (!this.keyring.current(channel)) await this.fetch(channel);
    return this.client.publish(channel, event, await this.encrypt(channel, event, data));
  }

  /** Decrypts `data` delivered on `channel` under `event` with the keys held, without asking. */
  async decryptLocal<T = unknown>(channel: string, event: string, data: unknown): Promise<T> {
    const e = parseEnvelope(data);
    const aes = this.keyring.aes(e.kid, e.v);
    if (!aes) throw new E2eeError("unknown_key", `no room key ${e.kid} v${e.v} (for ${channel})`);
    const plaintext = await open(await aes, e.iv, e.ct, channel, event);
    try {
      return JSON.parse(decoder.decode(plaintext)) as T;
    } catch (cause) {
      throw new E2eeError("decrypt_failed", "the plaintext is not JSON", cause);
    }
  }

  /** Decrypts; on an unknown key asks the directory once and tries again. */
  async decrypt<T = unknown>(channel: string, event: string, data: unknown): Promise<T> {
    try {
      return await this.decryptLocal<T>(channel, event, data);
    } catch (e) {
      if (!(e instanceof E2eeError) || e.code !== "unknown_key") throw e;
    }
    await this.fetch(channel);
    return this.decryptLocal<T>(channel, event, data);
  }

  /** Decrypts a delivered (or history) message. */
  open<T = unknown>(message: Message): Promise<T> {
    return this.decrypt<T>(message.channel, message.event, message.data);
  }

  /**
   * Subscribes to an encrypted channel, then fetches its room keys. The subscription yields
   * each message decrypted (or why it could not be) and handles `waas:room_key` notices itself.
   */
  async subscribe<T = unknown>(channel: string): Promise<EncryptedSubscription<T>> {
    const inner = await this.client.subscribe(channel);
    await this.fetch(channel);
    return new EncryptedSubscription<T>(inner, this);
  }

  /**
   * Wraps `key` for every published device of each of `subs` (and for this device) and stores
   * it in the directory; resolves with the number of devices. `not_shared` when refused.
   */
  async share(channel: string, key: RoomKeyEntry, subs: string[]): Promise<number> {
    const wrapped: WrappedKey[] = [];
    for (const sub of subs) {
      for (const d of await this.client.keysGet(sub)) {
        wrapped.push({ sub, device: d.device, key: await wrapKey(d.public_key, key.key) });
      }
    }
    if (!wrapped.some((w) => w.device === this.deviceId)) {
      wrapped.push({
        sub: this.sub,
        device: this.deviceId,
        key: await wrapKey(this.keyring.device.publicKeyB64, key.key),
      });
    }
    for (let i = 0; i < wrapped.length; i += PUT_CHUNK) {
      try {
        await this.client.roomKeyPut(channel, key.kid, key.v, wrapped.slice(i, i + PUT_CHUNK));
      } catch (e) {
        if (e instanceof RejectedError && e.code === "forbidden") {
          throw new E2eeError("not_shared", `not allowed to share keys for ${channel}`, e);
        }
        throw e;
      }
    }
    return wrapped.length;
  }

  /**
   * Owns `channel`, whose members are those of the presence channel `presence` (often the same
   * channel): takes the room keys it already has from the directory, makes version 1 when there
   * is none, subscribes to `presence` and shares or rotates from then on (`owner.ts`). Needs an
   * API key or `caps.share` for `channel` (else `not_shared`).
   */
  async own(channel: string, presence: string = channel): Promise<Owner> {
    const owner = new Owner(this, channel, presence);
    await owner.start();
    return owner;
  }

  /**
   * Makes a new room key for `channel` — version 1 with a new key id when none is held, else
   * the next version — shares it with `members` (and this device) and keeps it. Publishes after
   * this resolves use it.
   */
  async rotate(channel: string, members: string[]): Promise<RoomKeyEntry> {
    const current = this.keyring.current(channel);
    const next: RoomKeyEntry = current
      ? { kid: current.kid, v: current.v + 1, key: randomBytes(32) }
      : { kid: newKeyId(), v: 1, key: randomBytes(32) };
    await this.share(channel, next, members);
    await this.keyring.insert(channel, [next]);
    return next;
  }
}

/** The messages of an encrypted channel, decrypted; see `E2ee.subscribe`. */
export class EncryptedSubscription<T = unknown> implements AsyncIterableIterator<Decrypted<T>> {
  constructor(
    readonly inner: Subscription,
    private readonly e2ee: E2ee,
  ) {
    // A notice naming this user is acted on when it arrives, not when the application reads
    // it: publishes made meanwhile must already use the new version.
    inner.tap((message) => {
      if (message.event !== ROOM_KEY_EVENT) return;
      const recipients = (message.data as { recipients?: unknown } | null)?.recipients;
      if (Array.isArray(recipients) && recipients.includes(e2ee.sub)) {
        e2ee.fetch(message.channel).catch(() => {});
      }
    });
  }

  get channel(): string {
    return this.inner.channel;
  }

  /** The next message decrypted, or why it could not be; `waas:room_key` notices are consumed. */
  async next(): Promise<IteratorResult<Decrypted<T>>> {
    for (;;) {
      const r = await this.inner.next();
      if (r.done) return { value: undefined, done: true };
      const message = r.value;
      if (message.event === ROOM_KEY_EVENT) continue; // acted on as it arrived
      try {
        return { value: { message, data: await this.e2ee.open<T>(message) }, done: false };
      } catch (e) {
        if (!(e instanceof E2eeError)) throw e;
        return { value: { message, error: e }, done: false };
      }
    }
  }

  async return(): Promise<IteratorResult<Decrypted<T>>> {
    await this.inner.unsubscribe();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Decrypted<T>> {
    return this;
  }

  unsubscribe(): Promise<void> {
    return this.inner.unsubscribe();
  }
}
