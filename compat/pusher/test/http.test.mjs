// The `pusher` Node server library against WaaS's Pusher HTTP API and Pusher-format webhooks
// (docs/pusher.md#http-api-and-webhooks): what it publishes reaches native subscribers, its
// channel queries answer in Pusher's shapes, a wrong secret gets its error, and its webhook
// validator accepts WaaS's webhooks.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import Pusher from "pusher";
import { APPS, admin, batchedHooks, hookEvents, pusherFor, receiver, startWaas, subscriber, token } from "./http-support.mjs";

let server;
before(async () => {
  server = await startWaas();
});
after(async () => {
  await server?.stop();
});

test("trigger and triggerBatch reach native subscribers, data converted", async () => {
  const pusher = pusherFor(server);
  const sub = await subscriber(server, await token(server, "alice", ["news-1", "news-2"]), ["news-1", "news-2"]);
  const res = await pusher.trigger("news-1", "created", { id: 7 });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  let m = await sub.next();
  assert.equal(m.channel, "news-1");
  assert.equal(m.event, "created");
  assert.deepEqual(m.data, { id: 7 }, "a stringified object arrives as the object");

  const withInfo = await pusher.trigger(["news-1", "news-2"], "text", "plain", { info: "subscription_count" });
  assert.deepEqual(await withInfo.json(), {
    channels: { "news-1": { subscription_count: 1 }, "news-2": { subscription_count: 1 } },
  });
  assert.equal((await sub.next()).data, "plain");
  assert.equal((await sub.next()).data, "plain");

  const batch = await pusher.triggerBatch([
    { channel: "news-1", name: "b1", data: "one" },
    { channel: "news-2", name: "b2", data: [1, 2] },
  ]);
  assert.equal(batch.status, 200);
  // Two channels: each keeps its order, not one with the other.
  const got = [await sub.next(), await sub.next()].map((f) => [f.channel, f.event, f.data]).sort();
  assert.deepEqual(got, [
    ["news-1", "b1", "one"],
    ["news-2", "b2", [1, 2]],
  ]);
  sub.close();
});

test("sendToUser publishes on the user's channel", async () => {
  const channel = "#server-to-user-bob";
  const sub = await subscriber(server, await token(server, "bob", [channel]), [channel]);
  await pusherFor(server).sendToUser("bob", "hello", { x: 1 });
  const m = await sub.next();
  assert.deepEqual([m.channel, m.event, m.data], [channel, "hello", { x: 1 }]);
  sub.close();
});

test("get channels, channel and users in Pusher's shapes", async () => {
  const pusher = pusherFor(server);
  const tok = await token(server, "carol", ["presence.lobby", "room-9"], APPS.main, { name: "Carol" });
  const sub = await subscriber(server, tok, ["presence.lobby", "room-9"]);

  const list = await (await pusher.get({ path: "/channels", params: { filter_by_prefix: "room-", info: "subscription_count" } })).json();
  assert.deepEqual(list, { channels: { "room-9": { subscription_count: 1 } } });
  const one = await (await pusher.get({ path: "/channels/presence.lobby", params: { info: "user_count,subscription_count" } })).json();
  assert.deepEqual(one, { occupied: true, user_count: 1, subscription_count: 1 });
  const users = await (await pusher.get({ path: "/channels/presence.lobby/users" })).json();
  assert.deepEqual(users, { users: [{ id: "carol" }] });

  await assert.rejects(pusher.get({ path: "/channels/room-9/users" }), (e) => e.status === 400);
  await assert.rejects(pusher.get({ path: "/channels", params: { info: "user_count" } }), (e) => e.status === 400);
  sub.close();
});

test("terminateUserConnections is accepted", async () => {
  const res = await pusherFor(server).terminateUserConnections("alice");
  assert.equal(res.status, 200);
});

test("a wrong secret or another app's secret gets 401, an unknown app 404", async () => {
  await assert.rejects(pusherFor(server, APPS.main, "not-the-secret").trigger("news-1", "e", "x"), (e) => {
    assert.equal(e.status, 401);
    assert.match(e.body, /unauthorized/);
    return true;
  });
  // The other app's secret on this app's URL.
  await assert.rejects(pusherFor(server, APPS.main, APPS.other.secret).trigger("news-1", "e", "x"), (e) => e.status === 401);
  const unknown = new Pusher({ appId: "nope", key: "nope", secret: "s", host: server.host, port: server.port, useTLS: false });
  await assert.rejects(unknown.trigger("c", "e", "x"), (e) => e.status === 404);
  // The other app, signing for itself, sees none of this app's channels.
  const sub = await subscriber(server, await token(server, "dave", ["private-ish"]), ["private-ish"]);
  const theirs = await (await pusherFor(server, APPS.other).get({ path: "/channels" })).json();
  assert.deepEqual(theirs, { channels: {} });
  sub.close();
});

test("the library's webhook validator accepts Pusher-format webhooks", async () => {
  const rx = await receiver();
  const created = await admin(server, "POST", `/v1/admin/apps/${APPS.main.id}/webhooks`, {
    url: rx.url,
    events: ["channel_occupied", "member_added"],
    channels: ["presence.hooked"],
    // The endpoint's own secret does not sign Pusher-format requests: the app's Pusher secret does.
    secret: "an-endpoint-secret-not-the-apps",
    format: "pusher",
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.webhook.format, "pusher");

  const tok = await token(server, "erin", ["presence.hooked"], APPS.main, { name: "Erin" });
  const sub = await subscriber(server, tok, ["presence.hooked"]);
  const pusher = pusherFor(server);
  const names = (reqs) => reqs.flatMap((r) => pusher.webhook(r).getEvents().map((e) => e.name));
  const reqs = await rx.until((r) => names(r).includes("channel_occupied") && names(r).includes("member_added"));
  for (const r of reqs) {
    const hook = pusher.webhook(r);
    assert.ok(hook.isValid(), `valid: ${JSON.stringify(r)}`);
    assert.ok(hook.getTime() instanceof Date);
    // Signed for this app only: the other app's library refuses it.
    assert.equal(pusherFor(server, APPS.other).webhook(r).isValid(), false);
  }
  const events = reqs.flatMap((r) => pusher.webhook(r).getEvents());
  assert.deepEqual(
    events.find((e) => e.name === "member_added"),
    { name: "member_added", channel: "presence.hooked", user_id: "erin" },
  );
  // A tampered body is refused.
  const tampered = { ...reqs[0], rawBody: reqs[0].rawBody.replace("presence.hooked", "presence.other") };
  assert.equal(pusher.webhook(tampered).isValid(), false);
  sub.close();
  await rx.close();
});

test("several events arrive in one webhook request, which the validator accepts", async () => {
  const reqs = await batchedHooks(server, APPS.main, "batched");
  const pusher = pusherFor(server);
  const sizes = reqs.map((r) => pusher.webhook(r).getEvents().length);
  assert.ok(Math.max(...sizes) >= 2, `one request carries several events: ${sizes}`);
  for (const r of reqs) assert.ok(pusher.webhook(r).isValid(), `valid: ${JSON.stringify(r)}`);
  const channels = hookEvents(reqs).map((e) => e.channel).sort();
  assert.deepEqual(new Set(channels).size, 10);
  assert.ok(channels.every((c) => c.startsWith("batched.")));
});

test("after a secret rotation, webhooks validate with the new secret only", async () => {
  const app = APPS.rotating;
  const rotated = await admin(server, "POST", `/v1/admin/apps/${app.id}/pusher-secret`, {});
  assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
  const secret = rotated.body.pusher_secret;
  assert.notEqual(secret, app.secret);
  const [r] = await batchedHooks(server, app, "rotated", 1);
  assert.equal(pusherFor(server, app, secret).webhook(r).isValid(), true);
  assert.equal(pusherFor(server, app).webhook(r).isValid(), false, "not with the old secret");
});
