// Recordings from a server with the REST client, against a real `waas dev`.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { HttpError } from "../dist/index.js";
import { startWaas } from "./support.mjs";

let server;
before(async () => {
  server = await startWaas();
});
after(async () => {
  await server?.stop();
});

/** Reads the recording until `done(info)`, failing after `ms` (the recorder stores asynchronously). */
async function until(id, done, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const info = await server.rest.recording(id);
    if (done(info)) return info;
    if (Date.now() > deadline) throw new Error(`recording ${id} never got there: ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("a server starts, inspects and stops a recording of matching channels", async () => {
  const rec = await server.rest.startRecording({ name: "checkout bug", channels: ["orders.*"], maxEvents: 100 });
  assert.match(rec.id, /^rec_/);
  assert.equal(rec.status, "recording");
  assert.equal(rec.appId, "demo");
  assert.deepEqual(rec.channels, ["orders.*"]);
  assert.equal(rec.maxEvents, 100);
  for (const n of [1, 2, 3]) await server.rest.publish("orders.eu", "paid", { n });
  await server.rest.publish("chat.x", "say", "not recorded");
  const seen = await until(rec.id, (i) => i.eventCount >= 3);
  const stopped = await server.rest.stopRecording(rec.id);
  assert.equal(stopped.status, "stopped");
  assert.equal(stopped.stopReason, "stopped");
  assert.equal(stopped.eventCount, 3, `only orders.* is recorded (saw ${seen.eventCount})`);
  assert.ok(stopped.stoppedAt >= stopped.startedAt);
});

test("bad recordings get the documented errors", async () => {
  await assert.rejects(server.rest.startRecording({ name: "x", channels: ["a..b"] }), (e) => {
    assert.ok(e instanceof HttpError);
    assert.equal(e.status, 400);
    assert.equal(e.code, "invalid_channel");
    return true;
  });
  await assert.rejects(server.rest.recording("rec_missing"), (e) => e instanceof HttpError && e.status === 404);
});
