// Test support: real `waas dev` processes on port 0, tokens, a TCP proxy that can cut
// connections, and waiting for events without sleeping.

import { spawn } from "node:child_process";
import net from "node:net";
import { ServerClient } from "../dist/index.js";

import { waasBin } from "../../../test-support/js/cluster.mjs";

export { repo, targetDir, waasBin } from "../../../test-support/js/cluster.mjs";

export const APP = "demo";
export const API_KEY = "demo-key";

/**
 * A `waas dev` process (in-memory store) listening on `port` (0: a free one), ready once it
 * printed `listening on`. `stop()` sends SIGTERM and waits for the exit.
 */
export async function startWaas({ port = 0, args = [] } = {}) {
  const child = spawn(
    waasBin(),
    ["dev", "--listen", `127.0.0.1:${port}`, "--store", ":memory:", ...args],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" } },
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
  const server = {
    addr,
    port: Number(addr.split(":").pop()),
    url: `ws://${addr}`,
    httpUrl: `http://${addr}`,
    rest: new ServerClient(`http://${addr}`, APP, API_KEY),
    child,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  return server;
}

/** A token for `sub` minted by the server (`POST /tokens`); every channel unless `caps` says. */
export async function token(server, sub, caps = { subscribe: [">"], publish: [">"], call: ["/"] }, extra = {}) {
  const { token } = await server.rest.mintToken({ sub, caps, ...extra });
  return token;
}

/** Resolves with the first event of `type` on `client` matching `filter`, or fails after `ms`. */
export function nextEvent(client, type, filter = () => true, ms = 10_000) {
  return within(client.once(type, filter), ms, `event ${type}`);
}

export function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The next `n` messages of a subscription. */
export async function take(sub, n, ms = 10_000) {
  const out = [];
  while (out.length < n) {
    const r = await within(sub.next(), ms, `message ${out.length + 1} of ${n} on ${sub.channel}`);
    if (r.done) throw new Error(`subscription ${sub.channel} ended after ${out.length} messages`);
    out.push(r.value);
  }
  return out;
}

/**
 * A TCP proxy on 127.0.0.1, port 0, to `target` ("host:port"). `cut()` destroys every
 * connection and refuses new ones until `restore()`: a network outage, without touching the
 * server (whose history then still holds what was missed). `freeze()` silently drops whatever
 * the current connections carry from then on, both ways (a dead peer that never closes); new
 * connections work.
 */
export async function startProxy(target) {
  const i = target.lastIndexOf(":");
  const [host, port] = [target.slice(0, i), Number(target.slice(i + 1))];
  const pairs = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(port, host);
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    client.on("data", (d) => pair.frozen || upstream.write(d));
    upstream.on("data", (d) => pair.frozen || client.write(d));
    const close = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = `127.0.0.1:${server.address().port}`;
  const destroyAll = () => {
    for (const p of pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    pairs.clear();
  };
  return {
    url: `ws://${addr}`,
    connections: () => pairs.size,
    cut() {
      down = true;
      destroyAll();
    },
    restore() {
      down = false;
    },
    freeze() {
      for (const p of pairs) p.frozen = true;
    },
    close() {
      down = true;
      destroyAll();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A URL where nothing listens (a port bound, then released). */
export async function deadUrl() {
  const s = net.createServer();
  await new Promise((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = s.address().port;
  await new Promise((resolve) => s.close(resolve));
  return `ws://127.0.0.1:${port}`;
}

/** Resolves once `e2ee`'s keyring holds version `v` (or later) of `channel`'s room key. */
export function untilVersion(e2ee, channel, v, ms = 10_000) {
  const held = () => (e2ee.keyring.current(channel)?.v ?? 0) >= v;
  if (held()) return Promise.resolve();
  return within(e2ee.once("keys", held), ms, `room key v${v} of ${channel}`);
}
