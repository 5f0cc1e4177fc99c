import assert from "node:assert/strict";
import { test } from "node:test";

import {
  FakeClock,
  SyncStorage,
  ackResult,
  envelope,
  fakeTransport,
  negotiateAnswer,
  scriptedFetch,
  settle,
} from "../test/support/fakes.js";
import { createNotifyClient, type NotifyClientOptions } from "./client.js";
import type { NotifyError } from "./errors.js";
import { createSeenStore, flushSeenStore } from "./seen-store.js";
import type { Notification, NotificationSource, StateChange } from "./types.js";

const FCM_PUSH = (id: string) => ({
  data: { notificationId: id, title: "Hello", body: "World", type: "chat", data: '{"room":"r1"}' },
  notification: { title: "Hello", body: "World" },
});

function setup(options: Partial<NotifyClientOptions> = {}, route?: Parameters<typeof scriptedFetch>[0]) {
  const clock = new FakeClock();
  const { fetch, requests } = scriptedFetch(route ?? (() => negotiateAnswer(clock)));
  const transport = fakeTransport();
  const client = createNotifyClient({
    baseUrl: "http://127.0.0.1:7071",
    getToken: () => "token",
    fetch,
    clock,
    random: () => 1,
    transport: transport.factory,
    ...options,
  });
  const received: Array<[string, NotificationSource]> = [];
  const states: StateChange[] = [];
  const errors: NotifyError[] = [];
  client.on("state", (s) => states.push(s));
  client.on("error", (e) => errors.push(e));
  return { client, clock, requests, transport, received, states, errors };
}

async function connected(s: ReturnType<typeof setup>): Promise<void> {
  const started = s.client.start();
  await settle();
  s.transport.get().connect();
  await started;
}

function listen(s: ReturnType<typeof setup>): void {
  s.client.onNotification((n: Notification, source) => {
    s.received.push([n.notificationId, source]);
  });
}

test("start negotiates, connects and reports the states", async () => {
  const s = setup();
  await connected(s);
  assert.equal(s.client.state, "connected");
  assert.equal(s.client.connectionId, "conn-1");
  assert.deepEqual(s.states.map((x) => x.state), ["connecting", "connected"]);
  assert.equal(s.requests.length, 1);
  assert.match(s.transport.get().urls[0] ?? "", /^ws:\/\/127\.0\.0\.1:8080\/client\/hubs\/notify\?access_token=/);
});

test("an in-app notification reaches the listener once and is acked after it ran", async () => {
  const s = setup();
  const order: string[] = [];
  s.client.onNotification(async (n) => {
    order.push(`listener ${n.notificationId}`);
    await settle();
    order.push(`acks so far: ${s.transport.get().acks.length}`);
  });
  await connected(s);
  s.transport.get().receive(envelope("n-1"));
  s.transport.get().receive(envelope("n-1")); // the same id again (a redelivery)
  await settle();
  await settle();
  assert.deepEqual(order, ["listener n-1", "acks so far: 0"]);
  assert.deepEqual(s.transport.get().acks, ["n-1"], "acked once; the second ack waits for the first answer");
  const answered: unknown[] = [];
  s.client.on("ack", (a) => answered.push(a));
  s.transport.get().receive(ackResult("n-1"));
  assert.deepEqual(answered, [{ notificationId: "n-1", ok: true }]);
});

test("the same id in-app and then as a push: one listener call, the push is not displayed", async () => {
  const s = setup();
  listen(s);
  await connected(s);
  s.transport.get().receive(envelope("n-1"));
  const decision = await s.client.handlePush(FCM_PUSH("n-1"));
  assert.equal(decision.display, false);
  assert.equal(decision.reason, "duplicate");
  assert.deepEqual(s.received, [["n-1", "realtime"]]);
});

test("a push first and then the same id in-app: one listener call, and the in-app copy is still acked", async () => {
  const s = setup();
  listen(s);
  await connected(s);
  const decision = await s.client.handlePush(FCM_PUSH("n-2"));
  assert.deepEqual([decision.display, decision.reason, decision.notification?.title], [true, "new", "Hello"]);
  s.transport.get().receive(envelope("n-2"));
  await settle();
  assert.deepEqual(s.received, [["n-2", "push"]]);
  assert.deepEqual(s.transport.get().acks, ["n-2"]);
});

test("across a restart: a push for a notification shown before is not displayed again", async () => {
  const storage = new SyncStorage();
  const first = setup({ store: createSeenStore({ storage }) });
  listen(first);
  await connected(first);
  first.transport.get().receive(envelope("n-3"));
  await settle();
  await first.client.stop();
  const store = createSeenStore({ storage });
  await flushSeenStore(store);
  const second = setup({ store }); // the app was killed and started again
  listen(second);
  assert.equal((await second.client.handlePush(FCM_PUSH("n-3"))).display, false);
  assert.deepEqual(second.received, []);
});

test("a retract calls onRetract, is not displayed, and makes a later push of the same id a duplicate", async () => {
  const removed: string[] = [];
  const s = setup({ onRetract: (r) => void removed.push(`${r.notificationId}/${r.collapseId}`) });
  listen(s);
  const retract = { data: { kind: "retract", notificationId: "n-7", collapseId: "n-7" } };
  assert.deepEqual(await s.client.handlePush(retract), {
    display: false,
    notification: null,
    reason: "retract",
    retraction: { notificationId: "n-7", collapseId: "n-7" },
  });
  assert.deepEqual(removed, ["n-7/n-7"]);
  assert.equal((await s.client.handlePush(FCM_PUSH("n-7"))).reason, "duplicate");
  assert.deepEqual(s.received, []);
});

test("a failing onRetract is an error event; handlePush still answers", async () => {
  const s = setup({ onRetract: () => Promise.reject(new Error("no such notification")) });
  const errors: string[] = [];
  s.client.on("error", (error) => void errors.push(error.code ?? ""));
  const decision = await s.client.handlePush({ kind: "retract", notificationId: "n-8", aps: {} });
  assert.equal(decision.reason, "retract");
  assert.deepEqual(errors, ["retract_failed"]);
});

test("a payload that is not one of ours is not displayed and reaches no listener", async () => {
  const s = setup();
  listen(s);
  assert.deepEqual(await s.client.handlePush({ data: { promo: "50% off" } }), {
    display: false,
    notification: null,
    reason: "not_a_notification",
  });
  assert.deepEqual(s.received, []);
});

test("in-app notifications wait, unacked, until a listener is registered", async () => {
  const s = setup();
  await connected(s);
  s.transport.get().receive(envelope("n-4"));
  await settle();
  assert.deepEqual(s.transport.get().acks, []);
  listen(s);
  await settle();
  assert.deepEqual(s.received, [["n-4", "realtime"]]);
  assert.deepEqual(s.transport.get().acks, ["n-4"]);
});

test("with autoAck off nothing is acked until the app calls ack()", async () => {
  const s = setup({ autoAck: false });
  listen(s);
  await connected(s);
  s.transport.get().receive(envelope("n-5"));
  await settle();
  assert.deepEqual(s.transport.get().acks, []);
  const outcome = s.client.ack("n-5");
  s.transport.get().receive(ackResult("n-5"));
  assert.deepEqual(await outcome, { notificationId: "n-5", ok: true });
});

test("a rejected ack is an ack outcome and an error event, not silence", async () => {
  const s = setup();
  listen(s);
  await connected(s);
  const outcome = s.client.ack("n-6");
  s.transport.get().receive(ackResult("n-6", "unknown_notification"));
  const result = await outcome;
  assert.ok(!result.ok);
  assert.deepEqual(s.errors.map((e) => [e.operation, e.code, e.notificationId]), [["ack", "unknown_notification", "n-6"]]);
});

test("a listener that throws is an error event; the others run and the notification is still acked", async () => {
  const s = setup();
  s.client.onNotification(() => {
    throw new Error("render failed");
  });
  listen(s);
  await connected(s);
  s.transport.get().receive(envelope("n-7"));
  await settle();
  assert.deepEqual(s.received, [["n-7", "realtime"]]);
  assert.equal(s.errors[0]?.code, "listener_failed");
  assert.deepEqual(s.transport.get().acks, ["n-7"]);
});

test("a lost connection reconnects with backoff and a failed attempt negotiates again", async () => {
  const s = setup({ reconnect: { initialDelayMs: 1000, maxDelayMs: 8000 } });
  await connected(s);
  const transport = s.transport.get();
  transport.drop();
  assert.equal(s.client.state, "reconnecting");
  assert.deepEqual(s.clock.pending().filter((d) => d <= 8000), [1000]);
  transport.failNextStart = new Error("Unexpected server response: 401");
  await s.clock.advance(1000); // attempt 1 fails: the URL it used is dropped
  assert.equal(transport.starts, 2);
  assert.equal(s.errors.at(-1)?.operation, "connect");
  const waits = s.states.filter((x) => x.state === "reconnecting" && x.delayMs !== undefined).map((x) => x.delayMs);
  assert.deepEqual(waits, [1000, 2000]);
  await s.clock.advance(2000);
  assert.equal(transport.starts, 3);
  transport.connect("conn-2");
  assert.equal(s.client.state, "connected");
  assert.equal(s.client.connectionId, "conn-2");
  assert.equal(s.requests.filter((r) => r.url.endsWith("/api/negotiate")).length, 2, "a new URL after the failure");
});

test("pending acks are sent again after a reconnect", async () => {
  const s = setup();
  listen(s);
  await connected(s);
  s.transport.get().receive(envelope("n-8"));
  await settle();
  s.transport.get().drop();
  await s.clock.advance(1000);
  s.transport.get().connect("conn-2");
  assert.deepEqual(s.transport.get().acks, ["n-8", "n-8"]);
});

test("the access URL is renewed while connected, when due, without touching the connection", async () => {
  const s = setup({ tokenCheckIntervalMs: 30_000 });
  await connected(s);
  await s.clock.advance(54 * 60_000);
  assert.equal(s.client.negotiations, 1);
  await s.clock.advance(60_000);
  assert.equal(s.client.negotiations, 2);
  assert.equal(s.transport.get().starts, 1);
  assert.equal(s.client.state, "connected");
});

test("negotiate refused with 401: the token is refreshed once, then it is an error and a retry", async () => {
  const asked: boolean[] = [];
  const clock = new FakeClock();
  const s = setup(
    {
      clock,
      getToken: ({ forceRefresh }) => {
        asked.push(forceRefresh);
        return "expired";
      },
    },
    () => ({ status: 401, body: { error: { code: "unauthorized", message: "token has expired" } } }),
  );
  void s.client.start();
  await settle();
  assert.deepEqual(asked, [false, true]);
  assert.equal(s.errors[0]?.code, "unauthorized");
  assert.equal(s.client.state, "reconnecting");
});

test("stop closes, ends pending acks and stays stopped", async () => {
  const s = setup();
  listen(s);
  await connected(s);
  const outcome = s.client.ack("n-9");
  await s.client.stop();
  assert.equal(s.client.state, "stopped");
  const result = await outcome;
  assert.ok(!result.ok && result.error.code === "stopped");
  await s.clock.advance(120_000);
  assert.equal(s.transport.get().starts, 1, "no reconnect after stop");
});

test("registerDevice and unregisterDevice call the device routes with the user's token", async () => {
  const clock = new FakeClock();
  const s = setup({ clock }, (r) =>
    r.method === "PUT" ? { status: 200, body: { installationId: "phone-1", platform: "fcmv1" } } : { status: 204 },
  );
  assert.deepEqual(await s.client.registerDevice({ installationId: "phone-1", platform: "fcm", pushChannel: "tok" }), {
    installationId: "phone-1",
    platform: "fcmv1",
  });
  await s.client.unregisterDevice("phone/../1");
  assert.deepEqual(
    s.requests.map((r) => [r.method, r.url, r.body]),
    [
      ["PUT", "http://127.0.0.1:7071/api/devices/phone-1", { platform: "fcm", pushChannel: "tok" }],
      ["DELETE", "http://127.0.0.1:7071/api/devices/phone%2F..%2F1", undefined],
    ],
  );
});
