// The `waas dev` process every Pusher compatibility test runs against: found the way
// sdk/js's tests find it, configured with Pusher-enabled apps, on a free loopback port.

import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { waasBin } from "../../../test-support/js/cluster.mjs";

export { repo, targetDir, waasBin } from "../../../test-support/js/cluster.mjs";

/** A `waas dev` config file with `apps`: `{ id, apiKey, secret, clientEvents }` each. */
function configFile(apps) {
  const dir = mkdtempSync(path.join(tmpdir(), "waas-pusher-"));
  const file = path.join(dir, "waas.toml");
  const lines = [];
  for (const app of apps) {
    lines.push(
      "[[apps]]",
      `id = "${app.id}"`,
      `api_keys = ["${app.apiKey}"]`,
      `jwt_secret = "${app.id}-jwt-secret"`,
      "[apps.pusher]",
      `secret = "${app.secret}"`,
      `client_events = ${Boolean(app.clientEvents)}`,
      "",
    );
  }
  writeFileSync(file, lines.join("\n"));
  return file;
}

/**
 * A `waas dev` process (in-memory store) serving `apps`, listening on `port` (0: a free one),
 * ready once it printed `listening on`. `stop()` sends a signal (SIGTERM) and waits for the exit.
 */
export async function startWaas({ apps, port = 0 }) {
  const child = spawn(
    waasBin(),
    ["dev", "--listen", `127.0.0.1:${port}`, "--store", ":memory:", "--config", configFile(apps)],
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
  const colon = addr.lastIndexOf(":");
  return {
    addr,
    host: addr.slice(0, colon),
    port: Number(addr.slice(colon + 1)),
    httpUrl: `http://${addr}`,
    child,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
