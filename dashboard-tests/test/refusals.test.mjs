// What the dashboard refuses, in headless Chromium against a real `waas dev`, each asserted on
// the HTTP status and on what the page shows: a wrong password at sign-in, a form posted
// without its CSRF token, a session past `session_ttl_secs` (a `waas dev` whose settings file
// sets it to 1 s, and lets anyone sign up), and a tenant user reaching by URL for another
// tenant's app. Keeps screenshots of the sign-in, sign-up and error pages for the docs.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { admin, hide, launchChromium, screenshot, signIn, startWaas, watchErrors } from "./support/waas.mjs";

let server, shortLived, browser;

before(async () => {
  server = await startWaas();
  shortLived = await startWaas({ config: "[dashboard]\nsession_ttl_secs = 1\nself_signup = true\n" });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await shortLived?.stop();
});

/** A page with cookies of its own; refusals are answered 40x on purpose, which Chromium logs. */
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  const errors = watchErrors(page, /status of 40\d/);
  return { page, errors };
}

/** Clicks `button` and resolves with the answer to the form's POST to `path` (before redirects). */
async function submit(page, button, path) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === path),
    button.click(),
  ]);
  await page.waitForLoadState();
  return response;
}

test("a wrong password is refused: 401, the sign-in page again, no session", async () => {
  const { page, errors } = await newPage();
  const first = await page.goto(`${server.dashboard}/login`);
  assert.equal(first.status(), 200);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await screenshot(page, "dashboard-login.png");

  await page.getByLabel("Email").fill(server.email);
  await page.getByLabel("Password").fill("not-the-password");
  const answer = await submit(page, page.getByRole("button", { name: "Sign in" }), "/dashboard/login");
  assert.equal(answer.status(), 401);
  assert.match(page.url(), /\/dashboard\/login$/);
  assert.equal((await page.getByRole("alert").textContent()).trim(), "Wrong email or password.");
  assert.equal(await page.getByLabel("Password").inputValue(), "", "the password is not sent back");
  assert.equal(await page.getByRole("button", { name: "Sign out" }).count(), 0, "not signed in");
  const cookies = await page.context().cookies();
  assert.ok(!cookies.some((c) => c.name === "waas_session"), `no session cookie: ${JSON.stringify(cookies)}`);

  // Still signed out: the apps page leads back to the sign-in page.
  await page.goto(`${server.dashboard}/apps`);
  assert.match(page.url(), /\/dashboard\/login$/);
  assert.deepEqual(errors, [], "no script errors");
});

test("a form posted without its CSRF token is refused with 403 and changes nothing", async () => {
  const { page, errors } = await newPage();
  await signIn(page, server);
  const form = page.locator('form[action="/dashboard/apps"]');
  await form.getByLabel("Id").fill("forged");
  await form.getByLabel("Tenant").fill("default");
  // The hidden token removed from the form, as a form posted from elsewhere would lack it.
  assert.equal(await form.locator('input[name="csrf"]').count(), 1);
  await form.locator('input[name="csrf"]').evaluate((input) => input.remove());
  const answer = await submit(page, form.getByRole("button", { name: "Create app" }), "/dashboard/apps");
  assert.equal(answer.status(), 403);
  await page.getByRole("heading", { name: "403" }).waitFor();
  await page.getByText("The form's security token is missing or out of date").waitFor();
  assert.equal((await admin(server, "GET", "/v1/admin/apps/forged")).status, 404, "no app created");

  // The same form with its token works: the session itself was fine.
  await page.goto(`${server.dashboard}/apps`);
  await page.locator('form[action="/dashboard/apps"]').getByLabel("Id").fill("genuine");
  await page.locator('form[action="/dashboard/apps"]').getByLabel("Tenant").fill("default");
  await page.getByRole("button", { name: "Create app" }).click();
  await page.getByText("App genuine created").waitFor();
  assert.equal((await admin(server, "GET", "/v1/admin/apps/genuine")).status, 200);
  assert.deepEqual(errors, [], "no script errors");
});

test("self sign-up, then the session expires: the browser is sent to the sign-in page", async () => {
  const { page, errors } = await newPage();
  await page.goto(`${shortLived.dashboard}/login`);
  await page.getByRole("link", { name: "Create one" }).click();
  await page.waitForURL(/\/dashboard\/signup$/);
  await page.getByLabel("Organisation").fill("Initech");
  await page.getByLabel("Email").fill("peter@initech.test");
  await page.getByLabel("Password (12 characters or more)").fill("peter-password-1");
  await page.getByLabel("Password again").fill("peter-password-1");
  await screenshot(page, "dashboard-signup.png");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.waitForURL(/\/dashboard\/apps$/);
  await page.getByText("peter@initech.test").first().waitFor();

  // The session lasts 1 s: reloading soon finds it gone. Each reload is one request; the
  // loop ends when the server sends the browser to the sign-in page.
  const deadline = Date.now() + 15_000;
  let response;
  for (;;) {
    response = await page.reload();
    if (/\/dashboard\/login$/.test(page.url())) break;
    assert.ok(Date.now() < deadline, "the session did not expire within 15 s");
    await page.waitForTimeout(100);
  }
  const redirect = response.request().redirectedFrom();
  assert.ok(redirect, "the expired page answered with a redirect");
  assert.match(new URL(redirect.url()).pathname, /^\/dashboard\/apps$/);
  assert.equal((await redirect.response()).status(), 303);
  assert.equal(response.status(), 200);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.equal(await page.getByText("peter@initech.test").count(), 0, "nothing of the account shown");
  assert.deepEqual(errors, [], "no script errors");
});

test("a tenant user reaching by URL for another tenant's app gets 404 and sees nothing of it", async () => {
  for (const [tenant, name] of [["acme", "Acme"], ["globex", "Globex"]]) {
    const t = await admin(server, "POST", "/v1/admin/tenants", { id: tenant, name });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    const a = await admin(server, "POST", "/v1/admin/apps", { id: `${tenant}-shop`, tenant_id: tenant, name: `${name} Shop` });
    assert.equal(a.status, 201, JSON.stringify(a.body));
  }

  // The operator invites wile into tenant acme; wile accepts in a browser of his own.
  const op = await newPage();
  await signIn(op.page, server);
  await op.page.goto(`${server.dashboard}/users`);
  await op.page.getByLabel("Email").fill("wile@acme.test");
  await op.page.getByLabel("Tenant").fill("acme");
  await op.page.getByRole("button", { name: "Invite" }).click();
  await op.page.getByText("Invitation for wile@acme.test").waitFor();
  const link = (await op.page.locator("#invite-link").textContent()).trim();
  await hide(op.page, "#invite-link");

  const { page, errors } = await newPage();
  await page.goto(link);
  await page.getByLabel("Password (12 characters or more)").fill("wile-e-password");
  await page.getByLabel("Password again").fill("wile-e-password");
  await page.getByRole("button", { name: "Create my account" }).click();
  await page.waitForURL(/\/dashboard\/apps$/);
  await page.getByText("tenant acme").waitFor();
  assert.equal(await page.getByRole("link", { name: "acme-shop", exact: true }).count(), 1, "his own app listed");
  assert.equal(await page.getByText("globex").count(), 0, "the other tenant's app not listed");

  // His own app's pages answer; the other tenant's, the same pages, are 404.
  const own = await page.goto(`${server.dashboard}/apps/acme-shop`);
  assert.equal(own.status(), 200);
  const urls = [
    "/dashboard/apps/globex-shop",
    "/dashboard/apps/globex-shop/settings",
    "/dashboard/apps/globex-shop/usage",
    "/dashboard/apps/globex-shop/recordings",
    "/dashboard/apps/globex-shop/webhooks",
    "/dashboard/servers?app=globex-shop",
  ];
  for (const url of urls) {
    const res = await page.goto(`${server.base}${url}`);
    assert.equal(res.status(), 404, url);
    await page.getByRole("heading", { name: "404" }).waitFor();
    assert.equal((await page.locator("main p").first().textContent()).trim(), "No such page or app.", url);
    const html = await page.content();
    assert.ok(!/globex/i.test(html), `${url} shows nothing of the other app: ${html}`);
    if (url === urls[0]) await screenshot(page, "dashboard-error.png");
  }
  // The same answer as for an app that does not exist: ids cannot be probed.
  const missing = await page.goto(`${server.dashboard}/apps/no-such-app`);
  assert.equal(missing.status(), 404);
  assert.equal((await page.locator("main p").first().textContent()).trim(), "No such page or app.");

  assert.deepEqual(errors, [], "no script errors");
  assert.deepEqual(op.errors, [], "no script errors");
});
