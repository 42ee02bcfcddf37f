// Test support: a real `waas dev` process with an app that has Pusher settings, pusher-js
// clients pointed at it, signatures from the `pusher` server library, and waiting for events
// without sleeping.

import Pusher from "pusher-js";
import PusherServer from "pusher";
import { startWaas as start } from "./waas.mjs";

export { repo, waasBin } from "./waas.mjs";

export const APP = "pjs";
export const API_KEY = "pjs-key";
export const SECRET = "pjs-pusher-secret";
/** 32 bytes, base64: the master key of encrypted channels, known to the app's server only. */
export const MASTER_KEY = Buffer.from("0123456789abcdef0123456789abcdef").toString("base64");

/**
 * A `waas dev` process serving APP (client events on) and QUIET on `port` (0: a free one); see
 * [`startWaas`](./waas.mjs).
 */
export function startWaas({ port = 0 } = {}) {
  return start({
    port,
    apps: [
      { id: APP, apiKey: API_KEY, secret: SECRET, clientEvents: true },
      { id: QUIET.id, apiKey: `${QUIET.id}-key`, secret: QUIET.secret, clientEvents: false },
    ],
  });
}

/** A second app, with client events off (Pusher's default). */
export const QUIET = { id: "pjsquiet", secret: "pjsquiet-pusher-secret" };

/** The app's server side: the `pusher` library, which signs subscriptions and sign-ins. */
export const appServer = new PusherServer({
  appId: APP,
  key: APP,
  secret: SECRET,
  cluster: "any",
  encryptionMasterKeyBase64: MASTER_KEY,
});

/** Publishes through WaaS's native REST API (docs/rest.md): native → Pusher crossing. */
export async function publish(server, channel, event, data) {
  const resp = await fetch(`${server.httpUrl}/v1/apps/${APP}/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ channel, event, data }),
  });
  if (resp.status !== 200) throw new Error(`publish: ${resp.status} ${await resp.text()}`);
  return resp.json();
}

/**
 * pusher-js options pointing at `server`, signing with the `pusher` library the way an app's
 * auth endpoint would; `user` is the presence member and signed-in user.
 */
export function pusherOptions(server, { user = { user_id: "u1", user_info: { name: "Una" } }, port } = {}) {
  return {
    wsHost: "127.0.0.1",
    wsPort: port ?? server.port,
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    cluster: "any",
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) => {
        try {
          const presence = channelName.startsWith("presence-") ? user : undefined;
          callback(null, appServer.authorizeChannel(socketId, channelName, presence));
        } catch (e) {
          callback(e, null);
        }
      },
    },
    userAuthentication: {
      customHandler: ({ socketId }, callback) => {
        callback(null, appServer.authenticateUser(socketId, { id: user.user_id, name: "user" }));
      },
    },
  };
}

/** A connected pusher-js client; `disconnect()` it at the end. */
export async function connect(server, opts = {}) {
  const client = new Pusher(APP, pusherOptions(server, opts));
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("pusher-js did not connect")), 10_000);
    client.connection.bind("connected", () => {
      clearTimeout(t);
      resolve();
    });
  });
  return client;
}

/** Resolves with the next `event` on `target` (a channel or the connection), or fails after `ms`. */
export function once(target, event, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    const handler = (data) => {
      clearTimeout(t);
      target.unbind(event, handler);
      resolve(data);
    };
    target.bind(event, handler);
  });
}

/** Subscribes `client` to `name` and waits for the subscription to succeed. */
export async function subscribed(client, name) {
  const channel = client.subscribe(name);
  const failed = once(channel, "pusher:subscription_error").then((e) => {
    throw new Error(`subscription to ${name} failed: ${JSON.stringify(e)}`);
  });
  await Promise.race([once(channel, "pusher:subscription_succeeded"), failed]);
  return channel;
}
