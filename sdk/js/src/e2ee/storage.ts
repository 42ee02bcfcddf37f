/**
 * Where a keyring keeps a device's keys so that a restart is the same device
 * (`docs/e2ee.md#device-key`):
 *
 * - `FileStorage` (Node): a directory with `device.pk8` (the private key, PKCS#8 DER) and
 *   `room_keys.json` (`{"channels": {channel: [{"kid","v","key"}]}}`, keys in base64), both mode
 *   0600 and written through a temporary file and a rename: the Rust SDK's layout, so either
 *   SDK can open the other's directory.
 * - `IndexedDbStorage` (browsers): the key pair as `CryptoKey`s, the private one
 *   non-extractable, and the same room key document.
 * - `MemoryStorage`: nothing persisted (tests, throwaway devices).
 *
 * Node modules are imported on first use through computed specifiers, so the browser build never
 * asks for them.
 */

import { E2eeError } from "../errors.js";
import { DeviceKeyPair } from "./crypto.js";

export interface StoredKey {
  kid: string;
  v: number;
  /** base64 of the raw 32 bytes. */
  key: string;
}

export interface RoomKeysFile {
  channels: Record<string, StoredKey[]>;
}

export interface KeyringStorage {
  /** Whether device keys made for this storage must be extractable (to be written out). */
  readonly extractable: boolean;
  loadDevice(): Promise<DeviceKeyPair | undefined>;
  saveDevice(device: DeviceKeyPair): Promise<void>;
  loadRooms(): Promise<RoomKeysFile>;
  saveRooms(rooms: RoomKeysFile): Promise<void>;
}

export class MemoryStorage implements KeyringStorage {
  readonly extractable = true;
  private device: DeviceKeyPair | undefined;
  private rooms: RoomKeysFile = { channels: {} };
  async loadDevice() {
    return this.device;
  }
  async saveDevice(device: DeviceKeyPair) {
    this.device = device;
  }
  async loadRooms() {
    return structuredClone(this.rooms);
  }
  async saveRooms(rooms: RoomKeysFile) {
    this.rooms = structuredClone(rooms);
  }
}

/** The parts of `node:fs/promises` and `node:path` used here (no Node types in a browser build). */
interface Fs {
  readFile(path: string): Promise<Uint8Array>;
  mkdir(path: string, options: { recursive: boolean; mode: number }): Promise<unknown>;
  open(
    path: string,
    flags: string,
    mode: number,
  ): Promise<{ writeFile(data: Uint8Array): Promise<void>; sync(): Promise<void>; close(): Promise<void> }>;
  rename(from: string, to: string): Promise<void>;
}
interface Path {
  join(...parts: string[]): string;
}

async function node(): Promise<{ fs: Fs; path: Path }> {
  const [fsName, pathName] = ["node:fs/promises", "node:path"];
  try {
    return { fs: (await import(fsName)) as Fs, path: (await import(pathName)) as Path };
  } catch (e) {
    throw new E2eeError("storage", "a file keyring needs Node.js (use IndexedDB in browsers)", e);
  }
}

const DEVICE_FILE = "device.pk8";
const ROOM_KEYS_FILE = "room_keys.json";

export class FileStorage implements KeyringStorage {
  readonly extractable = true;
  constructor(readonly dir: string) {}

  private async file(name: string) {
    const { fs, path } = await node();
    return { fs, file: path.join(this.dir, name) };
  }

  private async read(name: string): Promise<Uint8Array | undefined> {
    const { fs, file } = await this.file(name);
    try {
      return new Uint8Array(await fs.readFile(file));
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return undefined;
      throw new E2eeError("storage", `${file}: ${String(e)}`, e);
    }
  }

  /** Writes through a temporary file and a rename, readable by the owner only. */
  private async write(name: string, bytes: Uint8Array): Promise<void> {
    const { fs, file } = await this.file(name);
    const tmp = `${file}.tmp`;
    try {
      await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
      const handle = await fs.open(tmp, "w", 0o600);
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(tmp, file);
    } catch (e) {
      throw new E2eeError("storage", `${file}: ${String(e)}`, e);
    }
  }

  async loadDevice() {
    const der = await this.read(DEVICE_FILE);
    return der ? DeviceKeyPair.fromPkcs8(der) : undefined;
  }

  async saveDevice(device: DeviceKeyPair) {
    await this.write(DEVICE_FILE, await device.toPkcs8());
  }

  async loadRooms(): Promise<RoomKeysFile> {
    const bytes = await this.read(ROOM_KEYS_FILE);
    if (!bytes) return { channels: {} };
    try {
      const parsed = JSON.parse(new TextDecoder().decode(bytes)) as RoomKeysFile;
      return { channels: parsed.channels ?? {} };
    } catch (e) {
      throw new E2eeError("storage", `${ROOM_KEYS_FILE} in ${this.dir} is not JSON`, e);
    }
  }

  async saveRooms(rooms: RoomKeysFile) {
    await this.write(ROOM_KEYS_FILE, new TextEncoder().encode(JSON.stringify(rooms)));
  }
}

const STORE = "keyring";

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

export class IndexedDbStorage implements KeyringStorage {
  readonly extractable = false;
  private db: Promise<IDBDatabase> | undefined;
  constructor(readonly name: string = "waas-e2ee") {}

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      if (typeof indexedDB === "undefined") {
        reject(new E2eeError("storage", "IndexedDB is not available here (use a file keyring in Node)"));
        return;
      }
      const r = indexedDB.open(this.name, 1);
      r.onupgradeneeded = () => r.result.createObjectStore(STORE);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(new E2eeError("storage", `IndexedDB ${this.name}: ${String(r.error)}`));
    });
    return this.db;
  }

  private async get<T>(key: string): Promise<T | undefined> {
    const db = await this.open();
    return (await request(db.transaction(STORE, "readonly").objectStore(STORE).get(key))) as T | undefined;
  }

  private async put(key: string, value: unknown): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).put(value, key);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(new E2eeError("storage", `IndexedDB ${this.name}: ${String(tx.error)}`));
    });
  }

  async loadDevice() {
    const pair = await this.get<{ privateKey: CryptoKey; publicKey: CryptoKey }>("device");
    return pair ? DeviceKeyPair.fromKeys(pair.privateKey, pair.publicKey) : undefined;
  }

  async saveDevice(device: DeviceKeyPair) {
    await this.put("device", { privateKey: device.privateKey, publicKey: device.publicKey });
  }

  async loadRooms() {
    return (await this.get<RoomKeysFile>("rooms")) ?? { channels: {} };
  }

  async saveRooms(rooms: RoomKeysFile) {
    await this.put("rooms", rooms);
  }
}
