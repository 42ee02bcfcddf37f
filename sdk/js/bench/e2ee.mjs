// E2EE overhead per message in the TypeScript SDK: encrypt (JSON text, AES-256-GCM, base64
// envelope) and decrypt (envelope checks, AES-256-GCM, JSON parse) through the same code as
// `E2ee.publish` / `E2ee.decryptLocal`, for JSON payloads of 100 B, 1 KiB and 64 KiB.
//
//   npm run bench            # after `npm run build` (the script builds)
//   node bench/e2ee.mjs --ms 2000 --json
//
// Each size runs `--ms` milliseconds (default 1000) after a warm-up, on one core, no network.

import { E2ee, Keyring } from "../dist/index.js";

const args = process.argv.slice(2);
const ms = Number(args[args.indexOf("--ms") + 1]) || 1000;
const json = args.includes("--json");

// E2ee without a server: the client is only asked to publish the device key.
const stub = { sub: "bench", keysPublish: async () => "", on: () => () => {} };
const keyring = await Keyring.inMemory();
const e2ee = await E2ee.start(stub, keyring);
const channel = "presence.bench";
await keyring.insert(channel, [{ kid: "0".repeat(32), v: 1, key: crypto.getRandomValues(new Uint8Array(32)) }]);

/** A JSON value whose text is exactly `size` bytes. */
function payload(size) {
  const base = JSON.stringify({ t: "" });
  return { t: "x".repeat(size - base.length) };
}

async function measure(size) {
  const data = payload(size);
  const run = async (budget) => {
    let n = 0;
    let enc = 0;
    let dec = 0;
    const end = performance.now() + budget;
    while (performance.now() < end) {
      const t0 = performance.now();
      const envelope = await e2ee.encrypt(channel, "say", data);
      const t1 = performance.now();
      const back = await e2ee.decryptLocal(channel, "say", envelope);
      const t2 = performance.now();
      if (back.t.length !== data.t.length) throw new Error("round trip changed the data");
      enc += t1 - t0;
      dec += t2 - t1;
      n++;
    }
    return { n, enc, dec };
  };
  await run(Math.min(300, ms / 3));
  const { n, enc, dec } = await run(ms);
  const envelopeBytes = JSON.stringify(await e2ee.encrypt(channel, "say", data)).length;
  return {
    size,
    messages: n,
    encrypt_us: (enc * 1000) / n,
    decrypt_us: (dec * 1000) / n,
    total_us: ((enc + dec) * 1000) / n,
    envelope_bytes: envelopeBytes,
  };
}

const results = [];
for (const size of [100, 1024, 65536]) results.push(await measure(size));
if (json) {
  console.log(JSON.stringify({ node: process.version, results }, null, 2));
} else {
  console.log(`Node ${process.version}, ${ms} ms per size`);
  console.log("payload   encrypt µs   decrypt µs   encrypt+decrypt µs   envelope bytes");
  for (const r of results) {
    console.log(
      `${String(r.size).padStart(7)}   ${r.encrypt_us.toFixed(1).padStart(10)}   ${r.decrypt_us.toFixed(1).padStart(10)}   ${r.total_us.toFixed(1).padStart(18)}   ${String(r.envelope_bytes).padStart(14)}`,
    );
  }
}
