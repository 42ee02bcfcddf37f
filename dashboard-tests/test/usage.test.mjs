// The Usage page in headless Chromium against a real `waas dev` that reports usage every 200 ms:
// a subscriber connects (a WebSocket from another tab), messages are published over
// REST, and the page's live figures and chart data change without a reload. Keeps a screenshot
// for the docs (docs/img/dashboard-usage.png).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { launchPersistent, screenshot, signIn, startWaas, watchErrors } from "./support/waas.mjs";

let server, browser;

before(async () => {
  // Usage reported every 200 ms.
  server = await startWaas({ args: ["--usage-report-interval-ms", "200"] });
  browser = await launchPersistent({ viewport: { width: 1100, height: 900 } });
});

after(async () => {
  await browser?.close();
  await server?.stop();
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
  const errors = watchErrors(page);

  await signIn(page, server);
  await page.getByRole("link", { name: "demo", exact: true }).click();
  await page.getByRole("link", { name: "Usage", exact: true }).click();
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
  await screenshot(page, "dashboard-usage.png");

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
