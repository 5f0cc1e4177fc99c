// The SDK against the local stack over real HTTP and WebSocket: the app's API on the local Functions host,
// @azure/web-pubsub-client against the Web PubSub emulator, pushes through the Notification Hubs emulator.
import assert from "node:assert/strict";
import { after, test } from "node:test";

import {
  createNotifyClient,
  createSeenStore,
  flushSeenStore,
  type AckOutcome,
  type FetchLike,
  type KeyValueStorage,
  type Notification,
  type NotificationSource,
  type NotifyClient,
  type NotifyClientOptions,
  type NotifyError,
} from "../../src/index.js";
import {
  closeConnection,
  deadlineHandled,
  delivery,
  devToken,
  dropConnection,
  newUser,
  pushes,
  send,
  testStack,
  waitFor,
} from "./stack.js";

const stack = testStack();
const clients: NotifyClient[] = [];

after(async () => {
  await Promise.all(clients.map((c) => c.stop()));
});

interface Harness {
  client: NotifyClient;
  received: Array<[string, NotificationSource]>;
  acks: AckOutcome[];
  errors: NotifyError[];
}

function harness(userId: string, options: Partial<NotifyClientOptions> = {}): Harness {
  const client = createNotifyClient({
    baseUrl: stack.apiBaseUrl,
    getToken: () => devToken(stack, userId),
    ...options,
  });
  clients.push(client);
  const h: Harness = { client, received: [], acks: [], errors: [] };
  client.onNotification((n: Notification, source) => {
    h.received.push([n.notificationId, source]);
  });
  client.on("ack", (a) => h.acks.push(a));
  client.on("error", (e) => h.errors.push(e));
  return h;
}

async function registerPhone(client: NotifyClient): Promise<string> {
  const installationId = newUser("phone");
  const answer = await client.registerDevice({
    installationId,
    platform: "fcmv1",
    pushChannel: `integration-fcm-token-${installationId}-0000000000`,
  });
  assert.deepEqual(answer, { installationId, platform: "fcmv1" });
  return installationId;
}

function receivedOnce(h: Harness, id: string): boolean {
  return h.received.some(([n]) => n === id);
}

function memoryStorage(): KeyValueStorage & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return { items, getItem: (k) => items.get(k) ?? null, setItem: (k, v) => void items.set(k, v) };
}

test("acked in-app: the ack is answered ok and no push follows the deadline", async () => {
  const userId = newUser("acked");
  const h = harness(userId);
  await registerPhone(h.client);
  await h.client.start();
  assert.equal(h.client.state, "connected");
  const id = await send(stack, userId, { title: "In-app" });
  await waitFor(() => receivedOnce(h, id), `notification ${id} in-app`);
  await waitFor(() => h.acks.find((a) => a.notificationId === id), `the answer to the ack of ${id}`);
  assert.deepEqual(h.acks, [{ notificationId: id, ok: true }]);
  const record = await deadlineHandled(stack, userId, id);
  assert.equal(record.status, "acked");
  assert.deepEqual(await pushes(stack, userId, id), []);
  assert.deepEqual(h.received, [[id, "realtime"]]);
  assert.deepEqual(h.errors, []);
});

test("a client that stops acking: the push reaches handlePush after a restart and is shown once", async () => {
  const userId = newUser("silent");
  const storage = memoryStorage(); // what localStorage / AsyncStorage keep across the restart
  const first = harness(userId, { autoAck: false, store: createSeenStore({ storage }) });
  await registerPhone(first.client);
  await first.client.start();
  const id = await send(stack, userId, { title: "Never acked" });
  await waitFor(() => receivedOnce(first, id), `notification ${id} in-app`);
  await first.client.stop(); // the app is killed before it acks
  const [push] = await waitFor(async () => {
    const found = await pushes(stack, userId, id);
    return found.length > 0 ? found : null;
  }, `the push of ${id} after the ack timeout`, stack.ackTimeoutSeconds * 1000 + 20000, 200);
  assert.ok(push);
  // The notifier records the push just after sending it: wait for the record, not only the sink.
  const pushed = await waitFor(async () => {
    const record = await delivery(stack, userId, id);
    return record?.status === "pushed" ? record : null;
  }, `the recorded push of ${id}`);
  assert.ok(pushed.pushSentAt > 0);

  const store = createSeenStore({ storage });
  const second = harness(userId, { store }); // the app starts again, from its stored ids
  const decision = await second.client.handlePush(push.payload);
  assert.equal(decision.display, false);
  assert.equal(decision.reason, "duplicate");
  assert.equal(decision.notification?.notificationId, id);
  assert.deepEqual(first.received, [[id, "realtime"]]);
  assert.deepEqual(second.received, []);
  await flushSeenStore(store);
});

test("the same id through both channels: one listener call", async () => {
  const userId = newUser("both");
  const h = harness(userId);
  await registerPhone(h.client);
  await h.client.start();
  const id = await send(stack, userId, { title: "Both channels", delivery: "both" });
  const [push] = await waitFor(async () => {
    const found = await pushes(stack, userId, id);
    return found.length > 0 ? found : null;
  }, `the push of ${id}`);
  assert.ok(push);
  await waitFor(() => receivedOnce(h, id), `notification ${id} in-app`);
  const decision = await h.client.handlePush(push.payload);
  assert.equal(decision.display, false);
  assert.deepEqual(h.received, [[id, "realtime"]]);
  await waitFor(() => h.acks.find((a) => a.notificationId === id), `the answer to the ack of ${id}`);
});

test("token expiry mid-session: renegotiated (after a 401 and a token refresh) without losing a notification", async () => {
  const userId = newUser("renew");
  let offset = 0;
  let bearerExpired = false;
  const negotiateStatuses: number[] = [];
  const countingFetch: FetchLike = async (url, init) => {
    const response = await fetch(url, init as RequestInit);
    if (url.endsWith("/api/negotiate")) negotiateStatuses.push(response.status);
    return response;
  };
  const h = harness(userId, {
    fetch: countingFetch,
    // The app's own token expires too: the first call after that gets one that the API refuses.
    getToken: ({ forceRefresh }) => devToken(stack, userId, bearerExpired && !forceRefresh ? -5 : 60),
    // The SDK's clock runs ahead on demand, so the one-hour client token comes due without waiting an hour.
    clock: { now: () => Date.now() + offset, setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout) },
    tokenCheckIntervalMs: 100,
  });
  await h.client.start();
  const firstConnection = h.client.connectionId;
  assert.equal(h.client.negotiations, 1);

  bearerExpired = true;
  offset = 56 * 60 * 1000; // past the renewal point (five minutes before the hour)
  await waitFor(() => h.client.negotiations === 2, "the client access URL to be renewed");
  assert.deepEqual(negotiateStatuses, [200, 401, 200]);
  assert.equal(h.client.connectionId, firstConnection, "renewal does not touch the open connection");

  const during = await send(stack, userId, { title: "Right after the renewal" });
  await waitFor(() => receivedOnce(h, during), `notification ${during}`);

  // The next connection uses the renewed URL: no negotiate on the way.
  await closeConnection(stack, firstConnection ?? "");
  await waitFor(() => h.client.state === "connected" && h.client.connectionId !== firstConnection, "a new connection");
  assert.equal(h.client.negotiations, 2);
  const later = await send(stack, userId, { title: "On the new connection" });
  await waitFor(() => receivedOnce(h, later), `notification ${later}`);
  assert.deepEqual(
    h.received.map(([id]) => id),
    [during, later],
  );
});

test("socket cut: the connection is recovered and nothing sent meanwhile is lost or doubled", async () => {
  const userId = newUser("cut");
  const h = harness(userId);
  await h.client.start();
  const connectionId = h.client.connectionId ?? "";
  const states: string[] = [];
  h.client.on("state", (s) => states.push(s.state));
  await dropConnection(stack, connectionId);
  const ids: string[] = [];
  for (const title of ["one", "two", "three"]) ids.push(await send(stack, userId, { title, delivery: "realtime" }));
  await waitFor(() => ids.every((id) => receivedOnce(h, id)), "every notification after the recovery", 30000);
  // Each exactly once (the notifier delivers a queue batch in parallel, so not necessarily in order).
  assert.deepEqual(h.received.map(([id]) => id).sort(), [...ids].sort());
  assert.equal(h.client.connectionId, connectionId, "recovered, not reconnected");
  assert.deepEqual(states, [], "a recovery is invisible to the app");
  await waitFor(() => ids.every((id) => h.acks.some((a) => a.notificationId === id && a.ok)), "every ack answered");
});

test("a rejected ack is an error event with the service's code", async () => {
  const userId = newUser("reject");
  const h = harness(userId);
  await h.client.start();
  const outcome = await h.client.ack("no-such-notification");
  assert.equal(outcome.ok, false);
  assert.equal(!outcome.ok && outcome.error.code, "unknown_notification");
  assert.deepEqual(
    h.errors.map((e) => [e.operation, e.code, e.notificationId]),
    [["ack", "unknown_notification", "no-such-notification"]],
  );
});

test("devices: another user cannot take an installation; unregistering twice is fine", async () => {
  const owner = harness(newUser("owner"));
  const other = harness(newUser("other"));
  const installationId = await registerPhone(owner.client);
  await assert.rejects(
    other.client.registerDevice({ installationId, platform: "apns", pushChannel: "ab".repeat(32) }),
    (error: NotifyError) => error.code === "forbidden" && error.status === 403 && error.operation === "registerDevice",
  );
  await assert.rejects(
    owner.client.registerDevice({ installationId, platform: "fcmv1", pushChannel: "short" }),
    (error: NotifyError) => error.code === "bad_request" && error.field === "pushChannel",
  );
  await owner.client.unregisterDevice(installationId);
  await owner.client.unregisterDevice(installationId);
});

test("a token the API refuses: an unauthorized error, retried with backoff until a good token comes", async () => {
  const userId = newUser("badtoken");
  let good = false;
  const h = harness(userId, {
    getToken: () => (good ? devToken(stack, userId) : "not-a-jwt"),
    reconnect: { initialDelayMs: 100, maxDelayMs: 200 },
  });
  void h.client.start();
  await waitFor(() => h.errors.find((e) => e.code === "unauthorized"), "an unauthorized error");
  assert.equal(h.errors[0]?.operation, "negotiate");
  assert.equal(h.client.state, "reconnecting");
  good = true;
  await waitFor(() => h.client.state === "connected", "connected with the good token");
});

test("the inbox: read on one device, the other's counts follow; a restart catches up what came meanwhile", async () => {
  const userId = newUser("inbox");
  const storage = memoryStorage(); // the tablet's localStorage / AsyncStorage
  const phone = harness(userId);
  const tablet = harness(userId, { inbox: { storage, arrivalDelayMs: 50 } });
  await Promise.all([phone.client.start(), tablet.client.start()]);
  const tabletCounts: number[] = [];
  tablet.client.inbox.on("counts", (c) => tabletCounts.push(c.unread));
  const first = await send(stack, userId, { title: "First", delivery: "realtime" });
  const second = await send(stack, userId, { title: "Second", delivery: "realtime" });
  await waitFor(() => receivedOnce(tablet, first) && receivedOnce(tablet, second), "both in-app on the tablet");
  await waitFor(() => tablet.client.inbox.counts?.unread === 2, "the tablet's unread count from the service");

  const page = await phone.client.inbox.list();
  assert.deepEqual(page.items.map((i) => i.notificationId).sort(), [first, second].sort());
  const marked = await phone.client.markRead(first); // the user opens it on the phone
  assert.equal(marked.read, true);
  await waitFor(() => tablet.client.inbox.counts?.unread === 1, "the tablet's count dropping at once");
  assert.equal(tabletCounts.at(-1), 1);

  await tablet.client.stop(); // the tablet app is closed ...
  const meanwhile = await send(stack, userId, { title: "While the tablet was closed", delivery: "push" });
  await waitFor(async () => (await delivery(stack, userId, meanwhile))?.status === "no_devices", "the push attempt");
  const restarted = harness(userId, { inbox: { storage } }); // ... and opened again
  const caughtUp: string[] = [];
  restarted.client.inbox.on("changes", (c) => caughtUp.push(...c.changes.map((x) => x.notificationId)));
  await restarted.client.start();
  await waitFor(() => caughtUp.includes(meanwhile), "the catch-up bringing what arrived while closed");
  assert.ok(!caughtUp.includes(second), "only what came after the stored cursor");
  assert.equal(restarted.client.inbox.counts?.unread, 2);
  assert.deepEqual([...phone.errors, ...tablet.errors, ...restarted.errors], []);
});
