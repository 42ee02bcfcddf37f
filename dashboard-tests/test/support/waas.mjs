// What the browser tests share: the `waas` binary, a `waas dev` process on port 0 (with the
// variations some tests need: extra flags, environment, a TOML settings file), headless
// Chromium, signing in, the admin API, screenshots for docs/img/. Not a test file itself (the
// npm script runs test/*.test.mjs only).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "../../..");
export const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
/** The admin API's operator token in `waas dev` (docs/admin.md). */
export const OPERATOR_TOKEN = "dev-operator-token";
const target = process.env.CARGO_TARGET_DIR ? path.resolve(repo, process.env.CARGO_TARGET_DIR) : path.join(repo, "target");

/** A binary of the build: `$env` if set, else `target/debug/<rel>`, which cargo makes. */
export function built(env, rel, how) {
  const bin = process.env[env] ?? path.join(target, "debug", rel);
  if (!existsSync(bin)) throw new Error(`no binary at ${bin}: run \`${how}\` at the repository root, or set ${env}`);
  return bin;
}

/** The `waas` binary: `WAAS_BIN`, else `$CARGO_TARGET_DIR/debug/waas` (`cargo build` makes it). */
export const waasBin = () => built("WAAS_BIN", "waas", "cargo build -p waas");

/** Resolves with the first match of `re` in what `stream` prints; rejects if `exited` first. */
export function awaitLine(stream, re, exited, what) {
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

/**
 * `waas dev` on port 0 with an in-memory store and the dev sign-in (the environment's first
 * operator is removed). Options: `args`, more flags; `env`, more variables (e.g.
 * `{ WAAS_WEBHOOK_MAX_ATTEMPTS: "1" }`); `config`, the text of a TOML settings file given with
 * `--config` (e.g. `"[dashboard]\nsession_ttl_secs = 1\n"`). Resolves with its address, URLs,
 * dev sign-in, demo token and banner.
 */
export async function startWaas({ args = [], env: extraEnv = {}, config } = {}) {
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn", ...extraEnv };
  delete env.WAAS_DASHBOARD_ADMIN_EMAIL;
  delete env.WAAS_DASHBOARD_ADMIN_PASSWORD;
  delete env.WAAS_CONFIG;
  let configDir;
  const argv = ["dev", "--listen", "127.0.0.1:0", "--store", ":memory:", ...args];
  if (config !== undefined) {
    configDir = await mkdtemp(path.join(os.tmpdir(), "waas-dev-config-"));
    const file = path.join(configDir, "waas.toml");
    await writeFile(file, config);
    argv.push("--config", file);
  }
  const child = spawn(waasBin(), argv, { stdio: ["ignore", "pipe", "pipe"], env });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  let banner;
  try {
    banner = await new Promise((resolve, reject) => {
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
  } finally {
    if (configDir) await rm(configDir, { recursive: true, force: true });
  }
  const addr = /listening on (\S+)/.exec(banner)[1];
  const dashboard = /dashboard\s+(http:\/\/\S+)/.exec(banner)?.[1];
  const login = /dev sign-in: (\S+) \/ (\S+)\)/.exec(banner);
  const token = /demo token\s+(\S+)/.exec(banner);
  assert.ok(dashboard, `the banner prints the dashboard URL:\n${banner}`);
  assert.ok(login, `the banner prints the dev sign-in:\n${banner}`);
  assert.ok(token, `the banner prints a demo token:\n${banner}`);
  return {
    addr,
    base: `http://${addr}`,
    ws: `ws://${addr}`,
    dashboard,
    email: login[1],
    password: login[2],
    token: token[1],
    banner,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Headless Chromium: `newContext()` for each person (or device) with cookies of their own. */
export function launchChromium() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/**
 * Headless Chromium with one persistent profile in a temporary directory (removed by
 * `close()`); `options` go to `launchPersistentContext` (viewport, acceptDownloads...).
 */
export async function launchPersistent(options = {}) {
  const profile = await mkdtemp(path.join(os.tmpdir(), "waas-dashboard-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 720 },
    args: CHROMIUM_ARGS,
    ...options,
  });
  const close = context.close.bind(context);
  context.close = async () => {
    await close();
    await rm(profile, { recursive: true, force: true });
  };
  return context;
}

/**
 * Collects the page's script errors and console errors; a console error matching `allow` (a
 * status the test causes on purpose, such as `/status of 40\d/`) is not one.
 */
export function watchErrors(page, allow) {
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && !(allow && allow.test(m.text()))) errors.push(m.text());
  });
  return errors;
}

/** Signs `page` in through the sign-in form; by default as the dev operator of `server`. */
export async function signIn(page, server, email = server.email, password = server.password) {
  await page.goto(`${server.dashboard}/login`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/dashboard\/apps$/);
}

/** A call on the admin API with `waas dev`'s operator token: `{ status, body }`. */
export async function admin(server, method, route, body) {
  const res = await fetch(`${server.base}${route}`, {
    method,
    headers: { Authorization: `Bearer ${OPERATOR_TOKEN}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  return { status: res.status, body: parsed };
}

/** Asks `probe` until it answers something other than undefined (state only the API shows). */
export async function eventually(what, probe, within = 10_000) {
  const end = Date.now() + within;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`not within ${within} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Secrets do not go into screenshots kept in the repository, even throwaway ones. */
export async function hide(page, selector) {
  const el = page.locator(selector);
  if ((await el.count()) > 0) {
    await el.evaluate((e) => {
      e.textContent = "•••• (hidden in this screenshot) ••••";
    });
  }
}

/** A full-page screenshot kept for the docs: docs/img/<name>. */
export async function screenshot(page, name) {
  await mkdir(path.join(repo, "docs", "img"), { recursive: true });
  await page.screenshot({ path: path.join(repo, "docs", "img", name), fullPage: true });
}
