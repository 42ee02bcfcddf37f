// The examples run against a real `waas dev` and say what their comments promise.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startWaas } from "./support.mjs";

const examples = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "examples");

test("examples/chat.mjs: an encrypted room, the service stores envelopes, a leave rotates the key", async () => {
  const server = await startWaas();
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(examples, "chat.mjs"), server.httpUrl], {
      timeout: 30_000,
    });
    assert.match(stdout, /\[bob\] \d+ \{"text":"hi Bob"\}/);
    assert.match(stdout, /\[alice\] \d+ \{"text":"hello Alice"\}/);
    assert.match(stdout, /what the service stored: \{"e2ee":1,"kid":"[0-9a-f]{32}","v":1/);
    assert.match(stdout, /bob left: the room key is now version 2, shared with alice/);
  } finally {
    await server.stop();
  }
});
