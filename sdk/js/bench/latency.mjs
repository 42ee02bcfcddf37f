// Publish → deliver latency through a real `waas dev`, with and without E2EE, from the
// TypeScript SDK: one publisher and one subscriber (Node, over loopback); each message is
// published once the previous one arrived, so the figure is one message's full path: encrypt,
// publish, gateway, deliver, decrypt.
//
//   node bench/latency.mjs [--n 2000] [--json]    # WAAS_BIN picks the binary (a release build is fairer)

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

async function run(size, encrypted, publisher, subscriber, room) {
  const data = payload(size);
  const times = [];
  for (let i = 0; i < n + 100; i++) {
    const t0 = performance.now();
    if (encrypted) await publisher.e2ee.publish(channel, "m", data);
    else await publisher.client.publish(channel, "m", data);
    const r = await room.next();
    if (r.done) throw new Error("subscription ended");
    if (encrypted && r.value.error) throw r.value.error;
    const t1 = performance.now();
    if (i >= 100) times.push((t1 - t0) * 1000); // the first 100 warm up
  }
  times.sort((a, b) => a - b);
  return { size, encrypted, p50_us: percentile(times, 50), p99_us: percentile(times, 99) };
}

try {
  const ownerClient = await Client.connect({ url: server.url, app: APP, token: API_KEY });
  const owner = await (await E2ee.start(ownerClient, await Keyring.inMemory())).own(channel);
  const party = async (sub) => {
    // Room for every message of a run: the encrypted subscription holds the plain runs' messages.
    const client = await Client.connect({
      url: server.url,
      app: APP,
      token: await token(server, sub, caps),
      subscriptionCapacity: 10 * (n + 100),
    });
    return { client, e2ee: await E2ee.start(client, await Keyring.inMemory()) };
  };
  const publisher = await party("pub");
  const subscriber = await party("sub");
  const shared = Promise.all(["pub", "sub"].map((m) => owner.once("shared", (e) => e.members.includes(m))));
  const room = await subscriber.e2ee.subscribe(channel);
  const plainRoom = await subscriber.client.subscribe(channel);
  await publisher.client.subscribe(channel); // a member too
  await shared;
  await publisher.e2ee.fetch(channel);
  await subscriber.e2ee.fetch(channel);
  await plainRoom.unsubscribe();

  const results = [];
  for (const size of [100, 1024, 65536]) {
    // Plain messages through a plain subscription of the same channel (the encrypted one skips them).
    const plain = await subscriber.client.subscribe(channel);
    results.push(await run(size, false, publisher, subscriber, { next: () => plain.next() }));
    await plain.unsubscribe();
    // Drain what the encrypted subscription got meanwhile (plain data: malformed_envelope).
    for (let i = 0; i < n + 100; i++) await room.next();
    results.push(await run(size, true, publisher, subscriber, room));
  }
  if (json) console.log(JSON.stringify({ node: process.version, n, results }, null, 2));
  else {
    console.log(`Node ${process.version}, ${n} messages per row, one at a time`);
    console.log("| data (JSON) | plain p50 / p99 | E2EE p50 / p99 |");
    console.log("|---|---|---|");
    for (const size of [100, 1024, 65536]) {
      const [p, e] = [false, true].map((enc) => results.find((r) => r.size === size && r.encrypted === enc));
      const f = (r) => `${r.p50_us.toFixed(0)} / ${r.p99_us.toFixed(0)} µs`;
      console.log(`| ${size} B | ${f(p)} | ${f(e)} |`);
    }
  }
  await owner.stop();
  for (const c of [ownerClient, publisher.client, subscriber.client]) await c.close();
} finally {
  await server.stop();
}
