// Pure pieces: reconnect delays, name checks, close-code ranges, routing of a Router.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff, channelError, isPresenceChannel, Reply, Router, shouldReconnect } from "../dist/index.js";
import { checkPath } from "../dist/names.js";
import { ServerRequest } from "../dist/server.js";

test("backoff: the ceiling doubles to the cap, delays are jittered in [ceiling/2, ceiling]", () => {
  const b = new Backoff();
  assert.deepEqual(
    [1, 2, 3, 6, 7, 1000].map((a) => b.ceiling(a)),
    [100, 200, 400, 3200, 5000, 5000],
  );
  assert.equal(b.ceiling(0), b.ceiling(1));
  assert.equal(b.delay(3, 0), 200);
  assert.equal(b.delay(3, 1), 400);
  const draws = new Set();
  for (let i = 0; i < 200; i++) {
    const d = b.delay(5);
    assert.ok(d >= 800 && d <= 1600, String(d));
    draws.add(d);
  }
  assert.ok(draws.size > 10, "clients spread out");
  assert.equal(new Backoff({ multiplier: 0.5 }).ceiling(5), 100, "never shrinks");
});

test("channel names as docs/protocol.md lists them", () => {
  for (const ok of ["weather.paris", "chat:room-1", "users.alice@example.com.inbox", "orders/2024#eu"]) {
    assert.equal(channelError(ok), undefined, ok);
  }
  for (const bad of ["", "a..b", ".a", "a.", "has space", "news.*", "news.>", "x".repeat(201)]) {
    assert.notEqual(channelError(bad), undefined, bad);
  }
  assert.equal(channelError("é"), "may only hold A-Z a-z 0-9 _ - : @ = + , ; ! ~ # / between dots");
  assert.ok(isPresenceChannel("presence.room-1"));
  assert.ok(!isPresenceChannel("presence") && !isPresenceChannel("presence-room") && !isPresenceChannel("chat.presence"));
});

test("request paths as docs/rpc.md lists them", () => {
  for (const ok of ["/", "/weather/paris", "/a?x=1&y=2", "/a%20b", "/orders/42/lines?dry_run=1"]) {
    assert.doesNotThrow(() => checkPath(ok), ok);
  }
  for (const bad of ["weather", "/a//b", "/a/", "/a/../b", "/a/%2E%2e/b", "/a b", "/" + "x".repeat(2048)]) {
    assert.throws(() => checkPath(bad), (e) => e.kind === "invalid_path", bad);
  }
});

test("close codes: 1000 and 4500-4999 stop, everything else reconnects", () => {
  for (const c of [1000, 4500, 4501, 4502, 4999]) assert.equal(shouldReconnect(c), false, String(c));
  for (const c of [1001, 1002, 1006, 1009, 4000, 4001, 4002, 4003, 4004, 4499]) assert.equal(shouldReconnect(c), true, String(c));
});

test("a Router captures params, answers 404 and 405, and turns results into replies", async () => {
  const router = new Router()
    .route("GET", "/weather/{city}", (req) => ({ city: req.param("city"), q: req.query }))
    .route("DELETE", "/weather/{city}", () => undefined);
  const req = (method, path) =>
    new ServerRequest({ generation: 1, id: 1, service: "s", method, path, headers: {}, body: null, caller: { sub: "u", app: "a", connection_id: "c" }, timeoutMs: 1 });
  assert.deepEqual(await router.handler(req("GET", "/weather/paris?units=c")), { city: "paris", q: "units=c" });
  assert.deepEqual(await router.handler(req("POST", "/weather/paris")), Reply.error(405, "POST is not allowed here"));
  assert.equal((await router.handler(req("GET", "/weather"))).status, 404);
  assert.equal((await router.handler(req("GET", "/weather/a/b"))).status, 404);
  assert.equal(await router.handler(req("DELETE", "/weather/x")), undefined);
});

test("the SDK's error and close codes are exactly docs/protocol.md's", async () => {
  const { readFile } = await import("node:fs/promises");
  const { ERROR_CODES, CloseCode } = await import("../dist/index.js");
  const doc = await readFile(new URL("../../../docs/protocol.md", import.meta.url), "utf8");
  const section = (from, to) => doc.slice(doc.indexOf(from), doc.indexOf(to, doc.indexOf(from)));
  const errors = [...section("## Error codes", "## Close codes").matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual([...ERROR_CODES].sort(), [...errors].sort());
  const closes = [...section("## Close codes", "## Heartbeats").matchAll(/^\| (\d{4}) \|/gm)].map((m) => Number(m[1]));
  const known = new Set(Object.values(CloseCode));
  for (const c of closes) assert.ok(known.has(c), `close code ${c} has a name in CloseCode`);
});
