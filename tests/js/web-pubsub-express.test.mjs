// @azure/web-pubsub-express as a hub's upstream handler (what a Node team writes beside or instead of the
// Functions extension), default options, fed by the emulator: abuse-protection handshake, connect (sets the
// user and groups, can reject), connected, disconnected with its reason, user events and their responses.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { WebPubSubClient } from "@azure/web-pubsub-client";
import { startWebPubSub, waitFor } from "./support/emulators.mjs";
import { allEventsTo, startExpressHandler } from "./support/upstream.mjs";
import { connectClient } from "./support/clients.mjs";

let emulator;
const cleanups = [];

before(async () => {
  emulator = await startWebPubSub();
});
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await emulator?.stop();
});

async function hubWithHandler(hub, handlers, handlerOptions) {
  const upstream = await startExpressHandler(hub, handlers, handlerOptions);
  cleanups.push(upstream.close);
  await emulator.configureHub(hub, allEventsTo(upstream.urlTemplate));
  const service = new WebPubSubServiceClient(emulator.connectionString, hub, { allowInsecureConnection: true });
  return { upstream, service };
}

async function open(service, tokenOptions) {
  const connected = await connectClient(service, tokenOptions);
  cleanups.push(() => connected.client.stop());
  return connected;
}

test("connect sets the user, groups and state; connected and user events follow; responses reach the client", async () => {
  const { upstream, service } = await hubWithHandler("expressok", {
    handleConnect: (request, response) => {
      response.setState("plan", "gold");
      response.success({ userId: `named-by-handler-${request.queries.device?.[0] ?? "x"}`, groups: ["vip"] });
    },
    handleUserEvent: (request, response) => {
      response.success(`${request.context.states.plan}:${request.data}`, "text");
    },
  });
  // No userId in the token: the connect handler names the user.
  const { url } = await service.getClientAccessToken();
  const client = new WebPubSubClient(`${url}&device=phone`);
  const server = [];
  client.on("server-message", (e) => server.push(e.message.data));
  let connected;
  client.on("connected", (e) => (connected = e));
  await client.start();
  cleanups.push(() => client.stop());
  await waitFor(() => connected, "connected");
  assert.equal(connected.userId, "named-by-handler-phone");
  assert.ok(upstream.preflights() >= 1, "the abuse-protection OPTIONS reached the handler");

  const connect = await upstream.waitForEvent("connect");
  assert.equal(connect.request.context.hub, "expressok");
  assert.deepEqual(connect.request.queries.device, ["phone"]);
  assert.ok(connect.request.context.signature.startsWith("sha256="));
  const connectedEvent = await upstream.waitForEvent("connected");
  assert.equal(connectedEvent.request.context.userId, "named-by-handler-phone");
  assert.equal(connectedEvent.request.context.connectionId, connected.connectionId);
  assert.equal(connectedEvent.request.context.states.plan, "gold");

  await service.group("vip").sendToAll("for vips", { contentType: "text/plain" });
  await client.sendEvent("hello", "world", "text");
  await waitFor(() => server.length === 1, "the user event response");
  assert.equal(server[0], "gold:world");
  const userEvent = await upstream.waitForEvent("user");
  assert.deepEqual([userEvent.request.context.eventName, userEvent.request.data], ["hello", "world"]);
  assert.deepEqual(upstream.events.filter((e) => e.kind === "unrecognised"), []);
});

test("connect can reject: the client never connects and no connected event is sent", async () => {
  const { upstream, service } = await hubWithHandler("expressno", {
    handleConnect: (_request, response) => response.fail(401, "not today"),
  });
  const { url } = await service.getClientAccessToken({ userId: "rejected" });
  const client = new WebPubSubClient(url, { autoReconnect: false });
  await assert.rejects(() => client.start());
  await upstream.waitForEvent("connect");
  assert.equal(await service.userExists("rejected"), false);
  assert.equal(upstream.events.some((e) => e.kind === "connected"), false);
});

test("disconnected carries the reason the server gave", async () => {
  const { upstream, service } = await hubWithHandler("expressbye", {});
  const c = await open(service, { userId: "leaving" });
  await upstream.waitForEvent("connected");
  await service.closeConnection(c.connectionId, { reason: "maintenance window" });
  const disconnected = await upstream.waitForEvent("disconnected", (r) => r.context.connectionId === c.connectionId);
  assert.equal(disconnected.request.reason, "maintenance window");
});

test("allowedEndpoints naming the emulator passes the handshake", async () => {
  const { upstream, service } = await hubWithHandler("expressallowed", {}, { allowedEndpoints: [emulator.endpoint] });
  const c = await open(service, { userId: "allowed" });
  const connected = await upstream.waitForEvent("connected");
  assert.equal(connected.request.context.connectionId, c.connectionId);
});
