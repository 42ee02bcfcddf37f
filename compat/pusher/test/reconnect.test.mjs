// pusher-js reconnects by itself when `waas dev` dies and comes back on the same port, and
// subscribes its channels again.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startWaas, connect, subscribed, once, publish } from "./support.mjs";

test("pusher-js reconnects and resubscribes after the server is killed and restarted", async () => {
  let server = await startWaas();
  const port = server.port;
  const c = await connect(server);
  try {
    const ch = await subscribed(c, "news");
    const firstId = c.connection.socket_id;
    const lost = new Promise((resolve) =>
      c.connection.bind("state_change", ({ current }) => current !== "connected" && resolve(current)),
    );
    await server.stop("SIGKILL");
    await lost;
    // Bound before the restart, so a quick reconnect is not missed.
    const reconnected = once(c.connection, "connected", 30_000);
    const resubscribed = once(ch, "pusher:subscription_succeeded", 30_000);
    server = await startWaas({ port });
    await reconnected;
    await resubscribed;
    assert.notEqual(c.connection.socket_id, firstId, "a new connection");
    const got = once(ch, "story");
    await publish(server, "news", "story", { after: "restart" });
    assert.deepEqual(await got, { after: "restart" });
  } finally {
    c.disconnect();
    await server.stop();
  }
});
