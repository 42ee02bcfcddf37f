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
import { APPS, admin, receiver, startWaas, subscriber, token } from "./http-support.mjs";

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
  const rx = await receiver();
  const created = await admin(server, "POST", `/v1/admin/apps/${APPS.numeric.id}/webhooks`, {
    url: rx.url,
    events: ["channel_occupied"],
    channels: ["presence.py"],
    secret: APPS.numeric.secret,
    format: "pusher",
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const sub = await subscriber(server, await token(server, "pat", ["presence.py", "py-1"], APPS.numeric, { n: 1 }), ["presence.py", "py-1"], APPS.numeric);
  const [hook] = await rx.until((r) => r.length > 0);
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
      },
      encoding: "utf8",
    }),
  );
  assert.deepEqual(out.trigger, {});
  assert.deepEqual(out.trigger_batch, {});
  assert.deepEqual(out.channels_info, { channels: { "py-1": { subscription_count: 1 } } });
  assert.deepEqual(out.channel_info, { occupied: true, user_count: 1 });
  assert.deepEqual(out.users_info, { users: [{ id: "pat" }] });
  assert.deepEqual(out.validate_webhook.events, [{ name: "channel_occupied", channel: "presence.py" }]);
  assert.equal(out.validate_tampered, null);
  assert.equal(out.wrong_secret, "PusherBadAuth");

  // What Python published reached the native subscriber.
  const m1 = await sub.next();
  assert.deepEqual([m1.event, m1.data], ["py-event", { from: "python" }]);
  const m2 = await sub.next();
  assert.deepEqual([m2.event, m2.data], ["py-b1", "one"]);
  const m3 = await sub.next();
  assert.deepEqual([m3.event, m3.data], ["py-b2", { n: 2 }]);
  sub.close();
  await rx.close();
});
