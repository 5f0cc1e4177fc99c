// @azure/notification-hubs with its default options against the Notification Hubs emulator in HTTPS mode
// (`--https`; Node trusts the printed certificate through NODE_EXTRA_CA_CERTS, set by `make test-js`).
// Plain HTTP is only reachable with a per-call option: see the last tests.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import {
  NotificationHubsClient,
  createAppleInstallation,
  createAppleNotification,
  createFcmV1Installation,
  createFcmV1Notification,
  createTemplateNotification,
} from "@azure/notification-hubs";
import { startNotificationHubs, waitFor } from "./support/emulators.mjs";

const TEMPLATE = JSON.stringify({ message: { notification: { title: "$(title)" }, data: { nid: "$(nid)" } } });
let nh;
let client;

before(async () => {
  nh = await startNotificationHubs({ https: true });
  client = new NotificationHubsClient(nh.connectionString, nh.hub);
});
after(() => nh?.stop());

const id = (prefix) => `${prefix}-${randomUUID()}`;
const pushesOf = async (notificationId) => nh.pushes({ notificationId });

test("the connection string is the standard sb:// form", () => {
  assert.match(nh.connectionString, /^Endpoint=sb:\/\/127\.0\.0\.1:\d+\/;SharedAccessKeyName=DefaultFullSharedAccessSignature;/);
});

describe("installations", () => {
  test("create, get, patch, get again, delete", async () => {
    const installationId = id("inst");
    await client.createOrUpdateInstallation(
      createFcmV1Installation({
        installationId,
        pushChannel: "fcm-token-1",
        tags: ["user:alice"],
        userId: "alice",
        templates: { main: { body: TEMPLATE } },
      }),
    );
    const stored = await client.getInstallation(installationId);
    assert.deepEqual(
      [stored.installationId, stored.platform, stored.pushChannel, stored.tags, stored.userId],
      [installationId, "fcmv1", "fcm-token-1", ["user:alice"], "alice"],
    );
    await client.updateInstallation(installationId, [
      { op: "add", path: "/tags", value: "lang:en" },
      { op: "replace", path: "/pushChannel", value: "fcm-token-2" },
    ]);
    const patched = await client.getInstallation(installationId);
    assert.deepEqual([patched.pushChannel, [...patched.tags].sort()], ["fcm-token-2", ["lang:en", "user:alice"]]);
    await client.deleteInstallation(installationId);
    await assert.rejects(() => client.getInstallation(installationId), (err) => err.statusCode === 404);
    await client.deleteInstallation(installationId); // deleting again is fine
  });

  test("an invalid installation gets 400 with the reason", async () => {
    await assert.rejects(
      () => client.createOrUpdateInstallation({ installationId: id("bad"), platform: "fcmv1", pushChannel: "" }),
      (err) => err.statusCode === 400 && /pushChannel/.test(err.message),
    );
  });
});

describe("sends", () => {
  const alice = id("alice");
  const bob = id("bob");
  before(async () => {
    await client.createOrUpdateInstallation(
      createFcmV1Installation({
        installationId: alice,
        pushChannel: `token-${alice}`,
        tags: ["team:red", "lang:en"],
        templates: { main: { body: TEMPLATE } },
      }),
    );
    await client.createOrUpdateInstallation(
      createAppleInstallation({ installationId: bob, pushChannel: "ab".repeat(32), tags: ["team:blue", "lang:en"] }),
    );
  });

  test("a template send with a tag expression reaches the matching installation's template", async () => {
    const result = await client.sendNotification(
      createTemplateNotification({ body: { title: "Hi", nid: "n1" } }),
      { tagExpression: "team:red && lang:en" },
    );
    assert.match(result.notificationId, /^[0-9a-f]{32}$/);
    const [push] = await waitFor(async () => (await pushesOf(result.notificationId)).length && pushesOf(result.notificationId), "the push");
    assert.equal(push.installationId, alice);
    assert.deepEqual(push.payload.message, { notification: { title: "Hi" }, data: { nid: "n1" } });
  });

  test("native FCM v1 and APNs sends reach only their platform's installations", async () => {
    const fcm = await client.sendNotification(
      createFcmV1Notification({ body: { message: { notification: { title: "fcm only" } } } }),
      { tagExpression: "lang:en" },
    );
    const apns = await client.sendNotification(
      createAppleNotification({ body: { aps: { alert: "apns only" } }, headers: { "apns-priority": "10" } }),
      { tagExpression: "lang:en" },
    );
    const fcmPushes = await waitFor(async () => (await pushesOf(fcm.notificationId)).length && pushesOf(fcm.notificationId), "fcm");
    const apnsPushes = await waitFor(async () => (await pushesOf(apns.notificationId)).length && pushesOf(apns.notificationId), "apns");
    assert.deepEqual(fcmPushes.map((p) => p.installationId), [alice]);
    assert.deepEqual(apnsPushes.map((p) => [p.installationId, p.headers["apns-priority"]]), [[bob, "10"]]);
  });

  test("tag expressions with ||, && and ! select as the service does", async () => {
    const notBlue = await client.sendNotification(
      createFcmV1Notification({ body: { message: { data: { k: "v" } } } }),
      { tagExpression: "!team:blue && (lang:en || lang:de)" },
    );
    const pushes = await waitFor(async () => (await pushesOf(notBlue.notificationId)).length && pushesOf(notBlue.notificationId), "push");
    assert.deepEqual(pushes.map((p) => p.installationId), [alice]);
    await assert.rejects(
      () => client.sendNotification(createTemplateNotification({ body: { title: "x" } }), { tagExpression: "a && (b" }),
      (err) => err.statusCode === 400,
    );
  });

  test("a direct send goes to the given device handle", async () => {
    const result = await client.sendNotification(
      createFcmV1Notification({ body: { message: { notification: { title: "direct" } } } }),
      { deviceHandle: "direct-fcm-token" },
    );
    const [push] = await waitFor(async () => (await pushesOf(result.notificationId)).length && pushesOf(result.notificationId), "push");
    assert.deepEqual([push.pushChannel, push.direct], ["direct-fcm-token", true]);
  });

  test("a test send answers with the per-device outcome", async () => {
    const result = await client.sendNotification(
      createTemplateNotification({ body: { title: "test", nid: "t" } }),
      { tagExpression: "team:red", enableTestSend: true },
    );
    assert.equal(result.state, "DetailedStateAvailable");
    assert.deepEqual([result.successCount, result.failureCount], [1, 0]);
    assert.deepEqual(result.results.map((r) => [r.registrationId, r.applicationPlatform]), [[alice, "fcmv1"]]);
  });

  test("a broadcast reaches every installation of the format", async () => {
    const result = await client.sendBroadcastNotification(
      createAppleNotification({ body: { aps: { alert: "everyone" } } }),
    );
    const pushes = await waitFor(async () => (await pushesOf(result.notificationId)).length && pushesOf(result.notificationId), "push");
    assert.ok(pushes.some((p) => p.installationId === bob));
  });
});

describe("scheduled sends (Standard tier)", () => {
  test("a scheduled notification is delivered at its time; a cancelled one never is", async () => {
    const installationId = id("sched");
    await client.createOrUpdateInstallation(
      createFcmV1Installation({ installationId, pushChannel: "sched-token", tags: ["sched"] }),
    );
    const notification = (title) => createFcmV1Notification({ body: { message: { notification: { title } } } });
    const cancelled = await client.scheduleNotification(new Date(Date.now() + 1_000), notification("cancelled"), {
      tagExpression: "sched",
    });
    await client.cancelScheduledNotification(cancelled.notificationId);
    await assert.rejects(() => client.cancelScheduledNotification(cancelled.notificationId), (err) => err.statusCode === 404);
    const kept = await client.scheduleNotification(new Date(Date.now() + 2_000), notification("kept"), {
      tagExpression: "sched",
    });
    assert.ok((await nh.scheduled()).some((s) => s.notificationId === kept.notificationId));
    assert.deepEqual(await pushesOf(kept.notificationId), [], "delivered before its time");
    const [push] = await waitFor(async () => (await pushesOf(kept.notificationId)).length && pushesOf(kept.notificationId), "the scheduled push", 15_000);
    assert.equal(push.payload.message.notification.title, "kept");
    assert.deepEqual(await pushesOf(cancelled.notificationId), []);
  });

  test("a Basic-tier hub refuses scheduling with 403", async () => {
    const basic = await startNotificationHubs({ https: true, tier: "basic" });
    try {
      const basicClient = new NotificationHubsClient(basic.connectionString, basic.hub);
      await assert.rejects(
        () => basicClient.scheduleNotification(new Date(Date.now() + 60_000), createTemplateNotification({ body: { a: "b" } }), { tagExpression: "x" }),
        (err) => err.statusCode === 403 && /not available for your tier/.test(err.message),
      );
    } finally {
      await basic.stop();
    }
  });
});

describe("authorization", () => {
  test("a wrong key is refused with 401", async () => {
    const wrong = nh.connectionString.replace(nh.fullKey, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMDA=");
    const wrongClient = new NotificationHubsClient(wrong, nh.hub);
    await assert.rejects(() => wrongClient.getInstallation("anything"), (err) => err.statusCode === 401);
  });

  test("a listen-only key may register installations but not send", async () => {
    const listen = new NotificationHubsClient(nh.listenConnectionString, nh.hub);
    const installationId = id("listen");
    await listen.createOrUpdateInstallation(createFcmV1Installation({ installationId, pushChannel: "t" }));
    assert.equal((await listen.getInstallation(installationId)).installationId, installationId);
    await assert.rejects(
      () => listen.sendNotification(createTemplateNotification({ body: { a: "b" } }), { tagExpression: "x" }),
      (err) => err.statusCode === 401 && /Send claim is required/.test(err.message),
    );
  });
});

test("APIs the emulator does not have answer 501, not a 404 that reads as 'no such hub'", async () => {
  for (const call of [() => client.createRegistrationId(), () => client.listNotificationHubJobs()]) {
    await assert.rejects(call, (err) => err.statusCode === 501 && /not implemented by the devstack emulator/.test(err.message));
  }
});

describe("plain HTTP (make dev)", () => {
  let plain;
  before(async () => {
    plain = await startNotificationHubs();
  });
  after(() => plain?.stop());

  test("default options refuse http:// (the client option does not reach the requests)", async () => {
    assert.match(plain.connectionString, /^Endpoint=http:\/\//);
    const c = new NotificationHubsClient(plain.connectionString, plain.hub, { allowInsecureConnection: true });
    await assert.rejects(() => c.getInstallation("x"), /allowInsecureConnection is false/);
  });

  test("per-call requestOptions.allowInsecureConnection reaches the emulator", async () => {
    const c = new NotificationHubsClient(plain.connectionString, plain.hub);
    const http = { requestOptions: { allowInsecureConnection: true } };
    await c.createOrUpdateInstallation(createFcmV1Installation({ installationId: "over-http", pushChannel: "t" }), http);
    const result = await c.sendBroadcastNotification(
      createFcmV1Notification({ body: { message: { data: { a: "b" } } } }),
      http,
    );
    const pushes = await waitFor(async () => (await plain.pushes({ notificationId: result.notificationId })).length, "push");
    assert.equal(pushes, 1);
  });
});
