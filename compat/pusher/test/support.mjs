// Test support: a real `waas dev` process with an app that has Pusher settings, pusher-js
// clients pointed at it, signatures from the `pusher` server library, and waiting for events
// without sleeping.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Pusher from "pusher-js";
import PusherServer from "pusher";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "../../..");
const targetDir = process.env.CARGO_TARGET_DIR
  ? path.resolve(repo, process.env.CARGO_TARGET_DIR)
  : path.join(repo, "target");

/** The `waas` binary: `WAAS_BIN`, else `$CARGO_TARGET_DIR/debug/waas` (`cargo build` makes it). */
export function waasBin() {
  const bin = process.env.WAAS_BIN ?? path.join(targetDir, "debug", "waas");
  if (!existsSync(bin)) {
    throw new Error(`no waas binary at ${bin}: run \`cargo build\` at the repository root, or set WAAS_BIN`);
  }
  return bin;
}

/** The app the tests use: its id is the Pusher key and app id. */
export const APP = "pjs";
export const API_KEY = "pjs-key";
export const SECRET = "pjs-pusher-secret";
/** 32 bytes, base64: the master key of encrypted channels, known to the app's server only. */
export const MASTER_KEY = Buffer.from("0123456789abcdef0123456789abcdef").toString("base64");

/** The config file of a `waas dev` serving APP with Pusher settings. */
function configFile() {
  const dir = mkdtempSync(path.join(tmpdir(), "waas-pusher-"));
  const file = path.join(dir, "waas.toml");
  writeFileSync(
    file,
    [
      "[[apps]]",
      `id = "${APP}"`,
      `api_keys = ["${API_KEY}"]`,
      `jwt_secret = "pjs-jwt-secret"`,
      "[apps.pusher]",
      `secret = "${SECRET}"`,
      "client_events = true",
      "",
    ].join("\n"),
  );
  return file;
}

/**
 * A `waas dev` process (in-memory store) listening on `port` (0: a free one), ready once it
 * printed `listening on`. `stop()` sends SIGTERM and waits for the exit.
 */
export async function startWaas({ port = 0 } = {}) {
  const child = spawn(
    waasBin(),
    ["dev", "--listen", `127.0.0.1:${port}`, "--store", ":memory:", "--config", configFile()],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, WAAS_LOG: process.env.WAAS_LOG ?? "warn" } },
  );
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const addr = await new Promise((resolve, reject) => {
    let out = "";
    const onData = (d) => {
      out += d;
      const m = /listening on (\S+)/.exec(out);
      if (m) {
        child.stdout.off("data", onData);
        child.stdout.resume();
        resolve(m[1]);
      }
    };
    child.stdout.on("data", onData);
    exited.then(({ code }) => reject(new Error(`waas exited (${code}) before listening: ${stderr}`)));
  });
  const port_ = Number(addr.split(":").pop());
  return {
    addr,
    port: port_,
    httpUrl: `http://${addr}`,
    child,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

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
