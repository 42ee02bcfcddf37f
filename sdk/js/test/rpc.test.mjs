// Requests over the socket (docs/rpc.md): a Node-side responder serving with an API key, a
// caller with a token, through a real `waas dev`.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Client, RejectedError, Reply, Router } from "../dist/index.js";
import { API_KEY, APP, startWaas, token } from "./support.mjs";

let server;
before(async () => {
  server = await startWaas();
  const res = await fetch(`${server.httpUrl}/v1/admin/apps/${APP}`, {
    method: "PATCH",
    headers: { authorization: "Bearer dev-operator-token", "content-type": "application/json" },
    body: JSON.stringify({
      routes: [
        { prefix: "/weather", service: "weather" },
        { prefix: "/slow", service: "slow", timeout_ms: 300 },
        { prefix: "/idle", service: "idle" },
      ],
    }),
  });
  assert.equal(res.status, 200, await res.text());
});
after(async () => {
  await server?.stop();
});

test("request/response with a Router responder: params, caller identity, 404/405, headers", async () => {
  const broker = await Client.connect({ url: server.url, app: APP, token: API_KEY });
  const router = new Router()
    .route("GET", "/weather/{city}", (req) => {
      const city = req.param("city");
      if (city !== "paris") return Reply.error(404, `no station in ${city}`);
      return { city, celsius: 18.5, asked_by: req.caller.sub, lang: req.header("Accept-Language") };
    })
    .route("POST", "/weather/{city}/readings", (req) => new Reply(201, { got: req.body }).header("etag", '"v1"'))
    .route("DELETE", "/weather/{city}", () => undefined);
  const serving = await broker.serve("weather", router.handler);
  const phone = await Client.connect({
    url: server.url,
    app: APP,
    token: await token(server, "phone-7", { call: ["/weather"] }),
  });
  try {
    const r = await phone.call({ path: "/weather/paris", headers: { "Accept-Language": "fr" } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { city: "paris", celsius: 18.5, asked_by: "phone-7", lang: "fr" });

    const missing = await phone.request("GET", "/weather/atlantis");
    assert.deepEqual([missing.status, missing.body], [404, { error: "no station in atlantis" }]);

    const posted = await phone.request("POST", "/weather/paris/readings", { celsius: 19 });
    assert.deepEqual([posted.status, posted.body, posted.headers.etag], [201, { got: { celsius: 19 } }, '"v1"']);

    assert.equal((await phone.request("DELETE", "/weather/paris")).status, 204);
    assert.equal((await phone.request("PUT", "/weather/paris")).status, 405);

    // The gateway refuses paths the token may not call, before any route.
    await assert.rejects(phone.request("GET", "/slow/x"), (e) => e instanceof RejectedError && e.code === "forbidden");

    // Many in flight over one socket, answered out of order, each to its caller.
    const many = await Promise.all(Array.from({ length: 50 }, () => phone.request("GET", "/weather/paris")));
    assert.ok(many.every((x) => x.status === 200));

    // After stop, nobody serves the service.
    await serving.stop();
    await assert.rejects(phone.request("GET", "/weather/paris"), (e) => e instanceof RejectedError && e.code === "no_responder");
  } finally {
    await phone.close();
    await broker.close();
  }
});

test("a handler that throws answers 500; a responder too slow gets the route's timeout", async () => {
  const responder = await Client.connect({ url: server.url, app: APP, token: API_KEY });
  await responder.serve("slow", (req) => {
    if (req.path === "/slow/boom") throw new Error("boom");
    return new Promise(() => {}); // never answers
  });
  const caller = await Client.connect({ url: server.url, app: APP, token: API_KEY });
  try {
    const boom = await caller.request("GET", "/slow/boom");
    assert.equal(boom.status, 500);
    await assert.rejects(caller.request("GET", "/slow/never"), (e) => e instanceof RejectedError && e.code === "timeout");
  } finally {
    await caller.close();
    await responder.close();
  }
});

test("serve needs an API key: a token gets forbidden", async () => {
  const user = await Client.connect({ url: server.url, app: APP, token: await token(server, "u") });
  try {
    await assert.rejects(user.serve("idle", () => 1), (e) => e instanceof RejectedError && e.code === "forbidden");
    await assert.rejects(user.serve("bad name", () => 1), (e) => e.kind === "invalid_path");
  } finally {
    await user.close();
  }
});
