// The `waas dev` process every Pusher compatibility test runs against: found the way
// sdk/js's tests find it, configured with Pusher-enabled apps, on a free loopback port.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

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
