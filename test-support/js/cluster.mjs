// A WaaS cluster of real processes for the JavaScript test suites (sdk/js, compat/pusher), as
// test-support's Rust `Cluster` makes one: a `waas control-plane` on a fresh PostgreSQL schema and
// `waas gateway`s over the shared NATS (JetStream) under a unique subject prefix, all on port 0.
// `stop()` ends them, drops the schema and deletes the JetStream streams made under the prefix.
// Also a loopback TCP balancer in front of the gateways, as a deployment has one. Node builtins
// only, so that each package imports it by path without installing anything.

import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "../..");
export const targetDir = process.env.CARGO_TARGET_DIR
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

const OPERATOR = "test-operator-token";
export const natsUrl = process.env.WAAS_TEST_NATS_URL ?? "nats://127.0.0.1:4222";
const pgUrl = process.env.WAAS_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** `waas <args>` (listening on port 0), resolved once it printed `listening on`. */
async function child(args) {
  const p = spawn(waasBin(), args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, WAAS_LOG: process.env.WAAS_LOG ?? "warn" } });
  let stderr = "";
  p.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => p.once("exit", resolve));
  const addr = await new Promise((resolve, reject) => {
    let out = "";
    const onData = (d) => {
      out += d;
      const m = /listening on (\S+)/.exec(out);
      if (m) {
        p.stdout.off("data", onData);
        p.stdout.resume();
        resolve(m[1]);
      }
    };
    p.stdout.on("data", onData);
    exited.then((code) => reject(new Error(`waas ${args[0]} exited (${code}) before listening: ${stderr}`)));
  });
  const colon = addr.lastIndexOf(":");
  return {
    addr,
    host: addr.slice(0, colon),
    port: Number(addr.slice(colon + 1)),
    url: `ws://${addr}`,
    http: `http://${addr}`,
    /** Ends the process with `signal` (SIGKILL: a crash) and waits for its exit. */
    async stop(signal = "SIGTERM") {
      if (p.exitCode === null && p.signalCode === null) p.kill(signal);
      await exited;
    },
  };
}

const psql = (sql) => promisify(execFile)("psql", [pgUrl, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]);

/**
 * A control-plane and `gateways` gateways. `createApp(id, fields)` makes an app with `appDefaults`
 * and `fields` (such as `limits`) and gives its id, API key, JWT secret and Pusher secret;
 * `addGateway(extra)` starts another gateway with more flags.
 */
export async function startCluster(gateways = 2, appDefaults = {}) {
  const prefix = `t${randomBytes(8).toString("hex")}`;
  const schema = `waas_t_${randomBytes(8).toString("hex")}`;
  await psql(`CREATE SCHEMA ${schema}`);
  const databaseUrl = `${pgUrl}${pgUrl.includes("?") ? "&" : "?"}options=-c%20search_path%3D${schema}`;
  const procs = [];
  const cleanup = async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await deleteStreams(prefix).catch(() => {});
  };
  try {
    const cp = await child([
      "control-plane", "--listen", "127.0.0.1:0", "--nats", natsUrl, "--database-url", databaseUrl,
      "--operator-token", OPERATOR, "--subject-prefix", prefix,
    ]);
    procs.push(cp);
    const gws = [];
    const addGateway = async (extra = []) => {
      const gw = await child(["gateway", "--listen", "127.0.0.1:0", "--nats", natsUrl, "--subject-prefix", prefix, ...extra]);
      procs.push(gw);
      gws.push(gw);
      return gw;
    };
    for (let i = 0; i < gateways; i++) await addGateway();
    const admin = async (method, path, body) => {
      const res = await fetch(cp.http + path, {
        method,
        headers: { authorization: `Bearer ${OPERATOR}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: await res.json().catch(() => null) };
    };
    return {
      gateways: gws,
      /** Starts one more gateway with `extra` flags (`["--regions", "..."]`, say). */
      addGateway,
      admin,
      async createApp(id, fields = {}) {
        const t = await admin("POST", "/v1/admin/tenants", { id: "t", name: "Tenant" });
        if (t.status !== 201 && t.status !== 409) throw new Error(`tenant: ${t.status}`);
        const a = await admin("POST", "/v1/admin/apps", { id, tenant_id: "t", ...appDefaults, ...fields });
        if (a.status !== 201) throw new Error(`app: ${a.status} ${JSON.stringify(a.body)}`);
        return { id, apiKey: a.body.api_key, jwtSecret: a.body.jwt_secret, secret: a.body.pusher_secret };
      },
      stop: cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/**
 * A TCP balancer on 127.0.0.1, port 0, in front of `targets` (objects with `host` and `port`):
 * each new connection goes to the first target that accepts it, as a load balancer with health
 * checks sends clients to a live node. `connections` lists, per accepted connection, the index
 * of the target it went to.
 */
export async function startBalancer(targets) {
  const sockets = new Set();
  const connections = [];
  const connectTo = (i) =>
    new Promise((resolve) => {
      if (i >= targets.length) return resolve(null);
      const upstream = net.connect(targets[i].port, targets[i].host);
      upstream.once("connect", () => resolve({ upstream, i }));
      upstream.once("error", () => resolve(connectTo(i + 1)));
    });
  const server = net.createServer(async (client) => {
    sockets.add(client);
    client.pause();
    const found = await connectTo(0);
    if (!found) return client.destroy();
    const { upstream, i } = found;
    connections.push(i);
    sockets.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: server.address().port,
    connections,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Deletes the JetStream streams whose subjects are under `prefix`, over NATS's text protocol
 * (the JetStream API is request/reply on `$JS.API.*`; no client library needed for two calls).
 */
async function deleteStreams(prefix) {
  const [host, port] = natsUrl.replace("nats://", "").split(",")[0].split(":");
  const socket = net.connect(Number(port), host);
  let buffer = Buffer.alloc(0);
  let waiting;
  socket.on("data", (d) => {
    buffer = Buffer.concat([buffer, d]);
    for (;;) {
      const eol = buffer.indexOf("\r\n");
      if (eol < 0) return;
      const line = buffer.subarray(0, eol).toString();
      if (line.startsWith("PING")) {
        socket.write("PONG\r\n");
        buffer = buffer.subarray(eol + 2);
      } else if (line.startsWith("MSG")) {
        const size = Number(line.split(" ").pop());
        if (buffer.length < eol + 2 + size + 2) return;
        const payload = buffer.subarray(eol + 2, eol + 2 + size).toString();
        buffer = buffer.subarray(eol + 2 + size + 2);
        waiting?.(JSON.parse(payload));
      } else {
        buffer = buffer.subarray(eol + 2);
      }
    }
  });
  const request = (subject, body) =>
    new Promise((resolve) => {
      waiting = resolve;
      const text = JSON.stringify(body);
      socket.write(`PUB ${subject} _INBOX.cleanup ${Buffer.byteLength(text)}\r\n${text}\r\n`);
    });
  await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  socket.write('CONNECT {"verbose":false}\r\nSUB _INBOX.cleanup 1\r\n');
  try {
    const names = await request("$JS.API.STREAM.NAMES", { offset: 0, subject: `${prefix}.>` });
    for (const name of names.streams ?? []) await request(`$JS.API.STREAM.DELETE.${name}`, {});
  } finally {
    socket.destroy();
  }
}
