// The dashboard in headless Chromium (Debian's `chromium`, driven by playwright-core) against a
// real `waas dev` process: sign in with the dev login the banner prints, create an app through
// the form, see it listed, and keep a screenshot of the Apps page for the docs
// (docs/img/dashboard-apps.png).

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

/** The `waas` binary: `WAAS_BIN`, else `$CARGO_TARGET_DIR/debug/waas` (`cargo build` makes it). */
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
  const addr = /listening on (\S+)/.exec(banner)[1];
  const dashboard = /dashboard\s+(http:\/\/\S+)/.exec(banner)?.[1];
  const login = /dev sign-in: (\S+) \/ (\S+)\)/.exec(banner);
  assert.ok(dashboard, `the banner prints the dashboard URL:\n${banner}`);
  assert.ok(login, `the banner prints the dev sign-in:\n${banner}`);
  return {
    addr,
    dashboard,
    email: login[1],
    password: login[2],
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

let server, browser, profile;

before(async () => {
  server = await startWaas();
  profile = await mkdtemp(path.join(os.tmpdir(), "waas-dashboard-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 720 },
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
  await server?.stop();
  if (profile) await rm(profile, { recursive: true, force: true });
});

test("sign in, create an app, see it listed", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    // The wrong password below is answered 401 on purpose; Chromium logs that status.
    if (m.type() === "error" && !m.text().includes("status of 401")) errors.push(m.text());
  });

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
  for (const id of ["#created-api-key", "#created-jwt-secret"]) {
    await page.locator(id).evaluate((el) => {
      el.textContent = "•••• (hidden in this screenshot) ••••";
    });
  }
  await mkdir(path.join(repo, "docs", "img"), { recursive: true });
  await page.screenshot({ path: path.join(repo, "docs", "img", "dashboard-apps.png"), fullPage: true });

  await page.getByRole("link", { name: "chat", exact: true }).first().click();
  await page.waitForURL(/\/dashboard\/apps\/chat$/);
  await page.getByText("Team chat").first().waitFor();

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/dashboard\/login$/);
  await page.goto(`${server.dashboard}/apps`);
  assert.match(page.url(), /\/dashboard\/login$/, "signed out for good");
  assert.deepEqual(errors, [], "no script or console errors");
});
