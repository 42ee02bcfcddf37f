// pusher-js against a cluster of real processes (a control-plane and two gateways over NATS and
// PostgreSQL): presence across the gateways, and a client whose gateway is killed reconnecting
// to the other through the balancer in front of them.

import { test } from "node:test";
import assert from "node:assert/strict";
import Pusher from "pusher-js";
import PusherServer from "pusher";
import { startBalancer, startCluster } from "./cluster.mjs";
import { once, subscribed } from "./support.mjs";

/** pusher-js connected to `port` as `user` of `app`, signed by the `pusher` library. */
async function connect(app, port, user) {
  const appServer = new PusherServer({ appId: app.id, key: app.id, secret: app.secret, cluster: "any" });
  const client = new Pusher(app.id, {
    wsHost: "127.0.0.1",
    wsPort: port,
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    cluster: "any",
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => cb(null, appServer.authorizeChannel(socketId, channelName, user)),
    },
  });
  await once(client.connection, "connected");
  return client;
}

/** The `pusher` library's HTTP API client, pointed at `gateway`. */
function httpApi(app, gateway) {
  return new PusherServer({ appId: app.id, key: app.id, secret: app.secret, host: gateway.host, port: String(gateway.port), useTLS: false });
}

test("presence members and client events cross the two gateways", async () => {
  const cluster = await startCluster(2);
  const [gw0, gw1] = cluster.gateways;
  const clients = [];
  try {
    const app = await cluster.createApp("pcluster");
    const a = await connect(app, gw0.port, { user_id: "alice", user_info: { name: "Alice" } });
    clients.push(a);
    const b = await connect(app, gw1.port, { user_id: "bob", user_info: { name: "Bob" } });
    clients.push(b);

    const roomA = await subscribed(a, "presence-room");
    assert.equal(roomA.members.count, 1);
    const added = once(roomA, "pusher:member_added");
    const roomB = await subscribed(b, "presence-room");
    // Bob, on the other gateway, sees Alice at once; Alice hears of Bob.
    assert.equal(roomB.members.count, 2);
    assert.deepEqual(roomB.members.get("alice").info, { name: "Alice" });
    const bob = await added;
    assert.deepEqual([bob.id, bob.info], ["bob", { name: "Bob" }]);
    assert.equal(roomA.members.count, 2);

    // The HTTP API of either gateway sees both members, and both gateways' subscribers.
    for (const gw of [gw0, gw1]) {
      const users = await (await httpApi(app, gw).get({ path: "/channels/presence-room/users" })).json();
      assert.deepEqual(users.users.map((u) => u.id).sort(), ["alice", "bob"]);
      const info = await (await httpApi(app, gw).get({ path: "/channels/presence-room", params: { info: "user_count,subscription_count" } })).json();
      assert.deepEqual(info, { occupied: true, user_count: 2, subscription_count: 2 });
      const list = await (await httpApi(app, gw).get({ path: "/channels", params: { filter_by_prefix: "presence-", info: "user_count,subscription_count" } })).json();
      assert.deepEqual(list, { channels: { "presence-room": { user_count: 2, subscription_count: 2 } } });
    }

    // A client event from gateway 1 reaches gateway 0 with its sender; an HTTP API publish on
    // gateway 0 reaches gateway 1.
    const whisper = new Promise((resolve) => roomA.bind("client-wave", (data, meta) => resolve({ data, meta })));
    assert.equal(roomB.trigger("client-wave", { hi: 1 }), true);
    const { data, meta } = await whisper;
    assert.deepEqual([data, meta.user_id], [{ hi: 1 }, "bob"]);
    const news = once(roomB, "news");
    await httpApi(app, gw0).trigger("presence-room", "news", { n: 2 });
    assert.deepEqual(await news, { n: 2 });

    // Bob leaves: Alice, on the other gateway, hears it.
    const removed = once(roomA, "pusher:member_removed");
    b.disconnect();
    assert.equal((await removed).id, "bob");
    assert.equal(roomA.members.count, 1);
  } finally {
    for (const c of clients) c.disconnect();
    await cluster.stop();
  }
});

test("pusher-js reconnects to the other gateway when its own is killed", async () => {
  const cluster = await startCluster(2);
  const [gw0, gw1] = cluster.gateways;
  // pusher-js has one host; a deployment puts a balancer there. This one sends each new
  // connection to the first gateway that accepts it: gateway 0 while it lives, then gateway 1.
  const balancer = await startBalancer(cluster.gateways);
  const clients = [];
  try {
    const app = await cluster.createApp("preconnect");
    const watcher = await connect(app, gw1.port, { user_id: "wendy", user_info: {} });
    clients.push(watcher);
    const watched = await subscribed(watcher, "presence-lobby");

    const c = await connect(app, balancer.port, { user_id: "carl", user_info: { n: 1 } });
    clients.push(c);
    assert.deepEqual(balancer.connections, [0], "first on gateway 0");
    const news = await subscribed(c, "news");
    const joined = once(watched, "pusher:member_added");
    const lobby = await subscribed(c, "presence-lobby");
    assert.equal(lobby.members.count, 2);
    assert.equal((await joined).id, "carl");
    const firstId = c.connection.socket_id;

    const lost = new Promise((resolve) => c.connection.bind("state_change", ({ current }) => current !== "connected" && resolve(current)));
    // Bound before the kill, so a quick reconnect is not missed.
    const reconnected = once(c.connection, "connected", 30_000);
    const resubscribed = once(news, "pusher:subscription_succeeded", 30_000);
    const rejoined = once(lobby, "pusher:subscription_succeeded", 30_000);
    await gw0.stop("SIGKILL");
    await lost;
    await reconnected;
    await resubscribed;
    const members = await rejoined;
    assert.deepEqual(balancer.connections.at(-1), 1, "now on gateway 1");
    assert.notEqual(c.connection.socket_id, firstId, "a new connection");
    assert.deepEqual(Object.keys(members.members).sort(), ["carl", "wendy"]);

    // Messages published on the surviving gateway reach it.
    const got = once(news, "story");
    await httpApi(app, gw1).trigger("news", "story", { after: "kill" });
    assert.deepEqual(await got, { after: "kill" });
  } finally {
    for (const c of clients) c.disconnect();
    await balancer.close();
    await cluster.stop();
  }
});
