// The shared cluster of real `waas` processes (test-support/js/cluster.mjs).

export { natsUrl, startCluster } from "../../../test-support/js/cluster.mjs";
