// E2EE between TypeScript clients through a real `waas dev`: an owner (API key) shares the room
// key with presence members and rotates it when one leaves; members decrypt, failures are typed,
// the service holds only ciphertext, and a restarted client process still decrypts.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Client, E2ee, E2eeError, Keyring } from "../dist/index.js";
import { API_KEY, APP, startWaas, token, untilVersion, within } from "./support.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const CHANNEL = "presence.secret-room";
let server, dir;

before(async () => {
  server = await startWaas();
  dir = await mkdtemp(path.join(os.tmpdir(), "waas-e2ee-"));
});
after(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const memberCaps = { subscribe: [CHANNEL], publish: [CHANNEL] };

async function member(sub) {
  const t = await token(server, sub, memberCaps);
  const client = await Client.connect({ url: server.url, app: APP, token: t });
  const e2ee = await E2ee.start(client, await Keyring.open(path.join(dir, sub)));
  return { client, e2ee, token: t };
}

/** The next decrypted item of an encrypted subscription. */
async function next(room) {
  const r = await within(room.next(), 10_000, `a message on ${room.channel}`);
  assert.equal(r.done, false);
  return r.value;
}

test("owner shares on join and rotates on leave; members decrypt; failures are typed; restart keeps keys", async () => {
  const ownerClient = await Client.connect({ url: server.url, app: APP, token: API_KEY });
  const ownerE2ee = await E2ee.start(ownerClient, await Keyring.inMemory());
  const owner = await ownerE2ee.own(CHANNEL);
  const sharedWith = (sub) => owner.once("shared", (e) => e.members.includes(sub));

  const alice = await member("alice");
  const bob = await member("bob");
  try {
    const aliceShared = sharedWith("alice");
    const aliceRoom = await alice.e2ee.subscribe(CHANNEL);
    await within(aliceShared, 10_000, "sharing with alice");
    const bobShared = sharedWith("bob");
    const bobRoom = await bob.e2ee.subscribe(CHANNEL);
    await within(bobShared, 10_000, "sharing with bob");
    await alice.e2ee.fetch(CHANNEL);
    await bob.e2ee.fetch(CHANNEL);
    assert.equal(alice.e2ee.keyring.current(CHANNEL).v, 1);

    // Alice → Bob, encrypted; Bob's subscription yields the plaintext.
    const o1 = await alice.e2ee.publish(CHANNEL, "say", { text: "hello bob", n: 1 });
    let got = await next(bobRoom);
    assert.equal(got.error, undefined, String(got.error));
    assert.deepEqual([got.message.offset, got.data], [o1, { text: "hello bob", n: 1 }]);
    assert.deepEqual((await next(aliceRoom)).data, { text: "hello bob", n: 1 }, "the sender reads its own");

    // The service holds only the envelope.
    const stored = await server.rest.history(CHANNEL, { since: o1 - 1, limit: 1 });
    const text = JSON.stringify(stored.messages);
    assert.ok(!text.includes("hello bob"), text);
    assert.equal(stored.messages[0].data.e2ee, 1);
    const envelope = stored.messages[0].data;

    // Moved to another event, tampered, unknown key, not an envelope: typed errors, never garbage.
    await ownerClient.publish(CHANNEL, "other-event", envelope);
    got = await next(bobRoom);
    assert.ok(got.error instanceof E2eeError);
    assert.equal(got.error.code, "decrypt_failed");
    const ct = Buffer.from(envelope.ct, "base64");
    ct[3] ^= 0x40;
    await ownerClient.publish(CHANNEL, "say", { ...envelope, ct: ct.toString("base64") });
    assert.equal((await next(bobRoom)).error.code, "decrypt_failed");
    await ownerClient.publish(CHANNEL, "say", { ...envelope, kid: "0".repeat(32) });
    assert.equal((await next(bobRoom)).error.code, "unknown_key");
    await ownerClient.publish(CHANNEL, "say", { text: "plain" });
    assert.equal((await next(bobRoom)).error.code, "malformed_envelope");
    // Moved to another channel: the key is found, the associated data differs.
    await assert.rejects(bob.e2ee.decryptLocal("presence.elsewhere", "say", envelope), (e) => e.code === "decrypt_failed");

    // Bob leaves: the owner rotates to v2, wrapped for Alice (and itself) only.
    const rotated = owner.once("rotated");
    await bobRoom.unsubscribe();
    const r = await within(rotated, 10_000, "rotation");
    assert.deepEqual([r.v, r.removed, r.members], [2, ["bob"], ["alice"]]);
    // Alice's subscription fetched v2 when the directory's notice arrived, unasked.
    await untilVersion(alice.e2ee, CHANNEL, 2);
    const o2 = await alice.e2ee.publish(CHANNEL, "say", { text: "after bob", n: 2 });

    // Bob may still read the channel's history, but cannot open what follows his removal.
    const page = await bob.client.history(CHANNEL, { since: o2 - 1 });
    const after = page.messages.find((m) => m.offset === o2);
    await assert.rejects(bob.e2ee.open(after), (e) => e instanceof E2eeError && e.code === "unknown_key");
    // Alice keeps v1: the first message still opens.
    const first = (await alice.client.history(CHANNEL)).messages.find((m) => m.offset === o1);
    assert.deepEqual(await alice.e2ee.open(first), { text: "hello bob", n: 1 });

    // Alice's process restarts: a new process on the same keyring directory decrypts both
    // versions from the keys on disk alone.
    await alice.client.close();
    const { stdout } = await promisify(execFile)(process.execPath, [
      path.join(here, "fixtures", "e2ee-reader.mjs"),
      path.join(dir, "alice"),
      server.url,
      APP,
      alice.token,
      CHANNEL,
    ]);
    const report = JSON.parse(stdout.trim().split("\n").pop());
    assert.equal(report.device, alice.e2ee.deviceId, "the same device after the restart");
    const byOffset = Object.fromEntries(report.local.map((x) => [x.offset, x]));
    assert.deepEqual(byOffset[o1].data, { text: "hello bob", n: 1 });
    assert.deepEqual(byOffset[o2].data, { text: "after bob", n: 2 });
  } finally {
    await owner.stop();
    await ownerClient.close();
    await alice.client.close();
    await bob.client.close();
  }
});

test("a member token without caps.share cannot share: not_shared", async () => {
  const m = await member("mallory");
  try {
    await assert.rejects(m.e2ee.rotate(CHANNEL, []), (e) => e instanceof E2eeError && e.code === "not_shared");
    // Nobody shared this channel's key with mallory: nothing to encrypt with.
    await assert.rejects(m.e2ee.publish(CHANNEL, "say", 1), (e) => e instanceof E2eeError && e.code === "unknown_key");
  } finally {
    await m.client.close();
  }
});
