// Two users chatting in an end-to-end encrypted presence room, with the TypeScript SDK.
//
// Start a server with `waas dev` (`cargo run -- dev` at the repository root), build the SDK
// (`npm --prefix sdk/js run build`), then:
//
//   node sdk/js/examples/chat.mjs [SERVER_URL]
//
// The server URL comes from the first argument or WAAS_URL (default http://127.0.0.1:8080);
// WAAS_APP_ID and WAAS_API_KEY default to `waas dev`'s `demo` / `demo-key`.
//
// "The tenant's backend" (this script, with the API key) mints each user a token for the room,
// and owns the room's key: it shares it with each member who joins. Alice and Bob then talk;
// the service only ever sees envelopes.

import { Client, E2ee, Keyring, ServerClient } from "../dist/index.js";

const url = process.argv[2] ?? process.env.WAAS_URL ?? "http://127.0.0.1:8080";
const app = process.env.WAAS_APP_ID ?? "demo";
const apiKey = process.env.WAAS_API_KEY ?? "demo-key";
const room = "presence.chat-room-1";

const backend = new ServerClient(url, app, apiKey);
const ownerClient = await Client.connect({ url, app, token: apiKey });
const owner = await (await E2ee.start(ownerClient, await Keyring.inMemory())).own(room);

async function join(user) {
  const { token } = await backend.mintToken({ sub: user, caps: { subscribe: [room], publish: [room] }, info: { name: user } });
  const client = await Client.connect({ url, app, token });
  const shared = owner.once("shared", (e) => e.members.includes(user));
  const e2ee = await E2ee.start(client, await Keyring.inMemory());
  const messages = await e2ee.subscribe(room);
  await shared;
  await e2ee.fetch(room);
  client.on("presence", (e) => {
    if (e.type !== "members") console.log(`[${user}] ${e.type}: ${e.member.id}`);
  });
  return { user, client, e2ee, messages };
}

const alice = await join("alice");
const bob = await join("bob");
console.log("members:", (await alice.client.members(room)).map((m) => m.id).join(", "));

await alice.e2ee.publish(room, "say", { text: "hi Bob" });
await bob.e2ee.publish(room, "say", { text: "hello Alice" });
for (const who of [alice, bob]) {
  for (let i = 0; i < 2; i++) {
    const { value } = await who.messages.next();
    if (value.error) console.log(`[${who.user}] cannot read offset ${value.message.offset}: ${value.error.code}`);
    else console.log(`[${who.user}] ${value.message.offset} ${JSON.stringify(value.data)}`);
  }
}
const stored = await backend.history(room, { reverse: true, limit: 1 });
console.log("what the service stored:", JSON.stringify(stored.messages[0].data).slice(0, 80) + "…");

await bob.client.close();
const rotated = await owner.once("rotated");
console.log(`bob left: the room key is now version ${rotated.v}, shared with ${rotated.members.join(", ")}`);
await owner.stop();
await alice.client.close();
await ownerClient.close();
