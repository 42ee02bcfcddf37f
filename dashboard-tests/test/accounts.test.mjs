// Accounts and app settings in headless Chromium against a real `waas dev`: an operator
// invites a tenant user, who accepts the invitation, signs in, edits an app's limits, replaces
// its HS256 secret and changes their password (their other session ends). Keeps screenshots
// of the Users, settings and Profile pages for the docs (docs/img/).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const OPERATOR_TOKEN = "dev-operator-token";

function waasBin() {
  const target = process.env.CARGO_TARGET_DIR ? path.resolve(repo, process.env.CARGO_TARGET_DIR) : path.join(repo, "target");
  const bin = process.env.WAAS_BIN ?? path.join(target, "debug", "waas");
  if (!existsSync(bin)) {
    throw new Error(`no waas binary at ${bin}: run \`cargo build -p waas\` at the repository root, or set WAAS_BIN`);
  }
  return bin;
}

/** `waas dev` on port 0 with an in-memory store; resolves with its address and dev sign-in. */
async function startWaas() {
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" };
  delete env.WAAS_DASHBOARD_ADMIN_EMAIL;
  delete env.WAAS_DASHBOARD_ADMIN_PASSWORD;
  const child = spawn(waasBin(), ["dev", "--listen", "127.0.0.1:0", "--store", ":memory:"], {
    stdio: ["ignore", "pipe", "pipe"],
    env,
  });
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
  const dashboard = /dashboard\s+(http:\/\/\S+)/.exec(banner)?.[1];
  const login = /dev sign-in: (\S+) \/ (\S+)\)/.exec(banner);
  assert.ok(dashboard && login, `the banner prints the dashboard URL and dev sign-in:\n${banner}`);
  return {
    base: new URL(dashboard).origin,
    dashboard,
    email: login[1],
    password: login[2],
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

let server, browser;

before(async () => {
  server = await startWaas();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A page in a browser context of its own (its own cookies: another person, or another device). */
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    // Refused forms (401, 400) are answered so on purpose; Chromium logs those statuses.
    if (m.type() === "error" && !/status of 40\d/.test(m.text())) errors.push(m.text());
  });
  return { page, errors };
}

async function signIn(page, email, password) {
  await page.goto(`${server.dashboard}/login`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/dashboard\/apps$/);
}

async function adminGet(p) {
  const res = await fetch(`${server.base}${p}`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
  assert.equal(res.status, 200);
  return res.json();
}

/** Secrets do not go into screenshots kept in the repository, even throwaway ones. */
async function hide(page, selector) {
  const el = page.locator(selector);
  if ((await el.count()) > 0) {
    await el.evaluate((e) => {
      e.textContent = "•••• (hidden in this screenshot) ••••";
    });
  }
}

async function screenshot(page, name) {
  await mkdir(path.join(repo, "docs", "img"), { recursive: true });
  await page.screenshot({ path: path.join(repo, "docs", "img", name), fullPage: true });
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
  await ann.page.getByRole("link", { name: "Settings, keys and tokens" }).click();
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
