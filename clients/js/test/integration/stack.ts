// The local stack as the integration and browser tests see it: started by tests/e2e/test_client_js.py,
// described in the NOTIFY_TEST_STACK environment variable (JSON). Everything goes over real HTTP and
// WebSocket: the app's API, the Web PubSub emulator, the browser demo server (development tokens, the
// producer, the push sink, delivery records).
import { createHmac } from "node:crypto";

export interface TestStack {
  apiBaseUrl: string;
  webPubSubUrl: string;
  webPubSubKey: string;
  hub: string;
  browserDemoUrl: string;
  ackTimeoutSeconds: number;
  devSecret: string;
  devIssuer: string;
  devAudience: string;
  python: string;
  repoRoot: string;
  storageConnectionString: string;
  notificationsQueue: string;
}

/** The stack this run was given; throws (failing the test) when run outside tests/e2e/test_client_js.py. */
export function testStack(): TestStack {
  const raw = process.env["NOTIFY_TEST_STACK"];
  if (!raw) {
    throw new Error("NOTIFY_TEST_STACK is not set: run these tests through `pytest tests/e2e/test_client_js.py` (make test does)");
  }
  return JSON.parse(raw) as TestStack;
}

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

/** An HS256 JWT. */
export function signJwt(claims: Record<string, unknown>, key: string): string {
  const head = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = base64url(JSON.stringify(claims));
  const signature = createHmac("sha256", key).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${signature}`;
}

/** A development bearer token for `userId`, as `python -m devstack token` makes (minutes < 0: expired). */
export function devToken(stack: TestStack, userId: string, minutes = 60): string {
  const now = Math.floor(Date.now() / 1000);
  const exp = now + minutes * 60;
  return signJwt({ sub: userId, iss: stack.devIssuer, aud: stack.devAudience, iat: now, nbf: Math.min(now, exp), exp }, stack.devSecret);
}

async function json(response: Response, what: string): Promise<unknown> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${what} answered ${response.status}: ${text.slice(0, 300)}`);
  return text ? (JSON.parse(text) as unknown) : undefined;
}

/** Enqueue a notification with the producer (through the browser demo server); returns its id. */
export async function send(
  stack: TestStack,
  userId: string,
  fields: { title?: string; body?: string; delivery?: string; notificationId?: string } = {},
): Promise<string> {
  const response = await fetch(`${stack.browserDemoUrl}/send`, {
    method: "POST",
    body: JSON.stringify({ userId, title: "Hello", body: "World", ...fields }),
  });
  return ((await json(response, "send")) as { notificationId: string }).notificationId;
}

export interface Push {
  id: string;
  notificationId: string | null;
  installationId: string;
  platform: string;
  outcome: string;
  payload: unknown;
}

/** The pushes the user's devices received (the Notification Hubs emulator's sink). */
export async function pushes(stack: TestStack, userId: string, notificationId?: string): Promise<Push[]> {
  const response = await fetch(`${stack.browserDemoUrl}/pushes?userId=${encodeURIComponent(userId)}`);
  const all = (await json(response, "pushes")) as Push[];
  return notificationId === undefined ? all : all.filter((p) => p.notificationId === notificationId);
}

export interface DeliveryRecord {
  status: string;
  realtimeSentAt: number;
  pushSentAt: number;
  ackedAt: number;
  deadlinesQueued: number;
}

/** The notification's delivery record, or null before the notifier accepted it. */
export async function delivery(stack: TestStack, userId: string, notificationId: string): Promise<DeliveryRecord | null> {
  const query = `userId=${encodeURIComponent(userId)}&notificationId=${encodeURIComponent(notificationId)}`;
  const response = await fetch(`${stack.browserDemoUrl}/delivery?${query}`);
  if (response.status === 404) return null;
  return (await json(response, "delivery")) as DeliveryRecord;
}

/** Cut a connection's TCP stream without a close frame (a network failure; the emulator's debug route). */
export async function dropConnection(stack: TestStack, connectionId: string): Promise<void> {
  const response = await fetch(`${stack.webPubSubUrl}/_devstack/connections/${encodeURIComponent(connectionId)}/drop`, { method: "POST" });
  await json(response, "drop connection");
}

/** Close a connection from the server side (Web PubSub REST, as the service SDK calls it). */
export async function closeConnection(stack: TestStack, connectionId: string): Promise<void> {
  const url = `${stack.webPubSubUrl}/api/hubs/${stack.hub}/connections/${encodeURIComponent(connectionId)}?api-version=2024-12-01&reason=test`;
  const token = signJwt({ aud: url, exp: Math.floor(Date.now() / 1000) + 60 }, stack.webPubSubKey);
  const response = await fetch(url, { method: "DELETE", headers: { Authorization: `Bearer ${token}` } });
  if (response.status !== 204) throw new Error(`close connection answered ${response.status}: ${await response.text()}`);
}

/** Poll `condition` until it gives something truthy; fail naming `what` after `timeoutMs`. */
export async function waitFor<T>(condition: () => T | Promise<T>, what: string, timeoutMs = 15000, intervalMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Wait until the ack deadline of an in-app notification has certainly been handled: its time has come
 * (the in-app send plus the ack timeout) and the deadlines queue is empty. Tests run one at a time, so no
 * other test's deadline keeps the queue busy for long.
 */
export async function deadlineHandled(stack: TestStack, userId: string, notificationId: string): Promise<DeliveryRecord> {
  const sent = await waitFor(async () => {
    const record = await delivery(stack, userId, notificationId);
    return record && record.realtimeSentAt > 0 ? record : null;
  }, `the in-app send of ${notificationId}`);
  const due = (sent.realtimeSentAt + stack.ackTimeoutSeconds) * 1000;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())));
  return waitFor(async () => {
    const record = await delivery(stack, userId, notificationId);
    return record && record.deadlinesQueued === 0 ? record : null;
  }, `the ack deadline of ${notificationId}`, stack.ackTimeoutSeconds * 1000 + 20000, 200);
}

/** A fresh user id for one test. */
export function newUser(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}
