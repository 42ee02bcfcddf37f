// The dashboard in headless Chromium (Debian's `chromium`, driven by playwright-core) against a
// real `waas dev` process: sign in with the dev login the banner prints, create an app through
// the form, see it listed, and keep a screenshot of the Apps page for the docs
// (docs/img/dashboard-apps.png).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { hide, launchPersistent, screenshot, startWaas, watchErrors } from "./support/waas.mjs";

let server, browser;

before(async () => {
  server = await startWaas();
  browser = await launchPersistent();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("sign in, create an app, see it listed", async () => {
  const page = await browser.newPage();
  // The wrong password below is answered 401 on purpose; Chromium logs that status.
  const errors = watchErrors(page, /status of 401/);

  await page.goto(server.dashboard);
  assert.match(page.url(), /\/dashboard\/login$/, "signed out: the sign-in page");
  await page.getByLabel("Email").fill(server.email);
  await page.getByLabel("Password").fill("not-the-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Wrong email or password.").waitFor();

  await page.getByLabel("Password").fill(server.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/dashboard\/apps$/);
  await page.getByRole("link", { name: "demo", exact: true }).waitFor();

  await page.getByLabel("Id").fill("chat");
  await page.getByLabel("Name").fill("Team chat");
  await page.getByLabel("Tenant").fill("default");
  await page.getByRole("button", { name: "Create app" }).click();
  await page.getByText("App chat created").waitFor();
  const apiKey = await page.locator("#created-api-key").textContent();
  assert.ok(apiKey && apiKey.length > 10, "the new API key is shown once");
  const rows = await page.locator("table.apps tbody tr").allTextContents();
  assert.ok(rows.some((r) => r.includes("chat") && r.includes("Team chat")), `listed: ${rows}`);

  // Secrets do not go into the screenshot kept in the repository, even throwaway ones.
  for (const id of ["#created-api-key", "#created-jwt-secret"]) await hide(page, id);
  await screenshot(page, "dashboard-apps.png");

  await page.getByRole("link", { name: "chat", exact: true }).first().click();
  await page.waitForURL(/\/dashboard\/apps\/chat$/);
  await page.getByText("Team chat").first().waitFor();
  await screenshot(page, "dashboard-app.png");

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/dashboard\/login$/);
  await page.goto(`${server.dashboard}/apps`);
  assert.match(page.url(), /\/dashboard\/login$/, "signed out for good");
  assert.deepEqual(errors, [], "no script or console errors");
});
