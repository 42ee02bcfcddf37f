// pusher-js (Node build, its own WebSocket transport) against `waas dev`: every channel type,
// presence, client events, cache channels and end-to-end encryption, with messages published
// through WaaS's native REST API.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import nacl from "tweetnacl";
import Pusher from "pusher-js";
import PusherServer from "pusher";
import { startWaas, connect, subscribed, once, publish, appServer, pusherOptions, APP, SECRET, MASTER_KEY, QUIET } from "./support.mjs";

let server;
before(async () => {
  server = await startWaas();
});
after(async () => {
  await server?.stop();
});

test("public channels receive native publishes; JSON objects arrive parsed", async () => {
  const c = await connect(server);
  try {
    const ch = await subscribed(c, "news");
    const got = once(ch, "story");
    await publish(server, "news", "story", { title: "hi", tags: ["a"] });
    assert.deepEqual(await got, { title: "hi", tags: ["a"] });
    const plain = once(ch, "plain");
    await publish(server, "news", "plain", "just text");
    assert.equal(await plain, "just text");
  } finally {
    c.disconnect();
  }
});

test("private channels are signed by the app's server; client events reach others, not the sender", async () => {
  const a = await connect(server);
  const b = await connect(server);
  try {
    const cha = await subscribed(a, "private-chat");
    const chb = await subscribed(b, "private-chat");
    let echoed = false;
    cha.bind("client-typing", () => {
      echoed = true;
    });
    const got = once(chb, "client-typing");
    assert.equal(cha.trigger("client-typing", { who: "a" }), true);
    assert.deepEqual(await got, { who: "a" });
    // The sender's own event never comes back: a later message does, alone.
    const later = once(cha, "after");
    await publish(server, "private-chat", "after", 1);
    assert.equal(await later, 1);
    assert.equal(echoed, false);
  } finally {
    a.disconnect();
    b.disconnect();
  }
});

/** Resolves with the data of the next `pusher:error` `client` receives. */
function pusherError(client) {
  return new Promise((resolve) => {
    const onMessage = (m) => {
      if (m.event !== "pusher:error") return;
      client.connection.unbind("message", onMessage);
      resolve(m.data);
    };
    client.connection.bind("message", onMessage);
  });
}

test("client events are refused on public channels, and on every channel of an app that does not allow them", async () => {
  const a = await connect(server);
  const b = await connect(server);
  const quietServer = new PusherServer({ appId: QUIET.id, key: QUIET.id, secret: QUIET.secret, cluster: "any" });
  const quietOptions = {
    ...pusherOptions(server),
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => cb(null, quietServer.authorizeChannel(socketId, channelName)),
    },
  };
  const q1 = new Pusher(QUIET.id, quietOptions);
  const q2 = new Pusher(QUIET.id, quietOptions);
  try {
    // Public channel of an app with client events on: refused, not delivered.
    const cha = await subscribed(a, "lobby");
    const chb = await subscribed(b, "lobby");
    let leaked = false;
    chb.bind("client-shout", () => (leaked = true));
    const refused = pusherError(a);
    cha.trigger("client-shout", { x: 1 });
    const err = await refused;
    assert.equal(err.code, null);
    assert.match(err.message, /private|presence/);
    // The connection stays open and later messages flow; the refused event never came first.
    const later = once(chb, "after");
    await publish(server, "lobby", "after", 1);
    assert.equal(await later, 1);
    assert.equal(leaked, false);
    assert.equal(a.connection.state, "connected");

    // Private channel of an app with client events off: refused too.
    const p1 = await subscribed(q1, "private-quiet");
    const p2 = await subscribed(q2, "private-quiet");
    let leaked2 = false;
    p2.bind("client-shout", () => (leaked2 = true));
    const refused2 = pusherError(q1);
    p1.trigger("client-shout", { x: 2 });
    const err2 = await refused2;
    assert.equal(err2.code, null);
    assert.match(err2.message, /client events/i);
    const later2 = once(p2, "after");
    const resp = await fetch(`${server.httpUrl}/v1/apps/${QUIET.id}/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${QUIET.id}-key`, "content-type": "application/json" },
      body: JSON.stringify({ channel: "private-quiet", event: "after", data: 2 }),
    });
    assert.equal(resp.status, 200);
    assert.equal(await later2, 2);
    assert.equal(leaked2, false);
    assert.equal(q1.connection.state, "connected");
  } finally {
    a.disconnect();
    b.disconnect();
    q1.disconnect();
    q2.disconnect();
  }
});

test("a subscription the app's server did not sign fails", async () => {
  // An auth endpoint signing with another secret.
  const other = new PusherServer({ appId: APP, key: APP, secret: "wrong", cluster: "any" });
  const c = new Pusher(APP, {
    ...pusherOptions(server),
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => cb(null, other.authorizeChannel(socketId, channelName)),
    },
  });
  try {
    const ch = c.subscribe("private-locked");
    const err = await once(ch, "pusher:subscription_error");
    assert.equal(err.type, "AuthError");
    assert.equal(err.status, 401);
  } finally {
    c.disconnect();
  }
});

test("presence channels list members and announce arrivals and departures", async () => {
  const a = await connect(server, { user: { user_id: "alice", user_info: { name: "Alice" } } });
  const b = await connect(server, { user: { user_id: "bob", user_info: { name: "Bob" } } });
  try {
    const cha = await subscribed(a, "presence-room");
    assert.equal(cha.members.count, 1);
    assert.deepEqual(cha.members.me.info, { name: "Alice" });
    const added = once(cha, "pusher:member_added");
    const chb = await subscribed(b, "presence-room");
    assert.equal(chb.members.count, 2);
    const member = await added;
    assert.equal(member.id, "bob");
    assert.deepEqual(member.info, { name: "Bob" });
    // Client events on presence channels say who sent them.
    const whisper = new Promise((resolve) => cha.bind("client-hi", (data, meta) => resolve({ data, meta })));
    chb.trigger("client-hi", { n: 1 });
    const { data, meta } = await whisper;
    assert.deepEqual(data, { n: 1 });
    assert.equal(meta.user_id, "bob");
    const removed = once(cha, "pusher:member_removed");
    b.unsubscribe("presence-room");
    assert.equal((await removed).id, "bob");
    assert.equal(cha.members.count, 1);
  } finally {
    a.disconnect();
    b.disconnect();
  }
});

test("cache channels replay their last event, or say cache_miss", async () => {
  const a = await connect(server);
  try {
    const miss = new Promise((resolve) => a.connection.bind("message", (m) => m.event === "pusher:cache_miss" && resolve(m)));
    await subscribed(a, "cache-score");
    assert.equal((await miss).channel, "cache-score");
    await publish(server, "cache-score", "score", { home: 2 });
    const b = await connect(server);
    try {
      const ch = b.subscribe("cache-score");
      assert.deepEqual(await once(ch, "score"), { home: 2 });
    } finally {
      b.disconnect();
    }
  } finally {
    a.disconnect();
  }
});

test("private-encrypted channels: pusher-js decrypts what the server never could read", async () => {
  const c = await connect(server);
  try {
    const name = "private-encrypted-vault";
    const ch = await subscribed(c, name);
    // Sealed the way the `pusher` library does on trigger, with the channel's shared secret.
    const nonce = nacl.randomBytes(24);
    const key = appServer.channelSharedSecret(name);
    const box = nacl.secretbox(Buffer.from(JSON.stringify({ pin: 1234 })), nonce, key);
    const sealed = JSON.stringify({
      nonce: Buffer.from(nonce).toString("base64"),
      ciphertext: Buffer.from(box).toString("base64"),
    });
    const got = once(ch, "secret");
    await publish(server, name, "secret", sealed);
    assert.deepEqual(await got, { pin: 1234 });
  } finally {
    c.disconnect();
  }
});

test("private-encrypted channels: the pusher library encrypts, WaaS's HTTP API passes it, pusher-js decrypts", async () => {
  const c = await connect(server);
  try {
    const name = "private-encrypted-lib";
    const ch = await subscribed(c, name);
    // The app's server as it triggers on Pusher: the library seals with the channel's key.
    const lib = new PusherServer({
      appId: APP,
      key: APP,
      secret: SECRET,
      host: "127.0.0.1",
      port: String(server.port),
      useTLS: false,
      encryptionMasterKeyBase64: MASTER_KEY,
    });
    const got = once(ch, "sealed");
    const res = await lib.trigger(name, "sealed", { pin: 4321, note: "é" });
    assert.equal(res.status, 200);
    assert.deepEqual(await got, { pin: 4321, note: "é" });
  } finally {
    c.disconnect();
  }
});

test("user sign-in receives server-to-user messages", async () => {
  const c = await connect(server, { user: { user_id: "u42", user_info: {} } });
  try {
    const signedIn = new Promise((resolve) => c.connection.bind("message", (m) => m.event === "pusher:signin_success" && resolve(m)));
    c.signin();
    await signedIn;
    // What the HTTP API's sendToUser publishes, here through the native REST API: the user's
    // channel is live once signin_success has arrived.
    const got = new Promise((resolve, reject) => {
      setTimeout(() => reject(new Error("no server-to-user message within 10 s")), 10_000).unref();
      c.user.bind("notice", resolve);
    });
    await publish(server, "#server-to-user-u42", "notice", { hello: "u42" });
    const data = await got;
    assert.deepEqual(data, { hello: "u42" });

    // The app's server ends the user's connections: pusher:error 4009, which pusher-js takes
    // as "refused": it disconnects and does not come back.
    const lib = new PusherServer({ appId: APP, key: APP, secret: SECRET, host: "127.0.0.1", port: String(server.port), useTLS: false });
    const ended = pusherError(c);
    const disconnected = once(c.connection, "disconnected");
    const res = await lib.terminateUserConnections("u42");
    assert.equal(res.status, 200);
    assert.equal((await ended).code, 4009);
    await disconnected;
    assert.equal(c.connection.state, "disconnected");
  } finally {
    c.disconnect();
  }
});
