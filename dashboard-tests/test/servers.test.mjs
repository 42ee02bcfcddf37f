// The Servers page in headless Chromium against a real `waas dev`: a trusted server connected
// with the Rust SDK under a name (sdk/rust/examples/named_server.rs) appears online with a
// latency figure, then goes offline when it disconnects, all without a reload. Keeps a
// screenshot for the docs (docs/img/dashboard-servers.png).

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
const target = process.env.CARGO_TARGET_DIR ? path.resolve(repo, process.env.CARGO_TARGET_DIR) : path.join(repo, "target");

/** A binary of the build: `env` if set, else `target/debug/<rel>`, which `cargo test` makes. */
function built(env, rel, how) {
  const bin = process.env[env] ?? path.join(target, "debug", rel);
  if (!existsSync(bin)) throw new Error(`no binary at ${bin}: run \`${how}\` at the repository root, or set ${env}`);
  return bin;
}

/** Resolves with the first match of `re` in what `stream` prints; rejects if `exited` first. */
function awaitLine(stream, re, exited, what) {
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (d) => {
      out += d;
      const m = re.exec(out);
      if (m) {
        stream.off("data", onData);
        stream.resume();
        resolve(m);
      }
    };
    stream.on("data", onData);
    exited.then(({ code }) => reject(new Error(`${what} exited (${code}) first; printed: ${out}`)));
  });
}

let waas, waasExited, browser, profile;

before(async () => {
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" };
  delete env.WAAS_DASHBOARD_ADMIN_EMAIL;
  delete env.WAAS_DASHBOARD_ADMIN_PASSWORD;
  waas = spawn(built("WAAS_BIN", "waas", "cargo build -p waas"), ["dev", "--listen", "127.0.0.1:0", "--store", ":memory:"], {
    stdio: ["ignore", "pipe", "ignore"],
    env,
  });
  waasExited = new Promise((resolve) => waas.once("exit", (code) => resolve({ code })));
  const banner = await awaitLine(waas.stdout, /listening on (\S+)/, waasExited, "waas");
  profile = await mkdtemp(path.join(os.tmpdir(), "waas-servers-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 720 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"],
  });
  waas.banner = banner.input;
});

after(async () => {
  await browser?.close();
  if (waas && waas.exitCode === null) waas.kill("SIGTERM");
  await waasExited;
  if (profile) await rm(profile, { recursive: true, force: true });
});

test("a named SDK server appears online with a latency, then offline, without a reload", async () => {
  const addr = /listening on (\S+)/.exec(waas.banner)[1];
  const dashboard = /dashboard\s+(http:\/\/\S+)/.exec(waas.banner)[1];
  const [, email, password] = /dev sign-in: (\S+) \/ (\S+)\)/.exec(waas.banner);
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));

  await page.goto(`${dashboard}/login`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/dashboard\/apps$/);
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
    [`http://${addr}`, "checkout-api-1"],
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

    await mkdir(path.join(repo, "docs", "img"), { recursive: true });
    await page.screenshot({ path: path.join(repo, "docs", "img", "dashboard-servers.png"), fullPage: true });

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
