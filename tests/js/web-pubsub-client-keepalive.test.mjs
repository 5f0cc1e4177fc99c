// @azure/web-pubsub-client with its default options (keepAliveIntervalInMs 20 s) stays connected:
// the emulator answers every keep-alive `ping` with `pong` as the service does.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { WebPubSubClient } from "@azure/web-pubsub-client";
import { startWebPubSub } from "./support/emulators.mjs";

const HUB = "keepalive";
const STAY_MS = 62_000; // three keep-alive pings at the default 20 s interval
let emulator;
let service;

before(async () => {
  emulator = await startWebPubSub();
  service = new WebPubSubServiceClient(emulator.connectionString, HUB, { allowInsecureConnection: true });
});
after(() => emulator?.stop());

test("a default client stays connected for 60 s, on the same connection", { timeout: 120_000 }, async () => {
  const { url } = await service.getClientAccessToken({ userId: "stayer" });
  const client = new WebPubSubClient(url);
  const connections = [];
  const disconnects = [];
  const received = [];
  client.on("connected", (e) => connections.push(e.connectionId));
  client.on("disconnected", (e) => disconnects.push(e));
  client.on("server-message", (e) => received.push(e.message.data));
  await client.start();
  try {
    await new Promise((resolve) => setTimeout(resolve, STAY_MS));
    assert.deepEqual(disconnects, [], "the client was disconnected while idle");
    assert.equal(connections.length, 1, "the client reconnected (a new connection id)");
    assert.equal(await service.connectionExists(connections[0]), true);
    await service.sendToUser("stayer", "after a minute", { contentType: "text/plain" });
    const deadline = Date.now() + 5_000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    assert.deepEqual(received, ["after a minute"]);
  } finally {
    client.stop();
  }
});
