// E2EE between the Rust and TypeScript SDKs through a real `waas dev`: the Rust SDK's
// `e2ee_peer` example (built by `cargo test`/`cargo build --examples`, or E2EE_PEER_BIN) owns,
// sends and receives; this SDK does the other side. Both SDKs' keyring directories are the
// same format, so a device made by one is the same device for the other.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { Client, E2ee, Keyring } from "../dist/index.js";
import { API_KEY, APP, startWaas, targetDir, token, untilVersion, within } from "./support.mjs";

const PEER = process.env.E2EE_PEER_BIN ?? path.join(targetDir, "debug", "examples", "e2ee_peer");
let server, dir;
const running = new Set();

before(async () => {
  if (!existsSync(PEER)) {
    throw new Error(`no e2ee_peer at ${PEER}: run \`cargo build --examples\` at the repository root, or set E2EE_PEER_BIN`);
  }
  server = await startWaas();
  dir = await mkdtemp(path.join(os.tmpdir(), "waas-e2ee-rust-"));
});
after(async () => {
  for (const p of running) p.kill();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Starts `e2ee_peer`; `lines` yields its stdout lines, `done` its exit. */
function peer(name, tokenValue, channel, ...command) {
  const child = spawn(
    PEER,
    ["--url", server.url, "--app", APP, "--token", tokenValue, "--keys", path.join(dir, name), "--channel", channel, ...command],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  running.add(child);
  let stderr = "";
  const stderrWaiters = [];
  child.stderr.on("data", (d) => {
    stderr += d;
    for (const w of [...stderrWaiters]) w();
  });
  const queue = [];
  const waiting = [];
  createInterface({ input: child.stdout }).on("line", (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else queue.push(l);
  });
  const done = new Promise((resolve) =>
    child.on("exit", (code) => {
      running.delete(child);
      resolve({ code, stderr });
    }),
  );
  return {
    child,
    done,
    stderr: () => stderr,
    /** Resolves once stderr holds `text`. */
    stderrHas(text, ms = 20_000) {
      return within(
        new Promise((resolve) => {
          const check = () => {
            if (!stderr.includes(text)) return;
            stderrWaiters.splice(stderrWaiters.indexOf(check), 1);
            resolve();
          };
          stderrWaiters.push(check);
          check();
        }),
        ms,
        `"${text}" from e2ee_peer ${command.join(" ")} (stderr: ${stderr})`,
      );
    },
    /** The next stdout line parsed as JSON. */
    line: (ms = 20_000) =>
      within(
        new Promise((resolve) => {
          const l = queue.shift();
          if (l !== undefined) resolve(l);
          else waiting.push(resolve);
        }).then((l) => JSON.parse(l)),
        ms,
        `a line from e2ee_peer ${command.join(" ")} (stderr: ${stderr})`,
      ),
    /** Lines until one matches. */
    async until(match, ms = 20_000) {
      for (;;) {
        const l = await this.line(ms);
        if (match(l)) return l;
      }
    },
  };
}

const caps = (channel) => ({ subscribe: [channel], publish: [channel] });

async function tsMember(sub, channel) {
  const t = await token(server, sub, caps(channel));
  const client = await Client.connect({ url: server.url, app: APP, token: t });
  return { client, e2ee: await E2ee.start(client, await Keyring.open(path.join(dir, sub))) };
}

test("Rust owner and sender → TypeScript decrypts; TypeScript encrypts → Rust decrypts", async () => {
  const channel = "presence.interop-1";
  const owner = peer("rust-owner", API_KEY, channel, "own");
  const ready = await owner.line();
  assert.equal(ready.ready, true);

  const bob = await tsMember("ts-bob", channel);
  try {
    const room = await bob.e2ee.subscribe(channel);
    await owner.until((l) => l.shared?.members.includes("ts-bob"));
    await bob.e2ee.fetch(channel);
    assert.equal(bob.e2ee.keyring.current(channel).v, 1, "a Rust-wrapped key opens with the TS device");

    // Rust encrypts, TypeScript decrypts.
    const sender = peer("rust-alice", await token(server, "rust-alice", caps(channel)), channel, "send", "3", "--text", "from rust");
    const sent = [];
    for (let i = 0; i < 3; i++) sent.push(await sender.line());
    assert.equal((await sender.done).code, 0, sender.stderr());
    for (let i = 1; i <= 3; i++) {
      const r = await within(room.next(), 10_000, "a message from rust");
      assert.equal(r.value.error, undefined, String(r.value.error));
      assert.deepEqual(r.value.data, { n: i, text: `from rust ${i}` });
      assert.equal(r.value.message.offset, sent[i - 1].offset);
    }

    // alice left: the owner rotated, and bob's subscription took v2 from the notice by itself.
    await owner.until((l) => l.rotated?.removed === "rust-alice");
    await untilVersion(bob.e2ee, channel, 2);

    // TypeScript encrypts, Rust decrypts.
    const carolToken = await token(server, "rust-carol", caps(channel));
    const recv = peer("rust-carol", carolToken, channel, "recv", "2");
    await recv.stderrHas("ready device=");
    await owner.until((l) => l.shared?.members.includes("rust-carol"));
    await bob.e2ee.publish(channel, "msg", { from: "ts", n: 1, text: "héllo ✓" });
    await bob.e2ee.publish(channel, "msg", [1, null, "two"]);
    assert.deepEqual(await recv.line(), { from: "ts", n: 1, text: "héllo ✓" });
    assert.deepEqual(await recv.line(), [1, null, "two"]);
    assert.equal((await recv.done).code, 0, recv.stderr());

    // A restarted Rust process (the same keyring directory) reads history TS encrypted: the
    // last three messages are ours and the notice of the rotation carol's leaving caused.
    await owner.until((l) => l.rotated?.removed === "rust-carol");
    const history = peer("rust-carol", carolToken, channel, "history", "3");
    assert.deepEqual(await history.line(), { from: "ts", n: 1, text: "héllo ✓" });
    assert.deepEqual(await history.line(), [1, null, "two"]);
    assert.equal((await history.done).code, 0, history.stderr());
  } finally {
    owner.child.stdin.end();
    await owner.done;
    await bob.client.close();
  }
});

test("TypeScript owner: a Rust member gets the key, sends; a rotation excludes the member who left", async () => {
  const channel = "presence.interop-2";
  const ownerClient = await Client.connect({ url: server.url, app: APP, token: API_KEY });
  const owner = await (await E2ee.start(ownerClient, await Keyring.inMemory())).own(channel);
  const dave = await tsMember("ts-dave", channel);
  try {
    const daveShared = owner.once("shared", (e) => e.members.includes("ts-dave"));
    const room = await dave.e2ee.subscribe(channel);
    await within(daveShared, 10_000, "sharing with ts-dave");

    // The Rust member unwraps what TypeScript wrapped, and encrypts for TypeScript to read.
    const erinToken = await token(server, "rust-erin", caps(channel));
    const erinGone = owner.once("rotated", (e) => e.removed.includes("rust-erin"));
    const sender = peer("rust-erin", erinToken, channel, "send", "2", "--event", "chat");
    await sender.line();
    await sender.line();
    assert.equal((await sender.done).code, 0, sender.stderr());
    for (let i = 1; i <= 2; i++) {
      const r = await within(room.next(), 10_000, "a message from rust");
      assert.deepEqual([r.value.message.event, r.value.data], ["chat", { n: i, text: `message ${i}` }]);
    }

    // erin's `send` left the channel: the owner rotated to v2 without her.
    const rotated = await within(erinGone, 10_000, "the rotation after erin left");
    assert.deepEqual([rotated.v, rotated.members], [2, ["ts-dave"]]);
    await dave.e2ee.fetch(channel);
    assert.equal(dave.e2ee.keyring.current(channel).v, 2);
    await dave.e2ee.publish(channel, "chat", { secret: "after erin" });
    const history = peer("rust-erin", erinToken, channel, "history", "1");
    assert.deepEqual(await history.line(), { error: "unknown_key" }, "the removed Rust member cannot read v2");
    assert.equal((await history.done).code, 0, history.stderr());

    // The TS keyring directory is a Rust device too: same id from either SDK.
    const device = peer("ts-dave", "unused", channel, "device");
    assert.equal((await device.line()).device, dave.e2ee.deviceId);
  } finally {
    await owner.stop();
    await ownerClient.close();
    await dave.client.close();
  }
});
