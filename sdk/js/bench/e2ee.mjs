// E2EE overhead per message in the TypeScript SDK, the figures the Rust SDK's
// `loadtest --bin e2ee-bench crypto` gives: encrypt (JSON text, AES-256-GCM, base64 envelope)
// and decrypt (envelope checks, AES-256-GCM, JSON parse) through the same code as
// `E2ee.publish` / `E2ee.decryptLocal`, for JSON data of 100 B, 1 KiB and 64 KiB; and the
// RSA-OAEP costs of key sharing (device key generation, wrap, unwrap).
//
//   npm run bench                    # builds, then runs
//   node bench/e2ee.mjs --n 20000 --json
//
// `--n` messages per size (a tenth of it at 64 KiB), after a warm-up; one core, no network.

import { DeviceKeyPair, E2ee, Keyring, wrapKey } from "../dist/index.js";

const args = process.argv.slice(2);
const n = Number(args[args.indexOf("--n") + 1]) || 20000;
const json = args.includes("--json");

// E2ee without a server: the client is only asked to publish the device key.
const stub = { sub: "bench", keysPublish: async () => "", on: () => () => {} };
const keyring = await Keyring.inMemory();
const e2ee = await E2ee.start(stub, keyring);
const channel = "bench.room";
await keyring.insert(channel, [{ kid: "0".repeat(32), v: 1, key: crypto.getRandomValues(new Uint8Array(32)) }]);

/** A JSON value whose text is `size` bytes. */
function data(size) {
  return { text: "x".repeat(size - JSON.stringify({ text: "" }).length) };
}

const pct = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

async function measure(size) {
  const value = data(size);
  const count = size > 10_000 ? Math.ceil(n / 10) : n;
  for (let i = 0; i < Math.min(1000, count); i++) {
    await e2ee.decryptLocal(channel, "say", await e2ee.encrypt(channel, "say", value));
  }
  const enc = [];
  const dec = [];
  const both = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const envelope = await e2ee.encrypt(channel, "say", value);
    const t1 = performance.now();
    const back = await e2ee.decryptLocal(channel, "say", envelope);
    const t2 = performance.now();
    if (back.text.length !== value.text.length) throw new Error("the round trip changed the data");
    enc.push((t1 - t0) * 1000);
    dec.push((t2 - t1) * 1000);
    both.push((t2 - t0) * 1000);
  }
  const mean = both.reduce((a, b) => a + b, 0) / both.length;
  for (const a of [enc, dec, both]) a.sort((x, y) => x - y);
  return {
    size,
    messages: count,
    envelope_bytes: JSON.stringify(await e2ee.encrypt(channel, "say", value)).length,
    encrypt_p50_us: pct(enc, 0.5),
    decrypt_p50_us: pct(dec, 0.5),
    mean_us: mean,
    p99_us: pct(both, 0.99),
  };
}

async function rsa() {
  const t0 = performance.now();
  const device = await DeviceKeyPair.generate();
  const keygen = performance.now() - t0;
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const rounds = 50;
  let wrapped;
  const t1 = performance.now();
  for (let i = 0; i < rounds; i++) wrapped = await wrapKey(device.publicKeyB64, raw);
  const t2 = performance.now();
  for (let i = 0; i < rounds; i++) await device.unwrapKey(wrapped);
  const t3 = performance.now();
  return { keygen_ms: keygen, wrap_us: ((t2 - t1) * 1000) / rounds, unwrap_us: ((t3 - t2) * 1000) / rounds };
}

const results = [];
for (const size of [100, 1024, 65536]) results.push(await measure(size));
const keys = await rsa();
if (json) {
  console.log(JSON.stringify({ node: process.version, results, rsa: keys }, null, 2));
} else {
  const us = (x) => `${x.toFixed(1)} µs`;
  console.log(`Node ${process.version}, ${n} messages per size (${Math.ceil(n / 10)} at 64 KiB)`);
  console.log("| data (JSON) | envelope | encrypt p50 | decrypt p50 | encrypt+decrypt mean | p99 |");
  console.log("|---|---|---|---|---|---|");
  for (const r of results) {
    console.log(`| ${r.size} B | ${r.envelope_bytes} B | ${us(r.encrypt_p50_us)} | ${us(r.decrypt_p50_us)} | ${us(r.mean_us)} | ${us(r.p99_us)} |`);
  }
  console.log(
    `\nRSA-OAEP-3072: device key generation ${keys.keygen_ms.toFixed(0)} ms, wrap ${us(keys.wrap_us)}, unwrap ${us(keys.unwrap_us)}`,
  );
}
