// The `nearest` option (`docs/regions.md`) against a real cluster (control-plane on PostgreSQL,
// two gateways over NATS with history in JetStream), each gateway reached through a proxy that
// delays its packets like a link to another region: the client picks the nearer one although it
// is listed second, fails over to the farther when the nearer goes away, and moves back once it
// returns, with every message of a steady stream delivered once, in order.

import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { test } from "node:test";
import { Backoff, Client, DiscoveryError, RejectedError, ServerClient } from "../dist/index.js";
import { parseRegions } from "../dist/discovery.js";
import { merge, nextStep, rank, stopWaitingAt } from "../dist/nearest.js";
import { startCluster } from "./cluster.mjs";
import { nextEvent, within } from "./support.mjs";

/**
 * A TCP proxy to `target` delaying each direction by `delayMs`; `cut()` drops and refuses.
 * `delivered()` counts the bytes written to clients (after the delay), `open()` the connections.
 */
async function startDelayProxy(target, delayMs) {
  const i = target.lastIndexOf(":");
  const [host, port] = [target.slice(0, i), Number(target.slice(i + 1))];
  const pairs = new Set();
  let down = false;
  let delivered = 0;
  const timers = new Set();
  const later = (f) => {
    if (delayMs === 0) return f();
    const t = setTimeout(() => {
      timers.delete(t);
      f();
    }, delayMs);
    timers.add(t);
  };
  const server = net.createServer((client) => {
    if (down) return client.destroy();
    const upstream = net.connect(port, host);
    const pair = { client, upstream };
    pairs.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on("data", (d) => later(() => upstream.destroyed || upstream.write(d)));
    upstream.on("data", (d) =>
      later(() => {
        if (client.destroyed) return;
        delivered += d.length;
        client.write(d);
      }),
    );
    const close = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `ws://127.0.0.1:${server.address().port}`,
    delivered: () => delivered,
    open: () => pairs.size,
    cut() {
      down = true;
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pairs.clear();
    },
    restore() {
      down = false;
    },
    close() {
      this.cut();
      for (const t of timers) clearTimeout(t);
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

test("nearest: picks the nearer gateway, fails over, moves back, nothing lost or doubled", async () => {
  const cluster = await startCluster(2);
  const proxies = [];
  // Closed in `finally` too: its re-probe timer would keep the test process alive after a failure.
  let client;
  try {
    const app = await cluster.createApp("tsnearest", { limits: { history_size: 20000 } });
    const [a, b] = cluster.gateways;
    const far = await startDelayProxy(a.addr, 40);
    const near = await startDelayProxy(b.addr, 0);
    proxies.push(far, near);
    client = await Client.connect({
      urls: [far.url, near.url],
      app: app.id,
      token: app.apiKey,
      nearest: true,
      probeSamples: 3,
      reprobeIntervalMs: 200,
      backoff: new Backoff({ initialMs: 20, maxMs: 200 }),
      subscriptionCapacity: 100000,
    });
    const unrecovered = [];
    client.on("unrecovered", (e) => unrecovered.push(e.channel));
    assert.ok(client.url.startsWith(far.url) === false && client.url.startsWith(near.url), `connected to ${client.url}`);
    const sub = await client.subscribe("feed.n");
    const publisher = new ServerClient(a.http, app.id, app.apiKey);

    const received = [];
    let stop = false;
    const publishing = (async () => {
      let n = 0;
      while (!stop) {
        n++;
        await publisher.publish("feed.n", "n", { n });
        await new Promise((r) => setTimeout(r, 2));
      }
      return n;
    })();
    let total;
    const reading = (async () => {
      for await (const m of sub) {
        received.push(m.data.n);
        if (total !== undefined && received.length === total) return;
      }
    })();
    const count = async (n) => {
      while (received.length < n) await new Promise((r) => setTimeout(r, 10));
    };

    await within(count(300), 20_000, "300 messages on the near gateway");
    const onFar = nextEvent(client, "connected", (e) => e.url.startsWith(far.url), 20_000);
    near.cut();
    await onFar;
    const backOnNear = nextEvent(client, "connected", (e) => e.url.startsWith(near.url), 20_000);
    near.restore();
    await backOnNear;
    const after = received.length;
    await within(count(after + 200), 20_000, "messages after moving back");
    stop = true;
    total = await publishing;
    if (received.length < total) await within(reading, 20_000, "every message");
    assert.deepEqual(received.slice(0, total), Array.from({ length: total }, (_, i) => i + 1), "all, in order, once");
    assert.equal(received.length, total, "none twice");
    assert.deepEqual(unrecovered, []);
    assert.ok(client.url.startsWith(near.url));
  } finally {
    await client?.close();
    for (const p of proxies) await p.close();
    await cluster.stop();
  }
});

test("nearest: a token every gateway refuses fails the connect with the server's reason", async () => {
  const cluster = await startCluster(2);
  try {
    const app = await cluster.createApp("tsnearestbad");
    const [a, b] = cluster.gateways;
    await assert.rejects(
      Client.connect({ urls: [a.url, b.url], app: app.id, token: "not-a-jwt", nearest: true }),
      (e) => e instanceof RejectedError && e.code === "invalid_token",
    );
  } finally {
    await cluster.stop();
  }
});

test("nearest: the others are waited for twice the first answer's time, at least 5 ms more", () => {
  assert.equal(stopWaitingAt(200), 400);
  assert.equal(stopWaitingAt(0.35), 5.35);
  assert.equal(stopWaitingAt(5), 10);
  // Measured (docs/regions.md): own gateway 0.35 ms, the far one's connect alone 82 ms.
  assert.ok(stopWaitingAt(0.35) < 82);
});

test("nearest: stops waiting at the deadline once a gateway answered and the own one finished", () => {
  assert.equal(nextStep(undefined, 0, true, 1), "rank");
  assert.equal(nextStep(3, 0, false, 1), "rank");
  // No answer yet (failures do not count): wait for the next one, however long.
  assert.equal(nextStep(undefined, 2, true, 9000), "await");
  assert.equal(nextStep(40, 1, true, 41), 80);
  assert.equal(nextStep(40, 1, true, 80), "rank");
  // Re-probing: the own gateway is waited for past the deadline.
  assert.equal(nextStep(40, 1, false, 500), "await");
  assert.equal(nextStep(0.35, 1, true, 1), 5.35);
});

test("nearest: gateways still probing rank after those that answered, before unreachable ones; late answers refine", () => {
  const p = (index, rttMs, pending = false) => ({ index, rttMs, pending, transport: undefined, error: undefined });
  const ranked = rank([p(0, undefined, true), p(1, undefined), p(2, 90), p(3, undefined, true), p(4, 3)]);
  assert.deepEqual(
    ranked.map((x) => x.index),
    [4, 2, 0, 3, 1],
  );
  const merged = merge({ probed: rank([p(0, undefined, true), p(1, 10), p(2, undefined, true), p(3, undefined)]) }, [
    p(2, undefined),
    p(0, 4),
  ]);
  assert.deepEqual(
    merged.probed.map((x) => x.index),
    [0, 1, 2, 3],
  );
  assert.ok(merged.probed.every((x) => !x.pending));
});

test("nearest: a regions document is read as hostile input", () => {
  assert.deepEqual(parseRegions('{"regions":[{"name":"a","url":"ws://a:1"},{"name":"b","url":"wss://b.example"}]}'), [
    "ws://a:1",
    "wss://b.example",
  ]);
  for (const [doc, want] of [
    ["<html>", /not a regions document/],
    ['{"regions":[]}', /no region/],
    ['{"regions":[{"name":"a","url":"http://a"}]}', /ws:\/\//],
    ['{"regions":[{"name":"a","url":"javascript:alert(1)"}]}', /ws:\/\//],
    ['{"regions":[{"name":"a b","url":"ws://a"}]}', /region name/],
    ['{"regions":[{"name":"a","url":"ws://a"},{"name":"a","url":"ws://b"}]}', /twice/],
    ['{"regions":[{"name":"a","url":"ws://u:p@a"}]}', /user information/],
    [JSON.stringify({ regions: Array.from({ length: 33 }, (_, i) => ({ name: `r${i}`, url: `ws://h:${i}` })) }), /at most 32/],
  ]) {
    assert.throws(() => parseRegions(doc), want, doc);
  }
});

test("nearest: connects to the near gateway while the far one still holds back its handshake; close() ends that probe at once", async () => {
  const VERY_FAR_MS = 5000;
  const cluster = await startCluster(2);
  const proxies = [];
  let client;
  try {
    const app = await cluster.createApp("tsnearestfast");
    const [a, b] = cluster.gateways;
    const far = await startDelayProxy(a.addr, VERY_FAR_MS);
    const near = await startDelayProxy(b.addr, 0);
    proxies.push(far, near);
    const started = performance.now();
    client = await Client.connect({
      urls: [far.url, near.url],
      app: app.id,
      token: app.apiKey,
      nearest: true,
      connectTimeoutMs: 60_000,
    });
    const took = performance.now() - started;
    // Not a byte from the far gateway, not even its handshake answer: its probe cannot have
    // finished, so it was not waited for.
    assert.equal(far.delivered(), 0, "the far gateway's handshake answer reached the client first");
    assert.ok(took < VERY_FAR_MS, `connect took ${took} ms`);
    assert.ok(client.url.startsWith(near.url), `connected to ${client.url}`);
    assert.equal(far.open(), 1, "the far probe is still running");

    await client.close();
    // Left alone, the far probe's handshake could not even be answered before 2 × VERY_FAR_MS.
    // Polled: the proxy has no event for a closed pair.
    const closed = (async () => {
      while (far.open() > 0) await new Promise((r) => setTimeout(r, 20));
    })();
    await within(closed, VERY_FAR_MS, "the far probe's connection closed");
    assert.equal(far.delivered(), 0, "the far gateway never answered");
  } finally {
    await client?.close();
    for (const p of proxies) await p.close();
    await cluster.stop();
  }
});

test("nearest: a late probe closes its connection when it finishes", async () => {
  const cluster = await startCluster(2);
  const proxies = [];
  let client;
  try {
    const app = await cluster.createApp("tsnearestlate");
    const [a, b] = cluster.gateways;
    const far = await startDelayProxy(a.addr, 100);
    const near = await startDelayProxy(b.addr, 0);
    proxies.push(far, near);
    client = await Client.connect({ urls: [far.url, near.url], app: app.id, token: app.apiKey, nearest: true });
    assert.ok(client.url.startsWith(near.url), `connected to ${client.url}`);
    // Polled: the proxy has no event for a closed pair.
    const closed = (async () => {
      while (far.open() > 0) await new Promise((r) => setTimeout(r, 20));
    })();
    await within(closed, 20_000, "the late probe's connection closed");
    assert.ok(far.delivered() > 0, "the far gateway was probed to the end");
    assert.ok(client.url.startsWith(near.url));
    await client.ping();
  } finally {
    await client?.close();
    for (const p of proxies) await p.close();
    await cluster.stop();
  }
});

test("nearest: a discovery URL (GET /v1/regions) lists the regions and the client picks the nearest", async () => {
  const cluster = await startCluster(2);
  const proxies = [];
  let client;
  try {
    const app = await cluster.createApp("tsnearestdisc");
    const [a, b] = cluster.gateways;
    const far = await startDelayProxy(a.addr, 40);
    const near = await startDelayProxy(b.addr, 0);
    proxies.push(far, near);
    const directory = await cluster.addGateway(["--regions", `far=${far.url},near=${near.url}`]);
    const discoveryUrl = `${directory.http}/v1/regions`;
    const res = await fetch(discoveryUrl);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.deepEqual(await res.json(), {
      regions: [
        { name: "far", url: far.url },
        { name: "near", url: near.url },
      ],
    });
    const none = await fetch(`${a.http}/v1/regions`);
    assert.equal(none.status, 404);
    assert.equal((await none.json()).error.code, "not_found");

    client = await Client.connect({ discoveryUrl, app: app.id, token: app.apiKey });
    assert.ok(client.url.startsWith(near.url), `connected to ${client.url}`);
  } finally {
    await client?.close();
    for (const p of proxies) await p.close();
    await cluster.stop();
  }
});

test("nearest: a bad discovery document fails the connect with a DiscoveryError, or falls back to the URLs given", async () => {
  const cluster = await startCluster(1);
  const servers = [];
  try {
    const app = await cluster.createApp("tsnearestbaddoc");
    const serve = async (status, body) => {
      const server = http.createServer((_, res) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(body);
      });
      await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
      servers.push(server);
      return `http://127.0.0.1:${server.address().port}/regions`;
    };
    const huge = JSON.stringify({ regions: [{ name: "a", url: `ws://a/${"x".repeat(100_000)}` }] });
    for (const [status, body, want] of [
      [200, huge, /larger than/],
      [200, '{"regions":[{"name":"a","url":"javascript:alert(1)"}]}', /ws:\/\//],
      [200, "<html>hello</html>", /not a regions document/],
      [500, "{}", /HTTP 500/],
    ]) {
      const discoveryUrl = await serve(status, body);
      await assert.rejects(
        Client.connect({ discoveryUrl, app: app.id, token: app.apiKey }),
        (e) => e instanceof DiscoveryError && e.kind === "discovery" && want.test(e.reason),
      );
      const client = await Client.connect({ discoveryUrl, url: cluster.gateways[0].url, app: app.id, token: app.apiKey });
      await client.close();
    }
  } finally {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((resolve) => s.close(resolve));
    }
    await cluster.stop();
  }
});

test("nearest: the discovery document is fetched again before every re-probe", async () => {
  const cluster = await startCluster(2);
  const proxies = [];
  let server;
  let client;
  try {
    const app = await cluster.createApp("tsnearestadd");
    const [a, b] = cluster.gateways;
    const far = await startDelayProxy(a.addr, 40);
    const near = await startDelayProxy(b.addr, 0);
    proxies.push(far, near);
    let doc = { regions: [{ name: "far", url: far.url }] };
    server = http.createServer((_, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(doc));
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    const discoveryUrl = `http://127.0.0.1:${server.address().port}/regions`;
    client = await Client.connect({ discoveryUrl, app: app.id, token: app.apiKey, reprobeIntervalMs: 200 });
    assert.ok(client.url.startsWith(far.url), `connected to ${client.url}`);
    const moved = nextEvent(client, "connected", (e) => e.url.startsWith(near.url), 20_000);
    doc = { regions: [...doc.regions, { name: "near", url: near.url }] };
    await moved;
    assert.ok(client.url.startsWith(near.url));
  } finally {
    await client?.close();
    if (server) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    for (const p of proxies) await p.close();
    await cluster.stop();
  }
});
