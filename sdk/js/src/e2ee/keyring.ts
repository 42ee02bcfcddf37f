/**
 * One device's keys: its RSA key pair and every room key version it ever received, persisted by
 * a `KeyringStorage` so a restart keeps them (history and recordings made under old versions
 * still decrypt). Versions are never deleted.
 */

import { E2eeError } from "../errors.js";
import { aesKey, DeviceKeyPair, fromBase64, toBase64 } from "./crypto.js";
import { FileStorage, IndexedDbStorage, MemoryStorage, type KeyringStorage, type RoomKeysFile } from "./storage.js";

/** A room key version the keyring holds. */
export interface RoomKeyEntry {
  kid: string;
  v: number;
  /** The raw 32 bytes. */
  key: Uint8Array;
}

interface Held extends RoomKeyEntry {
  aes: Promise<CryptoKey>;
}

export class Keyring {
  private rooms = new Map<string, Map<string, Held>>();
  /** Saves run one after the other, each writing the state as it is then. */
  private saving: Promise<void> = Promise.resolve();

  private constructor(
    readonly device: DeviceKeyPair,
    private readonly storage: KeyringStorage,
  ) {}

  /**
   * Opens the keyring `storage` holds, making (and saving) a device key when it holds none.
   * `device` is used instead of a new key (tests skip RSA generation); a stored one wins.
   */
  static async openStorage(storage: KeyringStorage, device?: DeviceKeyPair): Promise<Keyring> {
    let d = await storage.loadDevice();
    if (!d) {
      d = device ?? (await DeviceKeyPair.generate(storage.extractable));
      await storage.saveDevice(d);
      // Two tabs (or processes) opening a new keyring at once both make a key; the last one
      // stored wins, and reading it back makes both use it.
      d = (await storage.loadDevice()) ?? d;
    }
    const keyring = new Keyring(d, storage);
    keyring.load(await storage.loadRooms());
    return keyring;
  }

  /** Node: the keyring in directory `dir` (the Rust SDK's layout: `device.pk8`, `room_keys.json`). */
  static open(dir: string, device?: DeviceKeyPair): Promise<Keyring> {
    return Keyring.openStorage(new FileStorage(dir), device);
  }

  /** Browsers: the keyring in IndexedDB database `name`; the private key is not extractable. */
  static openIndexedDb(name = "waas-e2ee"): Promise<Keyring> {
    return Keyring.openStorage(new IndexedDbStorage(name));
  }

  /** A keyring that persists nothing. */
  static inMemory(device?: DeviceKeyPair): Promise<Keyring> {
    return Keyring.openStorage(new MemoryStorage(), device);
  }

  private load(file: RoomKeysFile): void {
    for (const [channel, keys] of Object.entries(file.channels)) {
      for (const k of keys) {
        const key = fromBase64(k.key);
        if (!key || key.length !== 32) throw new E2eeError("storage", `a stored key of ${channel} is not 32 bytes`);
        this.hold(channel, { kid: k.kid, v: k.v, key });
      }
    }
  }

  private hold(channel: string, e: RoomKeyEntry): boolean {
    let versions = this.rooms.get(channel);
    if (!versions) this.rooms.set(channel, (versions = new Map()));
    const id = `${e.kid}/${e.v}`;
    if (versions.has(id)) return false;
    const aes = aesKey(e.key);
    aes.catch(() => {});
    versions.set(id, { ...e, aes });
    return true;
  }

  /**
   * The key `(kid, v)`, if held, whatever channel it came for: key ids are random, so an
   * envelope moved to another channel finds its key and then fails on the associated data
   * (`decrypt_failed`) rather than looking unknown.
   */
  get(kid: string, v: number): RoomKeyEntry | undefined {
    return this.find(kid, v);
  }

  /** Whether `(kid, v)` is held for `channel`. */
  has(channel: string, kid: string, v: number): boolean {
    return this.rooms.get(channel)?.has(`${kid}/${v}`) ?? false;
  }

  /** @internal The AES key `(kid, v)`, if held. */
  aes(kid: string, v: number): Promise<CryptoKey> | undefined {
    return this.find(kid, v)?.aes;
  }

  private find(kid: string, v: number): Held | undefined {
    const id = `${kid}/${v}`;
    for (const versions of this.rooms.values()) {
      const h = versions.get(id);
      if (h) return h;
    }
    return undefined;
  }

  /** The newest version held for `channel` (highest `v`). */
  current(channel: string): RoomKeyEntry | undefined {
    let best: Held | undefined;
    for (const h of this.rooms.get(channel)?.values() ?? []) if (!best || h.v > best.v) best = h;
    return best;
  }

  /** Every version held for `channel`, oldest first. */
  versions(channel: string): RoomKeyEntry[] {
    return [...(this.rooms.get(channel)?.values() ?? [])].sort((a, b) => a.v - b.v);
  }

  /** Keeps `entries` (those not held yet) and saves; resolves with how many were new. */
  async insert(channel: string, entries: RoomKeyEntry[]): Promise<number> {
    let added = 0;
    for (const e of entries) if (this.hold(channel, e)) added++;
    if (added > 0) await this.save();
    return added;
  }

  private save(): Promise<void> {
    const next = this.saving.then(() => {
      const file: RoomKeysFile = { channels: {} };
      for (const [channel, versions] of this.rooms) {
        file.channels[channel] = [...versions.values()]
          .sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : a.v - b.v))
          .map((h) => ({ kid: h.kid, v: h.v, key: toBase64(h.key) }));
      }
      return this.storage.saveRooms(file);
    });
    this.saving = next.catch(() => {});
    return next;
  }
}
