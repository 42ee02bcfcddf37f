// Test support for the Pusher HTTP API and Pusher-format webhooks: a real `waas dev` process
// serving two Pusher-enabled apps, the `pusher` server library pointed at it, native WebSocket
// subscribers, and a webhook receiver on loopback.

import http from "node:http";
import Pusher from "pusher";
import WebSocket from "ws";
import { startWaas as start } from "./waas.mjs";

export { repo, waasBin } from "./waas.mjs";

/** The apps of the test server: id (= Pusher key), API key, Pusher secret. */
export const APPS = {
  main: { id: "phttp", apiKey: "phttp-key", secret: "phttp-pusher-secret" },
  other: { id: "pother", apiKey: "pother-key", secret: "pother-pusher-secret" },
  // Python's library accepts only numeric app ids.
  numeric: { id: "4242", apiKey: "n4242-key", secret: "n4242-pusher-secret" },
  // Its Pusher secret is rotated by a test.
  rotating: { id: "protate", apiKey: "protate-key", secret: "protate-pusher-secret" },
};
export const OPERATOR_TOKEN = "dev-operator-token";

/** A `waas dev` process serving APPS on a free port; see [`startWaas`](./waas.mjs). */
export function startWaas() {
  return start({ apps: Object.values(APPS) });
}

/** The `pusher` server library pointed at `server`, as `app` (with `secret` if given). */
export function pusherFor(server, app = APPS.main, secret = app.secret) {
  return new Pusher({ appId: app.id, key: app.id, secret, host: server.host, port: server.port, useTLS: false });
}

/** A token minted by the server for `sub` of `app`, allowed to subscribe to `channels`. */
export async function token(server, sub, channels, app = APPS.main, info = undefined) {
  const res = await fetch(`${server.httpUrl}/v1/apps/${app.id}/tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${app.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ sub, caps: { subscribe: channels }, ...(info ? { info } : {}) }),
  });
  if (res.status !== 200) throw new Error(`mint token: ${res.status} ${await res.text()}`);
  return (await res.json()).token;
}

/** A native WebSocket client subscribed to `channels`; `next()` resolves with its next message. */
export async function subscriber(server, tok, channels, app = APPS.main) {
  const ws = new WebSocket(`ws://${server.addr}/v1/apps/${app.id}/ws?token=${tok}`);
  const queue = [];
  const waiting = [];
  ws.on("message", (raw) => {
    const frame = JSON.parse(raw.toString());
    const w = waiting.shift();
    if (w) w(frame);
    else queue.push(frame);
  });
  const nextFrame = (ms = 10_000) =>
    new Promise((resolve, reject) => {
      if (queue.length) return resolve(queue.shift());
      const timer = setTimeout(() => reject(new Error("no frame within " + ms + " ms")), ms);
      waiting.push((f) => {
        clearTimeout(timer);
        resolve(f);
      });
    });
  const ready = await nextFrame();
  if (ready.op !== "ready") throw new Error(`expected ready, got ${JSON.stringify(ready)}`);
  let id = 1;
  for (const channel of channels) {
    const want = id++;
    ws.send(JSON.stringify({ op: "subscribe", id: want, channel }));
    // A presence channel's `members` frame may come first; the answer carries the id.
    let answer;
    do answer = await nextFrame();
    while (answer.id !== want);
    if (answer.op !== "ack") throw new Error(`subscribe ${channel}: ${JSON.stringify(answer)}`);
  }
  return {
    async next(op = "message") {
      for (;;) {
        const f = await nextFrame();
        if (f.op === op) return f;
      }
    },
    close: () => ws.close(),
  };
}

/**
 * An HTTP server on loopback recording every request (headers and raw body). With `hold`, it
 * answers nothing until `release()`: requests stay in flight, so WaaS's worker holds further
 * events of the endpoint back (at most `per_endpoint_concurrency` requests in flight) and
 * sends them together later.
 */
export async function receiver({ hold = false } = {}) {
  const requests = [];
  const waiting = [];
  let held = hold ? [] : null;
  const srv = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const r = { headers: req.headers, rawBody: body };
      requests.push(r);
      for (const w of waiting.splice(0)) w();
      const answer = () => res.writeHead(200).end("ok");
      if (held) held.push(answer);
      else answer();
    });
  });
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${srv.address().port}/hook`,
    requests,
    /** Resolves once `done(requests)` holds, or fails after `ms`. */
    async until(done, ms = 15_000) {
      const end = Date.now() + ms;
      while (!done(requests)) {
        if (Date.now() > end) throw new Error(`receiver: condition not met; got ${JSON.stringify(requests)}`);
        await new Promise((resolve) => {
          const t = setTimeout(resolve, Math.max(0, end - Date.now()));
          waiting.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      return requests;
    },
    /** Answers the held requests, and every later one at once. */
    release() {
      const answers = held ?? [];
      held = null;
      for (const answer of answers) answer();
    },
    close() {
      this.release();
      srv.closeAllConnections();
      return new Promise((resolve) => srv.close(resolve));
    },
  };
}

/** The events of Pusher-format webhook requests, parsed. */
export function hookEvents(requests) {
  return requests.flatMap((r) => JSON.parse(r.rawBody).events);
}

/**
 * Pusher-format webhooks of `channel_occupied` for `n` channels `{prefix}.1`..`{prefix}.n`
 * of `app`, delivered by WaaS to a receiver that holds its first requests until every event is
 * in the outbox: then at least two of them arrive in one request. Resolves with the requests
 * once every event arrived.
 */
export async function batchedHooks(server, app, prefix, n = 10) {
  const rx = await receiver({ hold: true });
  const created = await admin(server, "POST", `/v1/admin/apps/${app.id}/webhooks`, {
    url: rx.url,
    events: ["channel_occupied"],
    channels: [`${prefix}.>`],
    format: "pusher",
  });
  if (created.status !== 201) throw new Error(`webhook: ${created.status} ${JSON.stringify(created.body)}`);
  const webhook = created.body.webhook.id;
  const channels = Array.from({ length: n }, (_, i) => `${prefix}.${i + 1}`);
  const sub = await subscriber(server, await token(server, "batcher", [`${prefix}.>`], app), channels, app);
  try {
    // Every event is a delivery in the outbox (the delivery log lists it) before any request
    // is answered.
    const end = Date.now() + 15_000;
    for (;;) {
      const log = await admin(server, "GET", `/v1/admin/apps/${app.id}/deliveries?webhook=${webhook}&limit=100`);
      if (log.status === 200 && log.body.length === n) break;
      if (Date.now() > end) throw new Error(`deliveries: ${JSON.stringify(log)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    rx.release();
    const reqs = await rx.until((r) => new Set(hookEvents(r).map((e) => e.channel)).size === n);
    return reqs;
  } finally {
    sub.close();
    await rx.close();
    await admin(server, "DELETE", `/v1/admin/apps/${app.id}/webhooks/${webhook}`);
  }
}

/** A call on the admin API of `server`. */
export async function admin(server, method, path, body) {
  const res = await fetch(`${server.httpUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}
