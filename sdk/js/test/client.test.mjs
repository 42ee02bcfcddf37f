// The client against a real `waas dev`: pub/sub, presence, history, typed errors.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  Client,
  ClosedError,
  ConfigError,
  InvalidChannelError,
  RejectedError,
  WaasError,
} from "../dist/index.js";
import { API_KEY, APP, nextEvent, startWaas, take, token } from "./support.mjs";

describe("client against waas dev", () => {
  let server;
  before(async () => {
    server = await startWaas();
  });
  after(async () => {
    await server?.stop();
  });

  const connect = async (sub, caps, extra) =>
    Client.connect({ url: server.url, app: APP, token: await token(server, sub, caps, extra) });

  test("publish and subscribe round trip, with offsets and the ack position", async () => {
    const alice = await connect("alice");
    const bob = await connect("bob");
    try {
      assert.equal(alice.sub, "alice");
      assert.equal(alice.state, "connected");
      const sub = await bob.subscribe("chat.room-1");
      assert.ok(bob.position("chat.room-1"), "the ack gave a position");
      const o1 = await alice.publish("chat.room-1", "say", { text: "hello" });
      const o2 = await alice.publish("chat.room-1", "say", { text: "again" });
      assert.ok(o2 > o1);
      const [m1, m2] = await take(sub, 2);
      assert.deepEqual(
        [m1.channel, m1.event, m1.data, m1.offset, m1.replayed],
        ["chat.room-1", "say", { text: "hello" }, o1, false],
      );
      assert.equal(m2.offset, o2);
      assert.ok(m1.ts > 1_700_000_000_000);
      assert.deepEqual(bob.position("chat.room-1").offset, o2);

      // A REST publish reaches the socket too; null is a value.
      const o3 = await server.rest.publish("chat.room-1", "null", null);
      const [m3] = await take(sub, 1);
      assert.deepEqual([m3.offset, m3.data], [o3, null]);

      // After unsubscribe nothing arrives and the iteration ends.
      await sub.unsubscribe();
      const end = await sub.next();
      assert.equal(end.done, true);
    } finally {
      await alice.close();
      await bob.close();
    }
  });

  test("two local subscriptions share one server subscription; onMessage listeners", async () => {
    const c = await connect("carol");
    try {
      const a = await c.subscribe("news.x");
      const b = await c.subscribe("news.x");
      const seen = [];
      let second;
      const gotSecond = new Promise((resolve) => (second = resolve));
      b.onMessage((m) => {
        seen.push(m.offset);
        if (seen.length === 2) second();
      });
      const offset = await c.publish("news.x", "e", 1);
      const [ma] = await take(a, 1);
      assert.equal(ma.offset, offset);
      await a.unsubscribe();
      const o2 = await c.publish("news.x", "e", 2);
      await gotSecond;
      assert.deepEqual(seen, [offset, o2], "b still subscribed after a left");
    } finally {
      await c.close();
    }
  });

  test("presence: members on subscribe, member_added and member_removed", async () => {
    const channel = "presence.room-9";
    const alice = await connect("alice", undefined, { info: { name: "Alice" } });
    const bob = await connect("bob", undefined, { info: { name: "Bob" } });
    try {
      const first = nextEvent(alice, "presence", (e) => e.type === "members" && e.channel === channel);
      await alice.subscribe(channel);
      const listed = await first;
      assert.deepEqual(listed.members, [{ id: "alice", info: { name: "Alice" } }]);

      const added = nextEvent(alice, "presence", (e) => e.type === "member_added");
      const bobSub = await bob.subscribe(channel);
      assert.deepEqual((await added).member, { id: "bob", info: { name: "Bob" } });
      const members = await alice.members(channel);
      assert.deepEqual(
        members.map((m) => m.id),
        ["alice", "bob"],
      );

      const removed = nextEvent(alice, "presence", (e) => e.type === "member_removed");
      await bobSub.unsubscribe();
      assert.equal((await removed).member.id, "bob");

      // Asking about a channel that is not a presence channel is a typed refusal.
      await assert.rejects(alice.members("chat.plain"), (e) => e instanceof RejectedError && e.code === "bad_request");
    } finally {
      await alice.close();
      await bob.close();
    }
  });

  test("history over the socket and over REST", async () => {
    const c = await connect("dave");
    try {
      const offsets = [];
      for (let i = 0; i < 3; i++) offsets.push(await c.publish("hist.a", "n", { i }));
      const page = await c.history("hist.a", { since: offsets[0] });
      assert.deepEqual(
        page.messages.map((m) => [m.offset, m.data.i]),
        [
          [offsets[1], 1],
          [offsets[2], 2],
        ],
      );
      assert.equal(page.offset, offsets[2]);
      const rev = await server.rest.history("hist.a", { reverse: true, limit: 1 });
      assert.deepEqual(
        rev.messages.map((m) => m.offset),
        [offsets[2]],
      );
      assert.equal(rev.epoch, page.epoch);
    } finally {
      await c.close();
    }
  });

  test("typed errors: forbidden, invalid names, rate limits as codes", async () => {
    const c = await connect("eve", { subscribe: ["chat.*"], publish: [] });
    try {
      await assert.rejects(c.subscribe("secret.x"), (e) => {
        assert.ok(e instanceof RejectedError && e instanceof WaasError);
        assert.equal(e.code, "forbidden");
        assert.equal(e.kind, "rejected");
        return true;
      });
      await assert.rejects(c.publish("chat.a", "e", 1), (e) => e instanceof RejectedError && e.code === "forbidden");
      await assert.rejects(c.publish("a..b", "e", 1), (e) => e instanceof InvalidChannelError && e.code === "invalid_channel");
      await assert.rejects(c.subscribe("news.*"), InvalidChannelError);
      await assert.rejects(c.request("get", "/x"), (e) => e.kind === "invalid_path");
      // The connection is still usable after refusals.
      assert.ok((await c.ping()) >= 0);
    } finally {
      await c.close();
    }
    await assert.rejects(c.publish("chat.a", "e", 1), (e) => e.kind === "client_closed");
  });

  test("bad token, unknown app, bad options: typed errors at connect", async () => {
    await assert.rejects(Client.connect({ url: server.url, app: APP, token: "not-a-jwt" }), (e) => {
      assert.ok(e instanceof RejectedError, e.message);
      assert.equal(e.code, "invalid_token");
      return true;
    });
    await assert.rejects(
      Client.connect({ url: server.url, app: "nope", token: API_KEY }),
      (e) => e instanceof RejectedError && e.code === "app_not_found",
    );
    await assert.rejects(Client.connect({ app: APP, token: "t" }), ConfigError);
    await assert.rejects(Client.connect({ url: "ftp://x", app: APP, token: "t" }), ConfigError);
    await assert.rejects(Client.connect({ url: server.url, app: APP }), ConfigError);
  });

  test("a server's name reaches the admin API's list of servers, with its ping latency", async () => {
    await assert.rejects(
      Client.connect({ url: server.url, app: APP, token: API_KEY, serverName: "no spaces" }),
      ConfigError,
    );
    const c = await Client.connect({ url: server.url, app: APP, token: API_KEY, serverName: "ts-api-1" });
    const id = c.connectionId;
    const listed = async () => {
      const res = await fetch(`${server.httpUrl}/v1/admin/apps/${APP}/servers`, {
        headers: { authorization: "Bearer dev-operator-token" },
      });
      assert.equal(res.status, 200);
      return (await res.json()).find((s) => s.connection_id === id);
    };
    try {
      // The gateway reports at once when a server connects and when its first pong arrives.
      const deadline = Date.now() + 10_000;
      let mine;
      while (!(mine = await listed())?.latency_ms && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(mine?.name, "ts-api-1");
      assert.equal(mine.online, true);
      assert.ok(mine.latency_ms > 0, JSON.stringify(mine));
    } finally {
      await c.close();
    }
    const deadline = Date.now() + 10_000;
    let gone;
    while ((gone = await listed())?.online !== false && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(gone?.online, false, "offline once closed");
  });

  test("unknown ops and unrouted requests are typed refusals", async () => {
    const c = await Client.connect({ url: server.url, app: APP, token: API_KEY });
    try {
      assert.equal(c.sub, "server");
      await assert.rejects(c.send({ op: "no_such_op" }), (e) => e instanceof RejectedError && e.code === "unknown_op");
      await assert.rejects(c.request("GET", "/nothing"), (e) => e instanceof RejectedError && e.code === "no_route");
    } finally {
      await c.close();
    }
  });

  test("the server closing with 4500-range codes stops the client with ClosedError", async () => {
    // A 2-second token: the server closes with 4501 at `exp`, and a static token cannot be renewed.
    const t = await token(server, "short", { subscribe: [">"] }, { ttl: 2 });
    const c = await Client.connect({ url: server.url, app: APP, token: t });
    const closed = await nextEvent(c, "closed", () => true, 10_000);
    assert.ok(closed.error instanceof ClosedError);
    assert.equal(closed.error.closeCode, 4501);
    assert.equal(c.state, "closed");
    await assert.rejects(c.publish("a.b", "e", 1), (e) => e instanceof ClosedError && e.closeCode === 4501);
  });
});
