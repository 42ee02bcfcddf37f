// The `pusher` PyPI library (pinned in python/requirements.txt) against WaaS's Pusher HTTP API
// and Pusher-format webhooks, run in a virtualenv this test makes under compat/pusher/.venv.
// Nothing is skipped: no python3, or a failing pip, fails the test. The library accepts only
// numeric app ids, so the app is `4242`.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import Pusher from "pusher";
import PusherJs from "pusher-js";
import { APPS, batchedHooks, hookEvents, startWaas, subscriber, token } from "./http-support.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const venv = path.join(root, ".venv");
const python = path.join(venv, "bin", "python");

/** The virtualenv with the pinned library, made (or brought up to date) once. */
function ensureVenv() {
  if (!existsSync(python)) {
    execFileSync("python3", ["-m", "venv", venv], { stdio: "inherit" });
  }
  execFileSync(python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", path.join(root, "python", "requirements.txt")], {
    stdio: "inherit",
  });
}

let server;
before(async () => {
  ensureVenv();
  server = await startWaas();
});
after(async () => {
  await server?.stop();
});

test("the Python library triggers, queries, and validates WaaS's webhooks", async () => {
  const sub = await subscriber(server, await token(server, "pat", ["presence.py", "py-1"], APPS.numeric, { n: 1 }), ["presence.py", "py-1"], APPS.numeric);
  // Real deliveries, several events batched in one request: the largest is validated.
  const hooks = await batchedHooks(server, APPS.numeric, "pyhook");
  const hook = hooks.reduce((a, b) => (hookEvents([b]).length > hookEvents([a]).length ? b : a));
  const batched = hookEvents([hook]);
  assert.ok(batched.length >= 2, `several events in one request: ${hook.rawBody}`);
  // A pusher-js client on an encrypted channel, authorized by the app's server (the Node
  // library, same master key) : it decrypts what the Python library seals.
  const masterKey = Buffer.from("fedcba9876543210fedcba9876543210").toString("base64");
  const encrypted = "private-encrypted-py";
  const appServer = new Pusher({ appId: APPS.numeric.id, key: APPS.numeric.id, secret: APPS.numeric.secret, encryptionMasterKeyBase64: masterKey });
  const client = new PusherJs(APPS.numeric.id, {
    wsHost: server.host,
    wsPort: server.port,
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    cluster: "any",
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => cb(null, appServer.authorizeChannel(socketId, channelName)),
    },
  });
  const channel = client.subscribe(encrypted);
  await new Promise((resolve, reject) => {
    channel.bind("pusher:subscription_succeeded", resolve);
    channel.bind("pusher:subscription_error", (e) => reject(new Error(JSON.stringify(e))));
  });
  const sealed = new Promise((resolve) => channel.bind("py-sealed", resolve));

  const hookFile = path.join(mkdtempSync(path.join(tmpdir(), "waas-py-")), "hook.json");
  writeFileSync(hookFile, JSON.stringify({ headers: hook.headers, body: hook.rawBody }));

  const out = JSON.parse(
    execFileSync(python, [path.join(root, "python", "check.py")], {
      env: {
        ...process.env,
        WAAS_HOST: server.host,
        WAAS_PORT: String(server.port),
        PUSHER_APP: APPS.numeric.id,
        PUSHER_SECRET: APPS.numeric.secret,
        WEBHOOK_FILE: hookFile,
        MASTER_KEY: masterKey,
        ENCRYPTED_CHANNEL: encrypted,
      },
      encoding: "utf8",
    }),
  );
  assert.deepEqual(out.trigger, {});
  assert.deepEqual(out.trigger_batch, {});
  assert.deepEqual(out.channels_info, { channels: { "py-1": { subscription_count: 1 } } });
  assert.deepEqual(out.channel_info, { occupied: true, user_count: 1 });
  assert.deepEqual(out.users_info, { users: [{ id: "pat" }] });
  assert.deepEqual(out.validate_webhook.events, batched);
  assert.equal(out.validate_webhook.time_ms, JSON.parse(hook.rawBody).time_ms);
  assert.equal(out.validate_tampered, null);
  assert.equal(out.validate_wrong_secret, null);
  assert.equal(out.wrong_secret, "PusherBadAuth");

  // What Python published reached the native subscriber.
  const m1 = await sub.next();
  assert.deepEqual([m1.event, m1.data], ["py-event", { from: "python" }]);
  const m2 = await sub.next();
  assert.deepEqual([m2.event, m2.data], ["py-b1", "one"]);
  const m3 = await sub.next();
  assert.deepEqual([m3.event, m3.data], ["py-b2", { n: 2 }]);
  assert.deepEqual(out.trigger_encrypted, {});
  assert.deepEqual(await sealed, { secret: "from python" });
  client.disconnect();
  sub.close();
});
