// Publish → deliver latency through a real `waas dev`, with and without E2EE, from the
// TypeScript SDK: one publisher and one subscriber (Node, over loopback), one message at a time
// (the next is published once the previous one arrived), plain and encrypted messages
// alternating so that both see the same machine. The encrypted time includes encrypting before
// the publish and decrypting on delivery.
//
//   node bench/latency.mjs [--n 3000] [--json]    # WAAS_BIN picks the binary (a release build is fairer)

import { Client, E2ee, Keyring } from "../dist/index.js";
import { API_KEY, APP, startWaas, token } from "../test/support.mjs";

const args = process.argv.slice(2);
const n = Number(args[args.indexOf("--n") + 1]) || 2000;
const json = args.includes("--json");

const server = await startWaas({
  args: ["--publish-rate", "1000000", "--publish-burst", "1000000", "--max-frame-bytes", "262144"],
});
const channel = "presence.latency";
const caps = { subscribe: [channel], publish: [channel] };

function payload(size) {
  return { t: "x".repeat(size - JSON.stringify({ t: "" }).length) };
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** `n` rounds of one plain and one encrypted message of `size` bytes; p50/p99 of each. */
async function run(size, publisher, plain, room) {
  const data = payload(size);
  const times = { plain: [], e2ee: [] };
  const next = async (sub) => {
    const r = await sub.next();
    if (r.done) throw new Error("subscription ended");
    return r.value;
  };
  for (let i = 0; i < n + 100; i++) {
    let t0 = performance.now();
    await publisher.client.publish(channel, "m", data);
    await next(plain);
    let t1 = performance.now();
    if (i >= 100) times.plain.push((t1 - t0) * 1000); // the first 100 warm up
    await next(room); // the same plain message, refused as not an envelope
    t0 = performance.now();
    await publisher.e2ee.publish(channel, "m", data);
    const got = await next(room);
    t1 = performance.now();
    if (got.error) throw got.error;
    if (i >= 100) times.e2ee.push((t1 - t0) * 1000);
    await next(plain); // the envelope, on the plain subscription
  }
  const stats = (xs) => {
    xs.sort((a, b) => a - b);
    return { p50_us: percentile(xs, 50), p99_us: percentile(xs, 99) };
  };
  return { size, plain: stats(times.plain), e2ee: stats(times.e2ee) };
}

try {
  const ownerClient = await Client.connect({ url: server.url, app: APP, token: API_KEY });
  const owner = await (await E2ee.start(ownerClient, await Keyring.inMemory())).own(channel);
  const party = async (sub) => {
    const client = await Client.connect({ url: server.url, app: APP, token: await token(server, sub, caps) });
    return { client, e2ee: await E2ee.start(client, await Keyring.inMemory()) };
  };
  const publisher = await party("pub");
  const subscriber = await party("sub");
  const shared = Promise.all(["pub", "sub"].map((m) => owner.once("shared", (e) => e.members.includes(m))));
  const room = await subscriber.e2ee.subscribe(channel);
  const plain = await subscriber.client.subscribe(channel);
  await publisher.client.subscribe(channel); // a member too
  await shared;
  await publisher.e2ee.fetch(channel);
  await subscriber.e2ee.fetch(channel);

  const results = [];
  for (const size of [100, 1024, 65536]) results.push(await run(size, publisher, plain, room));
  if (json) console.log(JSON.stringify({ node: process.version, n, results }, null, 2));
  else {
    console.log(`Node ${process.version}, ${n} plain and ${n} encrypted messages per row, alternating, one at a time`);
    console.log("| data (JSON) | plain p50 / p99 | E2EE p50 / p99 | E2EE - plain, p50 |");
    console.log("|---|---|---|---|");
    const f = (r) => `${r.p50_us.toFixed(0)} / ${r.p99_us.toFixed(0)} µs`;
    for (const r of results) {
      console.log(`| ${r.size} B | ${f(r.plain)} | ${f(r.e2ee)} | +${(r.e2ee.p50_us - r.plain.p50_us).toFixed(0)} µs |`);
    }
  }
  await owner.stop();
  for (const c of [ownerClient, publisher.client, subscriber.client]) await c.close();
} finally {
  await server.stop();
}
