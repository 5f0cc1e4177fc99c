// The product through the local host with the official JS client, as the demo does it with the Python one:
// negotiate through POST /api/negotiate, receive the notification in-app, ack it, and no push follows.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { WebPubSubClient } from "@azure/web-pubsub-client";
import { startPrivateStack, waitFor } from "./support/emulators.mjs";

let stack;

before(async () => {
  stack = await startPrivateStack();
});
after(() => stack?.stop());

/** A device: the default WebPubSubClient on the URL the app's negotiate endpoint hands out. */
async function connectDevice(userId) {
  const { token } = await stack.call({ cmd: "token", user: userId });
  const negotiate = async () => {
    const response = await fetch(`${stack.functionsUrl}/api/negotiate`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
    });
    const body = await response.text();
    assert.equal(response.status, 200, `negotiate answered ${response.status}: ${body}`);
    return JSON.parse(body).url;
  };
  const client = new WebPubSubClient({ getClientAccessUrl: negotiate });
  const notifications = [];
  client.on("server-message", (e) => {
    if (e.message.data?.kind === "notification") notifications.push(e.message.data);
  });
  await client.start();
  return { client, notifications };
}

async function registerDevice(userId) {
  const installationId = `js-device-${randomUUID()}`;
  await stack.call({ cmd: "registerDevice", user: userId, installationId });
  return installationId;
}

test("negotiate, receive in-app, ack: status acked and no push", { timeout: 90_000 }, async () => {
  const userId = `js-user-${randomUUID()}`;
  const installationId = await registerDevice(userId);
  const { client, notifications } = await connectDevice(userId);
  try {
    const { notificationId } = await stack.call({ cmd: "enqueue", user: userId, title: "Hello from JS" });
    const envelope = await waitFor(
      () => notifications.find((n) => n.notificationId === notificationId),
      "the notification in-app",
      20_000,
    );
    assert.equal(envelope.title, "Hello from JS");
    const acked = await client.sendEvent("ack", { notificationId }, "json");
    assert.equal(acked.isDuplicated, false);
    const { delivery, pushes } = await stack.call({ cmd: "settle", user: userId, installationId, notificationId });
    assert.equal(delivery.status, "acked");
    assert.deepEqual(pushes, [], "a push was sent although the JS client acked");
  } finally {
    client.stop();
  }
});

test("a JS client that does not ack gets the push after the ack timeout", { timeout: 90_000 }, async () => {
  const userId = `js-user-${randomUUID()}`;
  const installationId = await registerDevice(userId);
  const { client, notifications } = await connectDevice(userId);
  try {
    const { notificationId } = await stack.call({ cmd: "enqueue", user: userId, title: "Nobody acks" });
    await waitFor(() => notifications.some((n) => n.notificationId === notificationId), "in-app", 20_000);
    const { delivery, pushes } = await stack.call({ cmd: "settle", user: userId, installationId, notificationId });
    assert.equal(pushes.length, 1, `expected exactly one push, got ${pushes.length}`);
    assert.notEqual(delivery.status, "acked");
  } finally {
    client.stop();
  }
});
