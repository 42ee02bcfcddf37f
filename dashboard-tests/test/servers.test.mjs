// The Servers page in headless Chromium against a real `waas dev`: a trusted server connected
// with the Rust SDK under a name (sdk/rust/examples/named_server.rs) appears online with a
// latency figure, then goes offline when it disconnects, all without a reload. Keeps a
// screenshot for the docs (docs/img/dashboard-servers.png).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { after, before, test } from "node:test";
import { awaitLine, built, launchPersistent, screenshot, signIn, startWaas, watchErrors } from "./support/waas.mjs";

let waas, browser;

before(async () => {
  waas = await startWaas();
  browser = await launchPersistent();
});

after(async () => {
  await browser?.close();
  await waas?.stop();
});

test("a named SDK server appears online with a latency, then offline, without a reload", async () => {
  const page = await browser.newPage();
  const errors = watchErrors(page);

  await signIn(page, waas);
  await page.getByRole("link", { name: "Servers" }).click();
  await page.waitForURL(/\/dashboard\/servers$/);
  await page.getByText("No server has connected yet").waitFor();
  // Operators see the gateway nodes: this process's one gateway, online.
  await page.locator("#nodes tbody tr.online").first().waitFor();
  // Set once; a reload would lose it.
  await page.evaluate(() => {
    window.loadedOnce = true;
  });

  const server = spawn(
    built("NAMED_SERVER_BIN", path.join("examples", "named_server"), "cargo build -p waas-sdk --example named_server"),
    [waas.base, "checkout-api-1"],
    { stdio: ["pipe", "pipe", "inherit"], env: { ...process.env, WAAS_APP_ID: "demo", WAAS_API_KEY: "demo-key" } },
  );
  const serverExited = new Promise((resolve) => server.once("exit", (code) => resolve({ code })));
  try {
    const [, id] = await awaitLine(server.stdout, /connected (\S+)\n/, serverExited, "named_server");
    const row = page.locator(`#servers tr[data-connection="${id}"]`);
    await row.and(page.locator("tr.online")).waitFor();
    // The first figure comes with the gateway's report after the first pong.
    await page.waitForFunction(
      (selector) => /^\d+(\.\d)? ms$/.test(document.querySelector(selector)?.textContent ?? ""),
      `#servers tr[data-connection="${id}"] td.latency`,
    );
    const cells = await row.locator("td").allTextContents();
    assert.equal(cells[0], "online");
    assert.equal(cells[1], "checkout-api-1");
    assert.equal(cells[2], "demo");
    assert.ok(id.includes(cells[3]), `the gateway is the one in the connection id: ${cells}`);
    assert.match(cells[5], /^\d+ s ago$/);
    assert.match(cells[6], /^\d+(\.\d)? ms$/, `a latency figure: ${cells}`);
    assert.ok(await page.getByText("No server has connected yet").isHidden());

    await screenshot(page, "dashboard-servers.png");

    // Closing its standard input makes it close its connection.
    server.stdin.end();
    assert.equal((await serverExited).code, 0);
    await row.and(page.locator("tr.offline")).waitFor();
    const after = await row.locator("td").allTextContents();
    assert.equal(after[0], "offline");
    assert.match(after[5], /left \d+ s ago$/);
    assert.equal(await page.evaluate(() => window.loadedOnce), true, "no reload");
    assert.deepEqual(errors, [], "no script or console errors");
  } finally {
    if (server.exitCode === null) server.kill("SIGKILL");
  }
});
