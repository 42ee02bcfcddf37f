// An app's recordings and webhooks pages in headless Chromium (Debian's `chromium`, driven by
// playwright-core) against a real `waas dev` process: start a recording, publish, stop, export
// it, replay it into a channel a real WebSocket client (a second browser page) subscribes to,
// and watch the replay's progress move without a reload; see a webhook delivery fail into a
// dead letter in the delivery log, retry it and see it delivered. Keeps screenshots of the
// recording, replay and delivery pages for the docs (docs/img/dashboard-*.png).

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import http from "node:http";
import { after, before, test } from "node:test";
import * as waas from "./support/waas.mjs";
import { eventually, launchPersistent, screenshot, startWaas, watchErrors } from "./support/waas.mjs";

/** A call on the admin API with `waas dev`'s operator token. */
const admin = (method, route, body) => waas.admin(server, method, route, body);

async function publish(channel, data) {
  const res = await fetch(`${server.base}/v1/apps/demo/publish`, {
    method: "POST",
    headers: { Authorization: "Bearer demo-key", "Content-Type": "application/json" },
    body: JSON.stringify({ channel, event: "reading", data }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** A webhook endpoint: answers each request with the next of `answers`, then the last one. */
async function startReceiver(answers) {
  const received = [];
  const waiters = [];
  const srv = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => {
      const [status, text] = answers[Math.min(received.length, answers.length - 1)];
      received.push({ body, status });
      res.writeHead(status, { "Content-Type": "text/plain" }).end(text);
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${srv.address().port}/hook`,
    received,
    /** Until `n` requests have come, failing after `within` ms rather than hanging. */
    async count(n, within = 30_000) {
      const deadline = Date.now() + within;
      while (received.length < n) {
        const left = deadline - Date.now();
        assert.ok(left > 0, `${received.length} of ${n} webhook requests after ${within} ms`);
        await new Promise((r) => {
          const timer = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(timer);
            r();
          });
        });
      }
    },
    close: () => new Promise((resolve) => srv.close(resolve)),
  };
}

let server, browser;

before(async () => {
  // Webhooks given up after one failed attempt, so a dead letter comes at once.
  server = await startWaas({ env: { WAAS_WEBHOOK_MAX_ATTEMPTS: "1" } });
  browser = await launchPersistent({ acceptDownloads: true });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A dashboard page signed in as the dev operator, failing the test on any script error. */
async function signedIn() {
  const page = await browser.newPage();
  const errors = watchErrors(page);
  await page.goto(`${server.base}/dashboard/login`);
  if (page.url().endsWith("/dashboard/login")) {
    await waas.signIn(page, server);
  }
  return { page, errors };
}

/** A real WebSocket client (Chromium's, in a page of its own) subscribed to `channel`. */
async function subscriber(channel) {
  const page = await browser.newPage();
  // A page of the server's own origin without the dashboard's Content-Security-Policy.
  await page.goto(`${server.base}/healthz`);
  await page.evaluate(
    ([url, channel]) =>
      new Promise((resolve, reject) => {
        window.received = [];
        const ws = new WebSocket(url);
        ws.onclose = (e) => reject(new Error(`WebSocket closed: ${e.code} ${e.reason}`));
        ws.onmessage = (e) => {
          const f = JSON.parse(e.data);
          if (f.op === "ready") ws.send(JSON.stringify({ op: "subscribe", id: 1, channel }));
          else if (f.op === "ack" && f.id === 1) resolve();
          else if (f.op === "error") reject(new Error(e.data));
          else if (f.op === "message") window.received.push(f);
        };
      }),
    [`${server.ws}/v1/apps/demo/ws?token=${server.token}`, channel],
  );
  return page;
}

test("record, export, replay into a subscribed client and watch its progress live", async () => {
  const { page, errors } = await signedIn();
  await page.goto(`${server.base}/dashboard/apps/demo`);
  await page.getByRole("link", { name: "Recordings" }).first().click();
  await page.waitForURL(/\/dashboard\/apps\/demo\/recordings$/);
  await page.getByText("No recordings yet.").waitFor();

  await page.getByLabel("Name").fill("Paris weather");
  await page.getByLabel("Channels").fill("weather.*");
  await page.getByRole("button", { name: "Start recording" }).click();
  await page.waitForURL(/\/recordings\/rec_[0-9a-f]+$/);
  const rid = page.url().split("/").pop();
  assert.equal((await page.locator("#recording-status").textContent()).trim(), "recording");

  // Three readings, spread over three seconds, so the replay at the recorded pace lasts that
  // long and its page can be watched while it runs.
  for (const [i, celsius] of [18.5, 19, 21.5].entries()) {
    if (i > 0) await new Promise((r) => setTimeout(r, 1500));
    await publish("weather.paris", { celsius });
  }
  await publish("traffic.paris", { jam: true }); // not recorded
  await eventually("three events recorded", async () => {
    const { body } = await admin("GET", `/v1/admin/apps/demo/recordings/${rid}`);
    return body.event_count === 3 ? true : undefined;
  });

  await page.reload();
  assert.equal(await page.locator("#recording-events").textContent(), "3");
  await page.getByRole("button", { name: "Stop recording" }).click();
  await page.waitForURL(new RegExp(`/recordings/${rid}$`));
  assert.match(await page.locator("#recording-status").textContent(), /^stopped$/);
  const rows = await page.locator("table.events tbody tr").allTextContents();
  assert.equal(rows.length, 3, `events listed: ${rows}`);
  assert.ok(rows[2].includes("weather.paris") && rows[2].includes('{"celsius":21.5}'), rows[2]);
  await screenshot(page, "dashboard-recording.png");

  // Export: a JSON Lines download, one event a line.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "Export JSON Lines" }).click(),
  ]);
  assert.equal(download.suggestedFilename(), `${rid}.jsonl`);
  const lines = (await readFile(await download.path(), "utf8")).trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.message.data),
    [{ celsius: 18.5 }, { celsius: 19 }, { celsius: 21.5 }],
  );

  // Replay at the recorded pace into a channel a WebSocket client listens on.
  const client = await subscriber("replay.paris");
  await page.getByLabel("Into channel").fill("replay.paris");
  await page.getByLabel("1× (as recorded)").check();
  await page.getByRole("button", { name: "Replay" }).click();
  await page.waitForURL(/\/dashboard\/apps\/demo\/replays\/rpl_[0-9a-f]+$/);
  await page.evaluate(() => {
    window.notReloaded = true;
  });
  assert.equal(await page.locator("#replay-total").textContent(), "3");
  assert.equal(await page.locator("#replay-state").textContent(), "running", "watched while it runs");
  // Under way: the bar has moved (the first event goes out at once, the last 3 s later).
  await page.waitForFunction(() => Number(document.getElementById("replay-published").textContent) >= 1);
  await screenshot(page, "dashboard-replay.png");
  await page
    .waitForFunction(() => document.getElementById("replay-state").textContent === "finished", null, {
      timeout: 15_000,
    })
    .catch(async (e) => {
      throw new Error(`${e.message}; state ${await page.locator("#replay").innerHTML()}; errors ${errors}`);
    });
  assert.equal(await page.evaluate(() => window.notReloaded), true, "the page moved without a reload");
  assert.equal(await page.locator("#replay-published").textContent(), "3");
  assert.equal(await page.locator("#replay-progress").evaluate((p) => p.value), 3);
  assert.equal(await page.getByRole("button", { name: "Pause" }).isVisible(), false, "nothing left to pause");

  await client.waitForFunction(() => window.received.length >= 3);
  const got = await client.evaluate(() => window.received);
  assert.deepEqual(
    got.map((m) => [m.channel, m.event, m.data, m.replayed]),
    [
      ["replay.paris", "reading", { celsius: 18.5 }, true],
      ["replay.paris", "reading", { celsius: 19 }, true],
      ["replay.paris", "reading", { celsius: 21.5 }, true],
    ],
  );
  await client.close();

  // Instant replay from the same page, back into the recorded channel.
  await page.goto(`${server.base}/dashboard/apps/demo/recordings/${rid}`);
  await page.getByLabel("all at once").check();
  await page.getByRole("button", { name: "Replay" }).click();
  await page.waitForURL(/\/replays\/rpl_[0-9a-f]+$/);
  await page.waitForFunction(() => document.getElementById("replay-state").textContent === "finished");
  assert.equal(await page.locator("#replay-published").textContent(), "3");

  // The list: the stopped recording and what it holds.
  await page.goto(`${server.base}/dashboard/apps/demo/recordings`);
  const listed = await page.locator(`tr:has(a[href$="/recordings/${rid}"])`).textContent();
  assert.ok(listed.includes("Paris weather") && listed.includes("weather.*") && listed.includes("stopped"), listed);
  await screenshot(page, "dashboard-recordings.png");
  assert.deepEqual(errors, [], "no script or console errors");
  await page.close();
});

test("a webhook delivery in the log, dead after its failed attempt, retried and delivered", async () => {
  const receiver = await startReceiver([
    [500, "database is down"],
    [200, "thanks"],
  ]);
  try {
    const { status, body } = await admin("POST", "/v1/admin/apps/demo/webhooks", {
      url: receiver.url,
      events: ["message"],
      channels: ["orders.>"],
    });
    assert.equal(status, 201, JSON.stringify(body));
    // The gateway learns of the new endpoint from a change event a moment after the admin API
    // answers, and does not report a publish made before: publish until one is reported.
    for (let order = 981; receiver.received.length === 0; order++) {
      assert.ok(order < 1001, "no publish reached the webhook endpoint");
      await publish("orders.eu", { order });
      await receiver.count(1, 500).catch(() => {});
    }
    const delivery = await eventually("the delivery is dead", async () => {
      const { body } = await admin("GET", "/v1/admin/apps/demo/deliveries?status=dead");
      return body[0];
    });

    const { page, errors } = await signedIn();
    await page.goto(`${server.base}/dashboard/apps/demo`);
    await page.getByRole("link", { name: "Webhooks" }).first().click();
    await page.waitForURL(/\/dashboard\/apps\/demo\/webhooks$/);
    const row = page.locator(`tr[data-delivery="${delivery.id}"]`);
    const text = await row.textContent();
    assert.ok(text.includes("dead") && text.includes("500") && text.includes("message"), text);
    await screenshot(page, "dashboard-webhooks.png");

    await row.getByRole("link").click();
    await page.waitForURL(new RegExp(`/deliveries/${delivery.id}$`));
    await page.getByText("database is down").waitFor();
    await page.getByRole("button", { name: "Retry this dead letter" }).click();
    await page.waitForURL(new RegExp(`/deliveries/${delivery.id}$`));
    await receiver.count(2);
    await eventually("the retried delivery is delivered", async () => {
      const { body } = await admin("GET", `/v1/admin/apps/demo/deliveries/${delivery.id}`);
      return body.status === "delivered" ? true : undefined;
    });
    await page.reload();
    assert.equal(await page.locator("#delivery-status").textContent(), "delivered");
    const attempts = await page.locator("table.attempts tbody tr").allTextContents();
    assert.equal(attempts.length, 2, `${attempts}`);
    assert.ok(attempts[0].includes("500") && attempts[0].includes("database is down"), attempts[0]);
    assert.ok(attempts[1].includes("200") && attempts[1].includes("thanks"), attempts[1]);
    assert.equal(await page.getByRole("button", { name: /Retry/ }).count(), 0, "nothing left to retry");
    await screenshot(page, "dashboard-delivery.png");
    assert.deepEqual(errors, [], "no script or console errors");
    await page.close();
  } finally {
    await receiver.close();
  }
});
