// E2EE without a server: envelopes, their failures, wrapping, and the keyring on disk.

import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { DeviceKeyPair, E2eeError, fromBase64, Keyring, newKeyId, toBase64, wrapKey } from "../dist/index.js";
import { aesKey, open, parseEnvelope, seal } from "../dist/e2ee/crypto.js";

const enc = new TextEncoder();
const dec = new TextDecoder();
let device, dir;

before(async () => {
  device = await DeviceKeyPair.generate();
  dir = await mkdtemp(path.join(os.tmpdir(), "waas-keyring-"));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const isE2ee = (code) => (e) => {
  assert.ok(e instanceof E2eeError, String(e));
  assert.equal(e.code, code);
  assert.equal(e.kind, "e2ee");
  return true;
};

test("an envelope opens with the same key, channel and event, and with nothing else", async () => {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const key = await aesKey(raw);
  const kid = newKeyId();
  assert.match(kid, /^[0-9a-f]{32}$/);
  const env = await seal(key, kid, 3, "presence.room-1", "say", enc.encode('{"text":"hi"}'));
  assert.deepEqual(Object.keys(env).sort(), ["ct", "e2ee", "iv", "kid", "v"]);
  assert.equal(env.e2ee, 1);
  assert.equal(fromBase64(env.iv).length, 12);
  assert.equal(fromBase64(env.ct).length, '{"text":"hi"}'.length + 16);
  assert.ok(!JSON.stringify(env).includes("hi\""), "no plaintext in the envelope");

  const e = parseEnvelope(JSON.parse(JSON.stringify(env)));
  assert.equal(dec.decode(await open(key, e.iv, e.ct, "presence.room-1", "say")), '{"text":"hi"}');

  // Moved to another channel or event: the associated data differs.
  await assert.rejects(open(key, e.iv, e.ct, "presence.room-2", "say"), isE2ee("decrypt_failed"));
  await assert.rejects(open(key, e.iv, e.ct, "presence.room-1", "shout"), isE2ee("decrypt_failed"));
  // Tampered ciphertext, tag or nonce.
  for (const i of [0, e.ct.length - 1]) {
    const ct = e.ct.slice();
    ct[i] ^= 1;
    await assert.rejects(open(key, e.iv, ct, "presence.room-1", "say"), isE2ee("decrypt_failed"));
  }
  const iv = e.iv.slice();
  iv[0] ^= 1;
  await assert.rejects(open(key, iv, e.ct, "presence.room-1", "say"), isE2ee("decrypt_failed"));
  // Another key.
  const other = await aesKey(crypto.getRandomValues(new Uint8Array(32)));
  await assert.rejects(open(other, e.iv, e.ct, "presence.room-1", "say"), isE2ee("decrypt_failed"));
});

test("things that are not envelopes are malformed_envelope", () => {
  const good = { e2ee: 1, kid: newKeyId(), v: 1, iv: toBase64(new Uint8Array(12)), ct: toBase64(new Uint8Array(16)) };
  assert.doesNotThrow(() => parseEnvelope(good));
  for (const bad of [
    null,
    "text",
    [1],
    { ...good, e2ee: 2 },
    { ...good, kid: 1 },
    { ...good, v: -1 },
    { ...good, v: 1.5 },
    { ...good, iv: toBase64(new Uint8Array(11)) },
    { ...good, iv: "not base64!" },
    { ...good, ct: toBase64(new Uint8Array(15)) },
    { ...good, ct: undefined },
  ]) {
    assert.throws(() => parseEnvelope(bad), isE2ee("malformed_envelope"), JSON.stringify(bad));
  }
});

test("room keys wrapped for a device open with that device only", async () => {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const wrapped = await wrapKey(device.publicKeyB64, raw);
  assert.equal(fromBase64(wrapped).length, 384, "RSA-3072");
  assert.deepEqual(await device.unwrapKey(wrapped), raw);
  assert.match(device.id, /^[0-9a-f]{32}$/);
  const stranger = await DeviceKeyPair.generate();
  await assert.rejects(stranger.unwrapKey(wrapped), isE2ee("crypto"));
});

test("the file keyring keeps the device key and every room key version across a reopen", async () => {
  const a = await Keyring.open(dir, device);
  assert.equal(a.device.id, device.id);
  const kid = newKeyId();
  const keys = [1, 2, 3].map((v) => ({ kid, v, key: crypto.getRandomValues(new Uint8Array(32)) }));
  assert.equal(await a.insert("room.a", keys), 3);
  assert.equal(await a.insert("room.a", keys.slice(0, 1)), 0, "held already");
  assert.equal(a.current("room.a").v, 3);

  const b = await Keyring.open(dir);
  assert.equal(b.device.id, device.id, "same device after a reopen");
  assert.equal(b.device.publicKeyB64, device.publicKeyB64);
  assert.deepEqual(
    b.versions("room.a").map((k) => [k.v, toBase64(k.key)]),
    keys.map((k) => [k.v, toBase64(k.key)]),
  );
  // The reopened device still opens keys wrapped for it.
  const raw = crypto.getRandomValues(new Uint8Array(32));
  assert.deepEqual(await b.device.unwrapKey(await wrapKey(device.publicKeyB64, raw)), raw);

  // The Rust SDK's layout: device.pk8 (PKCS#8 DER) and room_keys.json, private to the owner.
  const pk8 = await readFile(path.join(dir, "device.pk8"));
  assert.equal(pk8[0], 0x30, "DER sequence");
  assert.equal((await stat(path.join(dir, "device.pk8"))).mode & 0o077, 0);
  const file = JSON.parse(await readFile(path.join(dir, "room_keys.json"), "utf8"));
  assert.deepEqual(
    file.channels["room.a"].map((k) => k.v),
    [1, 2, 3],
  );
});
