// The Usage page in headless Chromium against a real `waas dev` that reports usage every 200 ms:
// a subscriber connects (a WebSocket from another tab), messages are published over
// REST, and the page's live figures and chart data change without a reload. Keeps a screenshot
// for the docs (docs/img/dashboard-usage.png).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";

function waasBin() {
  const target = process.env.CARGO_TARGET_DIR ? path.resolve(repo, process.env.CARGO_TARGET_DIR) : path.join(repo, "target");
  const bin = process.env.WAAS_BIN ?? path.join(target, "debug", "waas");
  if (!existsSync(bin)) {
    throw new Error(`no waas binary at ${bin}: run \`cargo build -p waas\` at the repository root, or set WAAS_BIN`);
  }
  return bin;
}

/** `waas dev` on port 0, reporting usage every 200 ms; its address, dev sign-in and demo token. */
async function startWaas() {
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" };
  delete env.WAAS_DASHBOARD_ADMIN_EMAIL;
  delete env.WAAS_DASHBOARD_ADMIN_PASSWORD;
  const args = ["dev", "--listen", "127.0.0.1:0", "--store", ":memory:", "--usage-report-interval-ms", "200"];
  const child = spawn(waasBin(), args, { stdio: ["ignore", "pipe", "pipe"], env });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const banner = await new Promise((resolve, reject) => {
    let out = "";
    const onData = (d) => {
      out += d;
      if (/listening on (\S+)/.test(out)) {
        child.stdout.off("data", onData);
        child.stdout.resume();
        resolve(out);
      }
    };
    child.stdout.on("data", onData);
    exited.then(({ code }) => reject(new Error(`waas exited (${code}) before listening: ${stderr}`)));
  });
  const login = /dev sign-in: (\S+) \/ (\S+)\)/.exec(banner);
  const token = /demo token\s+(\S+)/.exec(banner);
  assert.ok(login && token, `the banner prints the dev sign-in and a demo token:\n${banner}`);
  return {
    addr: /listening on (\S+)/.exec(banner)[1],
    dashboard: /dashboard\s+(http:\/\/\S+)/.exec(banner)[1],
    email: login[1],
    password: login[2],
    token: token[1],
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

let server, browser, profile;

before(async () => {
  server = await startWaas();
  profile = await mkdtemp(path.join(os.tmpdir(), "waas-usage-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (profile) await rm(profile, { recursive: true, force: true });
});

async function publish(n) {
  for (let i = 0; i < n; i++) {
    const r = await fetch(`http://${server.addr}/v1/apps/demo/publish`, {
      method: "POST",
      headers: { Authorization: "Bearer demo-key", "Content-Type": "application/json" },
      body: JSON.stringify({ channel: "room", event: "reading", data: { i } }),
    });
    assert.equal(r.status, 200, await r.text());
  }
}

/** The `data-value` of a live figure, once the page has one. */
const value = (page, id) => page.locator(`#${id}`).getAttribute("data-value");

test("the live usage chart moves as messages are published, without a reload", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });

  await page.goto(server.dashboard);
  await page.getByLabel("Email").fill(server.email);
  await page.getByLabel("Password").fill(server.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/dashboard\/apps$/);
  await page.getByRole("link", { name: "demo", exact: true }).click();
  await page.getByRole("link", { name: "Usage and live statistics" }).click();
  await page.waitForURL(/\/dashboard\/apps\/demo\/usage$/);

  // The first load: nothing yet.
  await page.waitForFunction(() => document.getElementById("live-published").dataset.value === "0");
  const published = page.locator('#usage-live figure[data-series="published"]');
  assert.equal(await published.getAttribute("data-total"), "0");
  const before = await published.getAttribute("data-points");
  assert.match(before, /^0(,0)*$/, "all zeros at first");
  // A mark that a reload would wipe.
  await page.evaluate(() => {
    window.notReloaded = true;
  });

  // A subscriber in another tab (it outlives the reload below), then 6 messages on its channel.
  const tab = await browser.newPage();
  await tab.goto(`http://${server.addr}/healthz`);
  await tab.evaluate(async (token) => {
    const ws = new WebSocket(`ws://${location.host}/v1/apps/demo/ws?token=${token}`);
    window.subscriber = ws;
    await new Promise((resolve, reject) => {
      ws.onerror = reject;
      ws.onmessage = (e) => {
        const f = JSON.parse(e.data);
        if (f.op === "ready") ws.send(JSON.stringify({ op: "subscribe", id: 1, channel: "room" }));
        if (f.op === "ack" && f.id === 1) resolve();
      };
    });
  }, server.token);
  await publish(6);

  await page.waitForFunction(
    () => ["live-published", "live-delivered"].every((id) => document.getElementById(id).dataset.value === "6"),
    null,
    { timeout: 20_000 },
  );
  await page.waitForFunction(() => document.getElementById("live-connections").dataset.value === "1", null, {
    timeout: 20_000,
  });
  assert.equal(await value(page, "live-published"), "6");
  assert.equal(await page.locator("#live-published").textContent(), "6");
  assert.equal(await published.getAttribute("data-total"), "6");
  const after = await published.getAttribute("data-points");
  assert.notEqual(after, before, "the chart's data moved");
  assert.ok(after.split(",").map(Number).includes(6), `this minute's point holds the 6: ${after}`);
  const line = await published.locator("polyline.line").getAttribute("points");
  assert.ok(line && line.split(" ").length > 1, "a line is drawn");
  assert.equal(await page.evaluate(() => window.notReloaded), true, "no reload");
  assert.match(await page.locator("#live-status").textContent(), /^updated/);

  // The history chart by hour counts them too (loaded once: reload the page for it).
  await page.reload();
  await page.waitForFunction(
    () => document.querySelector('#usage-history figure[data-series="published"]')?.dataset.total === "6",
    null,
    { timeout: 10_000 },
  );
  await page.waitForFunction(() => document.getElementById("live-connections").dataset.value === "1");
  await mkdir(path.join(repo, "docs", "img"), { recursive: true });
  await page.screenshot({ path: path.join(repo, "docs", "img", "dashboard-usage.png"), fullPage: true });

  await page.getByRole("link", { name: "By day" }).click();
  await page.waitForURL(/step=day$/);
  await page.waitForFunction(
    () => document.querySelector('#usage-history figure[data-series="delivered"]')?.dataset.total === "6",
    null,
    { timeout: 10_000 },
  );
  await tab.close();
  assert.deepEqual(errors, [], "no script or console errors");
});
