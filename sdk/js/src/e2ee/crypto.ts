/**
 * The cryptography of `docs/e2ee.md`, all of it WebCrypto (browsers, Node 20's
 * `globalThis.crypto`): RSA-OAEP-3072/SHA-256 device keys that wrap 32-byte AES-256-GCM room
 * keys, and the envelope: `{"e2ee":1,"kid","v","iv","ct"}` with the channel and event bound as
 * associated data. Nothing here is hand-rolled beyond base64 and hex text encodings.
 */

import { E2eeError } from "../errors.js";

const subtle = (): SubtleCrypto => {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new E2eeError("crypto", "WebCrypto (crypto.subtle) is not available: a secure context or Node 20+ is needed");
  return s;
};

const RSA: RsaHashedKeyGenParams = {
  name: "RSA-OAEP",
  modulusLength: 3072,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
};
const RSA_IMPORT: RsaHashedImportParams = { name: "RSA-OAEP", hash: "SHA-256" };
const IV_BYTES = 12;
const TAG_BYTES = 16;
const encoder = new TextEncoder();

/** Node's `Buffer`, when there is one: its base64 is native and much faster than `btoa`. */
type NodeBuffer = { from(data: ArrayBufferLike | string, offsetOrEncoding?: number | string, length?: number): Uint8Array & { toString(encoding: string): string } };
const NodeBuffer = (globalThis as { Buffer?: NodeBuffer }).Buffer;
/** Native base64 on `Uint8Array` (recent browsers). */
type NativeB64 = { toBase64?: () => string };
const NativeFrom = (Uint8Array as unknown as { fromBase64?: (s: string) => Uint8Array }).fromBase64;

/** Standard base64 with padding. */
export function toBase64(bytes: Uint8Array): string {
  const native = (bytes as Uint8Array & NativeB64).toBase64;
  if (typeof native === "function") return native.call(bytes);
  if (NodeBuffer) return NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  const parts: string[] = [];
  for (let i = 0; i < bytes.length; i += 0x2000) {
    parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 0x2000) as unknown as number[]));
  }
  return btoa(parts.join(""));
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict standard base64 (padding required); `undefined` when it is not. */
export function fromBase64(text: string): Uint8Array | undefined {
  if (text.length % 4 !== 0) return undefined;
  if (NodeBuffer && !NativeFrom) {
    // Node's decoder skips characters it does not know, which changes the length, and takes
    // base64url's two, which are refused here: as strict as the pattern, without a regex pass.
    if (text.includes("-") || text.includes("_")) return undefined;
    const pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
    const b = NodeBuffer.from(text, "base64");
    if (b.byteLength !== (text.length / 4) * 3 - pad) return undefined;
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }
  if (!B64.test(text)) return undefined;
  try {
    if (NativeFrom) return NativeFrom(text);
    const s = atob(text);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  } catch {
    return undefined;
  }
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function randomBytes(n: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

/** A new key id: 16 random bytes, 32 lowercase hex digits. */
export function newKeyId(): string {
  return toHex(randomBytes(16));
}

/** The associated data: `"waas-e2ee/1\n" + channel + "\n" + event`. */
export function aad(channel: string, event: string): Uint8Array {
  return encoder.encode(`waas-e2ee/1\n${channel}\n${event}`);
}

/** Device id: lowercase hex of the first 16 bytes of SHA-256 over the SPKI DER. */
export async function deviceIdOf(spki: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await subtle().digest("SHA-256", spki as BufferSource));
  return toHex(digest.subarray(0, 16));
}

/** One device's RSA-OAEP key pair. */
export class DeviceKeyPair {
  private constructor(
    readonly privateKey: CryptoKey,
    readonly publicKey: CryptoKey,
    /** SubjectPublicKeyInfo DER. */
    readonly spki: Uint8Array,
    /** 32 lowercase hex digits (`docs/e2ee.md#device-key`). */
    readonly id: string,
  ) {}

  /** The public key as the directory takes it: base64 of the SPKI DER. */
  get publicKeyB64(): string {
    return toBase64(this.spki);
  }

  static async fromKeys(privateKey: CryptoKey, publicKey: CryptoKey): Promise<DeviceKeyPair> {
    const spki = new Uint8Array(await subtle().exportKey("spki", publicKey));
    return new DeviceKeyPair(privateKey, publicKey, spki, await deviceIdOf(spki));
  }

  /**
   * A new 3072-bit key pair. `extractable: false` keeps the private key inside the browser's
   * crypto (IndexedDB stores it as is); Node's file keyring needs it extractable to write it.
   */
  static async generate(extractable = true): Promise<DeviceKeyPair> {
    try {
      const pair = (await subtle().generateKey(RSA, extractable, ["encrypt", "decrypt"])) as CryptoKeyPair;
      return await DeviceKeyPair.fromKeys(pair.privateKey, pair.publicKey);
    } catch (e) {
      throw new E2eeError("crypto", `cannot generate a device key: ${String(e)}`, e);
    }
  }

  /** From a PKCS#8 DER private key (the Rust SDK's and Node keyring's `device.pk8`). */
  static async fromPkcs8(der: Uint8Array): Promise<DeviceKeyPair> {
    try {
      const privateKey = await subtle().importKey("pkcs8", der as BufferSource, RSA_IMPORT, true, ["decrypt"]);
      // The public half, from the private key's JWK (n, e).
      const jwk = await subtle().exportKey("jwk", privateKey);
      const publicKey = await subtle().importKey(
        "jwk",
        { kty: "RSA", n: jwk.n!, e: jwk.e!, alg: "RSA-OAEP-256", ext: true },
        RSA_IMPORT,
        true,
        ["encrypt"],
      );
      return await DeviceKeyPair.fromKeys(privateKey, publicKey);
    } catch (e) {
      throw new E2eeError("storage", `the device key is not an RSA PKCS#8 key: ${String(e)}`, e);
    }
  }

  async toPkcs8(): Promise<Uint8Array> {
    return new Uint8Array(await subtle().exportKey("pkcs8", this.privateKey));
  }

  /** Opens a wrapped room key: base64 of RSA-OAEP over the 32 raw bytes. */
  async unwrapKey(wrapped: string): Promise<Uint8Array> {
    const bytes = fromBase64(wrapped);
    if (!bytes) throw new E2eeError("crypto", "a wrapped key is not base64");
    let key: Uint8Array;
    try {
      key = new Uint8Array(await subtle().decrypt({ name: "RSA-OAEP" }, this.privateKey, bytes as BufferSource));
    } catch (e) {
      throw new E2eeError("crypto", "a wrapped key does not open with this device's key", e);
    }
    if (key.length !== 32) throw new E2eeError("crypto", "a wrapped key is not 32 bytes");
    return key;
  }
}

/** Wraps a 32-byte room key for a device's public key (base64 SPKI); base64 result. */
export async function wrapKey(publicKeyB64: string, key: Uint8Array): Promise<string> {
  const spki = fromBase64(publicKeyB64);
  if (!spki) throw new E2eeError("crypto", "a device public key is not base64");
  try {
    const pub = await subtle().importKey("spki", spki as BufferSource, RSA_IMPORT, false, ["encrypt"]);
    return toBase64(new Uint8Array(await subtle().encrypt({ name: "RSA-OAEP" }, pub, key as BufferSource)));
  } catch (e) {
    throw new E2eeError("crypto", `cannot wrap for a device key: ${String(e)}`, e);
  }
}

/** The AES-GCM key for raw bytes (callers cache it). */
export async function aesKey(raw: Uint8Array): Promise<CryptoKey> {
  return subtle().importKey("raw", raw as BufferSource, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

/** An encrypted message's `data` (`docs/e2ee.md#the-envelope`). */
export interface Envelope {
  e2ee: 1;
  kid: string;
  v: number;
  iv: string;
  ct: string;
}

/** Encrypts `plaintext` for `channel`/`event` under key `(kid, v)` with a random nonce. */
export async function seal(
  key: CryptoKey,
  kid: string,
  v: number,
  channel: string,
  event: string,
  plaintext: Uint8Array,
): Promise<Envelope> {
  const iv = randomBytes(IV_BYTES);
  const ct = await subtle().encrypt(
    { name: "AES-GCM", iv: iv as BufferSource, additionalData: aad(channel, event) as BufferSource },
    key,
    plaintext as BufferSource,
  );
  return { e2ee: 1, kid, v, iv: toBase64(iv), ct: toBase64(new Uint8Array(ct)) };
}

/** Checks that `data` is an envelope; `malformed_envelope` otherwise. */
export function parseEnvelope(data: unknown): { kid: string; v: number; iv: Uint8Array; ct: Uint8Array } {
  const bad = (why: string) => new E2eeError("malformed_envelope", why);
  if (data === null || typeof data !== "object" || Array.isArray(data)) throw bad("not an object");
  const e = data as Record<string, unknown>;
  if (e.e2ee !== 1) throw bad("e2ee is not 1");
  if (typeof e.kid !== "string") throw bad("kid is not a string");
  if (typeof e.v !== "number" || !Number.isInteger(e.v) || e.v < 0 || e.v > 0xffffffff) throw bad("v is not a u32");
  if (typeof e.iv !== "string" || typeof e.ct !== "string") throw bad("iv or ct is not a string");
  const iv = fromBase64(e.iv);
  if (!iv || iv.length !== IV_BYTES) throw bad("iv is not 12 bytes of base64");
  const ct = fromBase64(e.ct);
  if (!ct || ct.length < TAG_BYTES) throw bad("ct is not base64 of at least the 16-byte tag");
  return { kid: e.kid, v: e.v, iv, ct };
}

/** Opens a ciphertext; `decrypt_failed` when authentication fails. */
export async function open(
  key: CryptoKey,
  iv: Uint8Array,
  ct: Uint8Array,
  channel: string,
  event: string,
): Promise<Uint8Array> {
  try {
    return new Uint8Array(
      await subtle().decrypt(
        { name: "AES-GCM", iv: iv as BufferSource, additionalData: aad(channel, event) as BufferSource },
        key,
        ct as BufferSource,
      ),
    );
  } catch (e) {
    throw new E2eeError("decrypt_failed", "the envelope does not decrypt (tampered, moved, or the wrong key)", e);
  }
}
