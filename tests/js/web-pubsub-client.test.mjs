// @azure/web-pubsub-client (default options: reliable JSON subprotocol, auto reconnect) against the emulator:
// messages in each data type, groups, events with their ack and response, invocations, and recovery of a
// dropped socket with no message lost.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { startWebPubSub, waitFor } from "./support/emulators.mjs";
import { allEventsTo, startExpressHandler } from "./support/upstream.mjs";
import { bytes, connectClient } from "./support/clients.mjs";

const HUB = "clientsdk";
const ROLES = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];
let emulator;
let upstream;
let service;
const opened = [];

before(async () => {
  emulator = await startWebPubSub();
  upstream = await startExpressHandler(HUB, {
    handleUserEvent: (request, response) => {
      const { eventName } = request.context;
      // success() writes its data as is: JSON goes back as its text.
      if (eventName === "echo") {
        const data = request.dataType === "json" ? JSON.stringify(request.data) : request.data;
        response.success(data, request.dataType);
      }
      else if (eventName === "shout") response.success(String(request.data).toUpperCase(), "text");
      else if (eventName === "broken") response.fail(500, "handler failed");
      else response.success();
    },
  });
  await emulator.configureHub(HUB, allEventsTo(upstream.urlTemplate));
  service = new WebPubSubServiceClient(emulator.connectionString, HUB, { allowInsecureConnection: true });
});
after(async () => {
  for (const c of opened) c.client.stop();
  await upstream?.close();
  await emulator?.stop();
});

async function open(userId, tokenOptions = {}) {
  const connected = await connectClient(service, { userId, roles: ROLES, ...tokenOptions });
  opened.push(connected);
  return connected;
}

test("server messages arrive in each data type", async () => {
  const c = await open("receiver");
  await service.sendToUser("receiver", "text body", { contentType: "text/plain" });
  await service.sendToUser("receiver", { json: ["body", 1] });
  await service.sendToUser("receiver", new Uint8Array([0, 255, 7]).buffer);
  const text = await c.nextServer();
  const json = await c.nextServer();
  const binary = await c.nextServer();
  assert.deepEqual([text.dataType, text.data], ["text", "text body"]);
  assert.deepEqual([json.dataType, json.data], ["json", { json: ["body", 1] }]);
  assert.deepEqual([binary.dataType, bytes(binary.data)], ["binary", [0, 255, 7]]);
  assert.ok(text.sequenceId < json.sequenceId && json.sequenceId < binary.sequenceId, "reliable sequence ids");
});

test("join a group and send to it in each data type, with and without echo", async () => {
  const sender = await open("sender");
  const listener = await open("listener");
  await sender.client.joinGroup("room");
  await listener.client.joinGroup("room");
  await sender.client.sendToGroup("room", "hi", "text");
  await sender.client.sendToGroup("room", { a: 1 }, "json");
  await sender.client.sendToGroup("room", new Uint8Array([9, 8]).buffer, "binary", { noEcho: true });
  const got = [await listener.nextGroup(), await listener.nextGroup(), await listener.nextGroup()];
  assert.deepEqual(
    got.map((m) => [m.group, m.fromUserId, m.dataType]),
    [["room", "sender", "text"], ["room", "sender", "json"], ["room", "sender", "binary"]],
  );
  assert.deepEqual([got[0].data, got[1].data, bytes(got[2].data)], ["hi", { a: 1 }, [9, 8]]);
  await waitFor(() => sender.group.length === 2, "the sender's two echoes");
  await sender.client.leaveGroup("room");
  await service.group("room").sendToAll("after leave", { contentType: "text/plain" });
  assert.equal((await listener.nextGroup()).data, "after leave");
  assert.equal(sender.group.length, 2, "a client that left the group still got its messages");
});

test("sendEvent is acked and the handler's response comes back as a server message", async () => {
  const c = await open("eventer");
  const result = await c.client.sendEvent("echo", { ping: true }, "json");
  assert.equal(result.isDuplicated, false);
  assert.equal(typeof result.ackId, "number");
  const reply = await c.nextServer();
  assert.deepEqual([reply.dataType, reply.data], ["json", { ping: true }]);
  const event = await upstream.waitForEvent("user", (r) => r.context.connectionId === c.connectionId);
  assert.deepEqual([event.request.context.eventName, event.request.dataType], ["echo", "json"]);

  const again = await c.client.sendEvent("echo", "same id", "text", { ackId: result.ackId });
  assert.equal(again.isDuplicated, true, "a resent ackId is reported as a duplicate, not executed");
  await assert.rejects(
    () => c.client.sendEvent("broken", "x", "text"),
    (err) => err.name === "SendMessageError" && err.errorDetail?.name === "InternalServerError",
  );
  assert.equal(await service.connectionExists(c.connectionId), true, "a failed acked event keeps the connection");
  await c.client.sendEvent("echo", "fire and forget", "text", { fireAndForget: true });
  assert.equal((await c.nextServer()).data, "fire and forget");
});

test("invokeEvent returns the handler's response", async () => {
  const c = await open("invoker");
  const result = await c.client.invokeEvent("shout", "quiet please", "text");
  assert.deepEqual([result.dataType, result.data], ["text", "QUIET PLEASE"]);
  await assert.rejects(() => c.client.invokeEvent("broken", "x", "text"), (err) => err.name === "InvocationError");
  assert.equal(await service.connectionExists(c.connectionId), true);
});

test("a dropped socket is recovered on the same connection with no message lost or repeated", async () => {
  const c = await open("survivor");
  await c.client.joinGroup("kept");
  await service.sendToUser("survivor", "before", { contentType: "text/plain" });
  assert.equal((await c.nextServer()).data, "before");
  await emulator.drop(c.connectionId);
  await service.sendToUser("survivor", "during", { contentType: "text/plain" });
  await service.group("kept").sendToAll("group during", { contentType: "text/plain" });
  assert.equal((await c.nextServer(20_000)).data, "during");
  assert.equal((await c.nextGroup(20_000)).data, "group during");
  await service.sendToUser("survivor", "after", { contentType: "text/plain" });
  assert.equal((await c.nextServer()).data, "after");
  assert.deepEqual(c.server.map((m) => m.data), ["before", "during", "after"]);
  assert.deepEqual(c.disconnects, [], "recovery must not surface as a disconnect");
  assert.equal(c.connections.length, 1, "recovery must not fire connected again");
  assert.equal(await service.connectionExists(c.connectionId), true);
});
