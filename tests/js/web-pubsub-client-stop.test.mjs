// client.stop() is a clean close: the app sees `disconnected` at once, not after the recovery window.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { WebPubSubClient } from "@azure/web-pubsub-client";
import { startWebPubSub } from "./support/emulators.mjs";
import { allEventsTo, startExpressHandler } from "./support/upstream.mjs";

const HUB = "stopping";
let emulator;
let upstream;
let service;

before(async () => {
  emulator = await startWebPubSub(); // recovery window: the default 30 s
  upstream = await startExpressHandler(HUB);
  await emulator.configureHub(HUB, allEventsTo(upstream.urlTemplate));
  service = new WebPubSubServiceClient(emulator.connectionString, HUB, { allowInsecureConnection: true });
});
after(async () => {
  await upstream?.close();
  await emulator?.stop();
});

for (const protocol of ["reliable (default)", "json"]) {
  test(`stop() is seen by the app as a disconnect within 2 s - ${protocol}`, async () => {
    const { WebPubSubJsonProtocol } = await import("@azure/web-pubsub-client");
    const userId = `stopper-${protocol.split(" ")[0]}`;
    const { url } = await service.getClientAccessToken({ userId });
    const options = protocol === "json" ? { protocol: WebPubSubJsonProtocol() } : undefined;
    const client = new WebPubSubClient(url, options);
    let connectionId;
    client.on("connected", (e) => (connectionId = e.connectionId));
    const stopped = new Promise((resolve) => client.on("stopped", resolve));
    await client.start();
    await upstream.waitForEvent("connected", (r) => r.context.userId === userId);
    assert.equal(await service.userExists(userId), true);

    const stoppedAt = Date.now();
    client.stop();
    const disconnected = await upstream.waitForEvent(
      "disconnected",
      (r) => r.context.connectionId === connectionId,
      2_000,
    );
    assert.ok(disconnected.at - stoppedAt < 2_000);
    assert.equal(typeof disconnected.request.reason, "string");
    assert.equal(await service.connectionExists(connectionId), false);
    assert.equal(await service.userExists(userId), false);
    await stopped;
  });
}
