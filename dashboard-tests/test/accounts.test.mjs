// Accounts and app settings in headless Chromium against a real `waas dev`: an operator
// invites a tenant user, who accepts the invitation, signs in, edits an app's limits, replaces
// its HS256 secret and changes their password (their other session ends). Keeps screenshots
// of the Users, settings and Profile pages for the docs (docs/img/).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { admin, hide, launchChromium, screenshot, signIn as signInAs, startWaas, watchErrors } from "./support/waas.mjs";

let server, browser;

before(async () => {
  server = await startWaas();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A page in a browser context of its own (its own cookies: another person, or another device). */
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  // Refused forms (401, 400) are answered so on purpose; Chromium logs those statuses.
  const errors = watchErrors(page, /status of 40\d/);
  return { page, errors };
}

const signIn = (page, email, password) => signInAs(page, server, email, password);

async function adminGet(p) {
  const { status, body } = await admin(server, "GET", p);
  assert.equal(status, 200);
  return body;
}

test("invite, accept, sign in, edit an app, rotate its secret, change the password", async () => {
  // The operator invites ann into the dev tenant.
  const op = await newPage();
  await signIn(op.page, server.email, server.password);
  await op.page.getByRole("link", { name: "Users" }).click();
  await op.page.waitForURL(/\/dashboard\/users$/);
  await op.page.getByLabel("Email").fill("ann@example.test");
  await op.page.getByLabel("Tenant").fill("default");
  await op.page.getByRole("button", { name: "Invite" }).click();
  await op.page.getByText("Invitation for ann@example.test").waitFor();
  const link = (await op.page.locator("#invite-link").textContent()).trim();
  assert.match(link, /\/dashboard\/invitations\/[A-Za-z0-9_-]{20,}$/);
  await hide(op.page, "#invite-link");
  await screenshot(op.page, "dashboard-users.png");

  // Ann opens the link in her own browser, chooses a password and is signed in.
  const ann = await newPage();
  await ann.page.goto(link);
  await ann.page.getByText("a user of tenant").waitFor();
  await screenshot(ann.page, "dashboard-invitation.png");
  await ann.page.getByLabel("Password (12 characters or more)").fill("ann-first-password");
  await ann.page.getByLabel("Password again").fill("ann-first-password");
  await ann.page.getByRole("button", { name: "Create my account" }).click();
  await ann.page.waitForURL(/\/dashboard\/apps$/);
  await ann.page.getByText("tenant default").waitFor();
  // The link works once.
  const again = await (await newPage()).page.goto(link);
  assert.equal(again.status(), 404);

  // Signed out and in again with that password; a second device signs in too.
  await ann.page.getByRole("button", { name: "Sign out" }).click();
  await ann.page.waitForURL(/\/dashboard\/login$/);
  await signIn(ann.page, "ann@example.test", "ann-first-password");
  const phone = await newPage();
  await signIn(phone.page, "ann@example.test", "ann-first-password");

  // Edit the app's limits.
  await ann.page.getByRole("link", { name: "demo", exact: true }).click();
  await ann.page.getByRole("link", { name: "Settings", exact: true }).click();
  await ann.page.waitForURL(/\/dashboard\/apps\/demo\/settings$/);
  await ann.page.getByLabel("Connections per gateway").fill("42");
  await ann.page.getByRole("button", { name: "Save limits" }).click();
  await ann.page.getByText("Saved.").waitFor();
  assert.equal((await adminGet("/v1/admin/apps/demo")).limits.max_connections, 42);
  assert.equal(await ann.page.getByLabel("Connections per gateway").inputValue(), "42");

  // Replace the HS256 secret: shown once.
  await ann.page.getByRole("button", { name: "Replace the HS256 secret" }).click();
  await ann.page.getByText("HS256 secret replaced").waitFor();
  const secret = (await ann.page.locator("#shown-secret").textContent()).trim();
  assert.ok(secret.length >= 32 && secret !== "demo-secret", secret);
  await hide(ann.page, "#shown-secret");
  await screenshot(ann.page, "dashboard-app-settings.png");
  await ann.page.reload();
  assert.ok(!(await ann.page.content()).includes(secret), "not shown again");

  // Change the password: a wrong current one is refused, then the change ends the other session.
  await ann.page.getByRole("link", { name: "Profile" }).click();
  await ann.page.getByLabel("Current password").fill("not-the-password");
  await ann.page.getByLabel("New password (12 characters or more)").fill("ann-second-password");
  await ann.page.getByLabel("New password again").fill("ann-second-password");
  await ann.page.getByRole("button", { name: "Change password" }).click();
  await ann.page.getByText("The current password is wrong.").waitFor();
  await ann.page.getByLabel("Current password").fill("ann-first-password");
  await ann.page.getByLabel("New password (12 characters or more)").fill("ann-second-password");
  await ann.page.getByLabel("New password again").fill("ann-second-password");
  await ann.page.getByRole("button", { name: "Change password" }).click();
  await ann.page.getByText("Password changed.").waitFor();
  await ann.page.getByRole("button", { name: "Create a token" }).waitFor();
  await screenshot(ann.page, "dashboard-profile.png");
  await phone.page.reload();
  assert.match(phone.page.url(), /\/dashboard\/login$/, "the other session ended");
  await signIn(phone.page, "ann@example.test", "ann-second-password");

  for (const p of [op, ann, phone]) assert.deepEqual(p.errors, [], "no script or console errors");
});
