// @azure/web-pubsub (the server SDK) against the Web PubSub emulator over plain HTTP (`make dev`).
// Plain HTTP needs the SDK's documented `allowInsecureConnection: true`; HTTPS mode needs nothing
// (https.test.mjs). Everything else is default.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AzureKeyCredential, WebPubSubServiceClient } from "@azure/web-pubsub";
import { startWebPubSub, waitFor } from "./support/emulators.mjs";
import { bytes, connectClient } from "./support/clients.mjs";

const HTTP = { allowInsecureConnection: true };
let emulator;
let hubCount = 0;
const opened = [];

before(async () => {
  emulator = await startWebPubSub();
});
after(async () => {
  for (const c of opened) c.client.stop();
  await emulator?.stop();
});

/** A service client for a fresh hub. */
function freshHub() {
  hubCount += 1;
  return new WebPubSubServiceClient(emulator.connectionString, `svc${hubCount}`, HTTP);
}

async function open(service, tokenOptions, clientOptions) {
  const connected = await connectClient(service, tokenOptions, clientOptions);
  opened.push(connected);
  return connected;
}

function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
}

test("without allowInsecureConnection the SDK refuses the plain-HTTP endpoint (it names the option)", async () => {
  const strict = new WebPubSubServiceClient(emulator.connectionString, "strict");
  await assert.rejects(() => strict.sendToAll("x", { contentType: "text/plain" }), /allowInsecureConnection/);
});

describe("client access tokens", () => {
  test("carry user, roles, groups and expiry, and the emulator honours them", async () => {
    const service = freshHub();
    const { token, url, baseUrl } = await service.getClientAccessToken({
      userId: "tok-user",
      roles: ["webpubsub.joinLeaveGroup.allowed", "webpubsub.sendToGroup.allowed"],
      groups: ["joined-on-connect"],
      expirationTimeInMinutes: 5,
    });
    assert.equal(baseUrl, `${emulator.endpoint.replace("http", "ws")}/client/hubs/${service.hubName}`);
    assert.equal(url, `${baseUrl}?access_token=${token}`);
    const claims = claimsOf(token);
    assert.equal(claims.sub, "tok-user");
    assert.deepEqual(claims.role, ["webpubsub.joinLeaveGroup.allowed", "webpubsub.sendToGroup.allowed"]);
    assert.deepEqual(claims["webpubsub.group"], ["joined-on-connect"]);
    assert.ok(claims.exp - claims.iat <= 5 * 60 && claims.exp - claims.iat > 4 * 60);

    const c = await open(service, {
      userId: "tok-user",
      roles: ["webpubsub.joinLeaveGroup.allowed", "webpubsub.sendToGroup.allowed"],
      groups: ["joined-on-connect"],
    });
    assert.equal(c.userId, "tok-user");
    await service.group("joined-on-connect").sendToAll({ hello: "group" });
    assert.deepEqual((await c.nextGroup()).data, { hello: "group" });
    await c.client.joinGroup("allowed");
    await c.client.sendToGroup("allowed", "mine", "text");
    assert.equal((await c.nextGroup()).data, "mine");
    await assert.rejects(
      () => c.client.joinGroup("not-allowed"),
      (err) => err.errorDetail?.name === "Forbidden",
    );
  });
});

describe("sends", () => {
  test("sendToAll in each content type, with excludedConnections and filter", async () => {
    const service = freshHub();
    const a = await open(service, { userId: "a" });
    const b = await open(service, { userId: "b" });
    await service.sendToAll("plain text", { contentType: "text/plain" });
    await service.sendToAll({ n: 1 });
    await service.sendToAll(new Uint8Array([1, 2, 3]).buffer);
    for (const c of [a, b]) {
      const [text, json, binary] = [await c.nextServer(), await c.nextServer(), await c.nextServer()];
      assert.deepEqual([text.dataType, text.data], ["text", "plain text"]);
      assert.deepEqual([json.dataType, json.data], ["json", { n: 1 }]);
      assert.deepEqual([binary.dataType, bytes(binary.data)], ["binary", [1, 2, 3]]);
    }
    await service.sendToAll("not for a", { contentType: "text/plain", excludedConnections: [a.connectionId] });
    await service.sendToAll("only a", { contentType: "text/plain", filter: "userId eq 'a'" });
    assert.equal((await b.nextServer()).data, "not for a");
    assert.equal((await a.nextServer()).data, "only a");
    assert.equal(a.server.length, 4);
    assert.equal(b.server.length, 4);
  });

  test("sendToUser, sendToConnection and group sendToAll reach exactly their targets", async () => {
    const service = freshHub();
    const u1 = await open(service, { userId: "u1", groups: ["g"] });
    const u2 = await open(service, { userId: "u2" });
    await service.sendToUser("u1", "to user", { contentType: "text/plain" });
    await service.sendToConnection(u2.connectionId, { to: "connection" });
    await service.group("g").sendToAll("to group", { contentType: "text/plain" });
    assert.equal((await u1.nextServer()).data, "to user");
    assert.deepEqual((await u2.nextServer()).data, { to: "connection" });
    const groupMessage = await u1.nextGroup();
    assert.deepEqual([groupMessage.group, groupMessage.data], ["g", "to group"]);
    assert.equal(u2.group.length, 0);
    assert.equal(u2.server.length, 1);
  });
});

test("exists: user, connection and group", async () => {
  const service = freshHub();
  const c = await open(service, { userId: "present", groups: ["here"] });
  assert.equal(await service.userExists("present"), true);
  assert.equal(await service.userExists("absent"), false);
  assert.equal(await service.connectionExists(c.connectionId), true);
  assert.equal(await service.connectionExists("no-such-connection"), false);
  assert.equal(await service.groupExists("here"), true);
  assert.equal(await service.groupExists("nowhere"), false);
});

test("group management: connections, users, all groups, filtered add/remove, listing", async () => {
  const service = freshHub();
  const alice = await open(service, { userId: "alice" });
  const bob = await open(service, { userId: "bob" });
  const room = service.group("room");
  await room.addConnection(alice.connectionId);
  await room.addUser("bob");
  const members = [];
  for await (const member of await room.listConnections()) members.push([member.connectionId, member.userId]);
  assert.deepEqual(members.sort(), [[alice.connectionId, "alice"], [bob.connectionId, "bob"]].sort());
  await room.removeConnection(alice.connectionId);
  await room.removeUser("bob");
  assert.equal(await service.groupExists("room"), false);

  await service.addConnectionsToGroups(["x", "y"], "userId eq 'alice'");
  assert.equal(await service.groupExists("x"), true);
  await service.removeConnectionsFromGroups(["x"], `connectionId eq '${alice.connectionId}'`);
  assert.equal(await service.groupExists("x"), false);
  await service.group("z").addUser("bob");
  await service.removeConnectionFromAllGroups(alice.connectionId);
  await service.removeUserFromAllGroups("bob");
  assert.deepEqual([await service.groupExists("y"), await service.groupExists("z")], [false, false]);
});

test("permissions: grant, check, revoke", async () => {
  const service = freshHub();
  const c = await open(service, { userId: "perm" });
  assert.equal(await service.hasPermission(c.connectionId, "joinLeaveGroup", { targetName: "vip" }), false);
  await service.grantPermission(c.connectionId, "joinLeaveGroup", { targetName: "vip" });
  assert.equal(await service.hasPermission(c.connectionId, "joinLeaveGroup", { targetName: "vip" }), true);
  await c.client.joinGroup("vip");
  await service.revokePermission(c.connectionId, "joinLeaveGroup", { targetName: "vip" });
  assert.equal(await service.hasPermission(c.connectionId, "joinLeaveGroup", { targetName: "vip" }), false);
});

test("close operations: connection (with reason), user, group, all", async () => {
  const service = freshHub();
  const one = await open(service, { userId: "one" });
  await service.closeConnection(one.connectionId, { reason: "bye one" });
  await waitFor(() => one.disconnects.length, "one's disconnected event");
  assert.equal(one.disconnects[0].message?.message, "bye one");
  assert.equal(await service.connectionExists(one.connectionId), false);

  const two = await open(service, { userId: "two", groups: ["g2"] });
  const three = await open(service, { userId: "three" });
  const four = await open(service, { userId: "four" });
  await service.closeUserConnections("two", { reason: "bye two" });
  assert.equal(await service.connectionExists(two.connectionId), false);
  await service.group("g2").closeAllConnections();
  await service.closeAllConnections({ reason: "bye all" });
  for (const c of [three, four]) assert.equal(await service.connectionExists(c.connectionId), false);
});

test("a wrong access key is refused with 401", async () => {
  const wrong = new WebPubSubServiceClient(
    emulator.endpoint,
    new AzureKeyCredential("not-the-key-of-this-emulator"),
    "svcwrong",
    HTTP,
  );
  await assert.rejects(() => wrong.sendToAll("x", { contentType: "text/plain" }), (err) => err.statusCode === 401);
  await assert.rejects(() => wrong.userExists("x"), (err) => err.statusCode === 401);
});
