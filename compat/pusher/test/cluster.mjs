// The shared cluster of real `waas` processes (test-support/js/cluster.mjs), with every app the
// Pusher tests create on the Pusher front, client events on.

import { startCluster as start } from "../../../test-support/js/cluster.mjs";

export { startBalancer } from "../../../test-support/js/cluster.mjs";

/** A control-plane and `gateways` gateways; `createApp(id)` gives `{ id, apiKey, secret }`. */
export const startCluster = (gateways = 2) => start(gateways, { pusher: true, pusher_client_events: true });
