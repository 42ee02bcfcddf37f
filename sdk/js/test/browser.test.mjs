// End to end in headless Chromium (Debian's `chromium`, driven by playwright-core): a page
// served on localhost loads the SDK's ESM build as is, connects to a real `waas dev`, receives a
// message the test publishes and publishes one back that a Node client receives.

import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { Client } from "../dist/index.js";
import { APP, API_KEY, startWaas, take, token, within } from "./support.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const PAGE = `<!doctype html><meta charset="utf-8"><title>waas sdk</title>
<script type="module">
  import * as waas from "/dist/index.js";
  window.waas = waas;
  document.title = "ready";
</script>`;

let server, web, browser, profile;

/** Serves the page and `dist/` (nothing else) on 127.0.0.1, port 0. */
async function serve() {
  const s = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/" || url.pathname === "/index.html") {
      res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
      return;
    }
    const file = path.normalize(path.join(root, url.pathname));
    if (!file.startsWith(path.join(root, "dist") + path.sep)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(file);
      const type = file.endsWith(".js") ? "text/javascript" : "application/octet-stream";
      res.writeHead(200, { "content-type": type }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => s.listen(0, "127.0.0.1", resolve));
  return s;
}

before(async () => {
  server = await startWaas();
  web = await serve();
  profile = await mkdtemp(path.join(os.tmpdir(), "waas-chromium-"));
  // A fresh, empty profile (--user-data-dir), which Playwright passes itself.
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  web?.close();
  await server?.stop();
  if (profile) await rm(profile, { recursive: true, force: true });
});

test("a page using the SDK in Chromium subscribes, receives, and publishes back", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`http://127.0.0.1:${web.address().port}/`);
  await page.waitForFunction(() => document.title === "ready");

  const node = await Client.connect({ url: server.url, app: APP, token: API_KEY });
  const back = await node.subscribe("browser.out");
  try {
    const browserToken = await token(server, "browser-user", { subscribe: ["browser.in"], publish: ["browser.out"] });
    const who = await page.evaluate(
      async ({ url, app, token }) => {
        const client = await window.waas.Client.connect({ url, app, token });
        window.client = client;
        window.sub = await client.subscribe("browser.in");
        return { sub: client.sub, native: typeof WebSocket === "function" };
      },
      { url: server.url, app: APP, token: browserToken },
    );
    assert.deepEqual(who, { sub: "browser-user", native: true });

    const offset = await server.rest.publish("browser.in", "hello", { from: "node", text: "héllo ✓" });
    const received = await page.evaluate(async () => {
      const r = await window.sub.next();
      return r.value;
    });
    assert.equal(received.offset, offset);
    assert.deepEqual(received.data, { from: "node", text: "héllo ✓" });

    const published = await page.evaluate(() => window.client.publish("browser.out", "reply", { from: "browser" }));
    const [m] = await take(back, 1);
    assert.deepEqual([m.offset, m.event, m.data], [published, "reply", { from: "browser" }]);

    // Typed errors cross into the page too.
    const refused = await page.evaluate(async () => {
      try {
        await window.client.subscribe("elsewhere.x");
        return null;
      } catch (e) {
        return { name: e.name, code: e.code, isWaas: e instanceof window.waas.WaasError };
      }
    });
    assert.deepEqual(refused, { name: "RejectedError", code: "forbidden", isWaas: true });
    await page.evaluate(() => window.client.close());
    assert.deepEqual(errors, []);
  } finally {
    await node.close();
    await page.close();
  }
});

test("in Chromium the device key lives in IndexedDB, non-extractable, and survives a reload; envelopes open across runtimes", async () => {
  const { wrapKey } = await import("../dist/index.js");
  const { aesKey, seal } = await import("../dist/e2ee/crypto.js");
  const page = await browser.newPage();
  try {
    await page.goto(`http://127.0.0.1:${web.address().port}/`);
    await page.waitForFunction(() => document.title === "ready");
    const first = await page.evaluate(async () => {
      const k = await window.waas.Keyring.openIndexedDb("waas-test");
      await k.insert("presence.r", [{ kid: "ab".repeat(16), v: 1, key: new Uint8Array(32).fill(7) }]);
      return { id: k.device.id, extractable: k.device.privateKey.extractable, pub: k.device.publicKeyB64 };
    });
    assert.equal(first.extractable, false, "the private key cannot leave the browser's crypto");

    await page.reload();
    await page.waitForFunction(() => document.title === "ready");
    // Node wraps a room key for the browser's device and seals a message with it.
    const raw = crypto.getRandomValues(new Uint8Array(32));
    const wrapped = await wrapKey(first.pub, raw);
    const envelope = await seal(await aesKey(raw), "cd".repeat(16), 2, "presence.r", "say", new TextEncoder().encode('{"from":"node"}'));
    const second = await page.evaluate(
      async ({ wrapped, envelope }) => {
        const k = await window.waas.Keyring.openIndexedDb("waas-test");
        const key = await k.device.unwrapKey(wrapped);
        await k.insert("presence.r", [{ kid: "cd".repeat(16), v: 2, key }]);
        const e2ee = await window.waas.E2ee.start({ sub: "b", keysPublish: async () => "", on: () => () => {} }, k);
        const data = await e2ee.decryptLocal("presence.r", "say", envelope);
        let moved;
        try {
          await e2ee.decryptLocal("presence.r", "shout", envelope);
        } catch (e) {
          moved = e.code;
        }
        return { id: k.device.id, versions: k.versions("presence.r").map((e) => e.v), data, moved };
      },
      { wrapped, envelope },
    );
    assert.deepEqual(second, { id: first.id, versions: [1, 2], data: { from: "node" }, moved: "decrypt_failed" });
  } finally {
    await page.close();
  }
});

test("E2EE in Chromium through waas dev: a browser member and a Node member read each other, the gateway sees envelopes", async () => {
  const { E2ee, Keyring } = await import("../dist/index.js");
  const channel = "presence.web-room";
  const caps = { subscribe: [channel], publish: [channel] };
  const ownerClient = await Client.connect({ url: server.url, app: APP, token: API_KEY });
  const owner = await (await E2ee.start(ownerClient, await Keyring.inMemory())).own(channel);
  const nodeClient = await Client.connect({ url: server.url, app: APP, token: await token(server, "node-user", caps) });
  const node = await E2ee.start(nodeClient, await Keyring.inMemory());
  const page = await browser.newPage();
  try {
    await page.goto(`http://127.0.0.1:${web.address().port}/`);
    await page.waitForFunction(() => document.title === "ready");
    const nodeShared = owner.once("shared", (e) => e.members.includes("node-user"));
    const nodeRoom = await node.subscribe(channel);
    await nodeShared;
    await node.fetch(channel);

    const webShared = owner.once("shared", (e) => e.members.includes("web-user"));
    await page.evaluate(
      async ({ url, app, token, channel }) => {
        const { Client, E2ee, Keyring } = window.waas;
        const client = await Client.connect({ url, app, token });
        window.e2ee = await E2ee.start(client, await Keyring.openIndexedDb("waas-web"));
        window.room = await window.e2ee.subscribe(channel);
      },
      { url: server.url, app: APP, token: await token(server, "web-user", caps), channel },
    );
    await webShared;

    const offset = await node.publish(channel, "say", { from: "node", text: "to the browser" });
    const inPage = await page.evaluate(async () => {
      const r = await window.room.next();
      return { offset: r.value.message.offset, data: r.value.data, error: r.value.error?.code ?? null };
    });
    assert.deepEqual(inPage, { offset, data: { from: "node", text: "to the browser" }, error: null });
    assert.ok(!JSON.stringify((await server.rest.history(channel)).messages).includes("to the browser"));

    await page.evaluate((channel) => window.e2ee.publish(channel, "say", { from: "browser" }), channel);
    let got;
    do got = (await within(nodeRoom.next(), 10_000, "the browser's message")).value;
    while (got.message.offset === offset);
    assert.deepEqual([got.error, got.data], [undefined, { from: "browser" }]);
  } finally {
    await page.close();
    await owner.stop();
    for (const c of [ownerClient, nodeClient]) await c.close();
  }
});
