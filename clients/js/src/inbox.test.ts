import assert from "node:assert/strict";
import { test } from "node:test";

import { FakeClock, SyncStorage, envelope, fakeTransport, negotiateAnswer, scriptedFetch, settle, type SeenRequest } from "../test/support/fakes.js";
import { createNotifyClient, type NotifyClientOptions } from "./client.js";
import type { NotifyError } from "./errors.js";
import type { InboxChanges, InboxCounts } from "./inbox.js";

const item = (id: string, version: number, extra: Record<string, unknown> = {}) => ({
  notificationId: id,
  title: "Hello",
  body: "World",
  type: "chat",
  data: {},
  createdAt: "2026-12-01T12:00:00.000Z",
  expiresAt: null,
  read: false,
  readAt: null,
  seen: false,
  seenAt: null,
  archived: false,
  archivedAt: null,
  deleted: false,
  version,
  ...extra,
});
const counts = (unread: number, unseen = unread, total = unread) => ({ unread, unseen, total });
const marks = (id: string, version: number, read = true) => ({ notificationId: id, read, seen: read, archived: false, deleted: false, version });

/** A service answering the inbox routes from `inbox(request)` and negotiate as usual. */
function setup(inbox: (request: SeenRequest) => { status: number; body?: unknown }, options: Partial<NotifyClientOptions> = {}) {
  const clock = new FakeClock();
  const { fetch, requests } = scriptedFetch((request) =>
    request.url.includes("/api/inbox") ? inbox(request) : negotiateAnswer(clock),
  );
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
  const errors: NotifyError[] = [];
  client.on("error", (e) => errors.push(e));
  const inboxRequests = () => requests.filter((r) => r.url.includes("/api/inbox")).map((r) => `${r.method} ${r.url.replace("http://127.0.0.1:7071", "")}`);
  return { client, clock, requests, transport, errors, inboxRequests };
}

async function connect(s: ReturnType<typeof setup>, connectionId = "conn-1"): Promise<void> {
  const started = s.client.start();
  await settle();
  s.transport.get().connect(connectionId);
  await started;
  await settle();
}

const changesAnswer = (cursor: string, changes: unknown[] = [], more = false, reset = false, c = counts(0)) => ({
  status: 200,
  body: { changes, cursor, more, reset, counts: c, retentionDays: 90 },
});

test("an app that never uses the inbox makes no inbox request", async () => {
  const s = setup(() => assert.fail("no inbox request expected"));
  await connect(s);
  s.transport.get().receive(envelope("n-1"));
  await s.clock.advance(5000);
  assert.deepEqual(s.inboxRequests(), []);
});

test("once used, the inbox catches up at once and again on every reconnect, from its cursor", async () => {
  const answers = [
    changesAnswer("c1", [item("n-1", 1), item("n-2", 2)], true, false, counts(2)),
    changesAnswer("c2", [item("n-3", 3)], false, false, counts(3)),
    changesAnswer("c3", [{ notificationId: "n-2", version: 4, deleted: true }], false, false, counts(2)),
  ];
  const s = setup(() => answers.shift() ?? changesAnswer("c3"));
  await connect(s);
  const seen: InboxChanges[] = [];
  const countsSeen: InboxCounts[] = [];
  s.client.inbox.on("changes", (c) => seen.push(c));
  s.client.inbox.on("counts", (c) => countsSeen.push(c));
  await s.clock.advance(0);
  assert.deepEqual(s.inboxRequests(), ["GET /api/inbox/changes", "GET /api/inbox/changes?after=c1"]);
  assert.deepEqual(seen.flatMap((c) => c.changes.map((x) => x.notificationId)), ["n-1", "n-2", "n-3"]);
  assert.deepEqual(s.client.inbox.counts, counts(3));
  assert.equal(s.client.inbox.cursor, "c2");

  s.transport.get().drop();
  await s.clock.advance(1000);
  s.transport.get().connect("conn-2");
  await s.clock.advance(0);
  assert.equal(s.inboxRequests().at(-1), "GET /api/inbox/changes?after=c2");
  assert.deepEqual(seen.at(-1)?.changes, [{ notificationId: "n-2", read: false, seen: false, archived: false, deleted: true, version: 4 }]);
  assert.deepEqual(countsSeen, [counts(2), counts(3), counts(2)]);
  assert.deepEqual(s.errors, []);
});

test("an inbox envelope that follows the cursor is applied; one after a gap makes the client catch up", async () => {
  const answers = [changesAnswer("c1", [], false, false, counts(2)), changesAnswer("c4", [item("n-1", 4, { read: true })], false, false, counts(0))];
  const s = setup(() => answers.shift() ?? changesAnswer("c4"));
  await connect(s);
  const seen: InboxChanges[] = [];
  s.client.inbox.on("changes", (c) => seen.push(c));
  await s.clock.advance(0);
  const inbox = (previousCursor: string, cursor: string, change: unknown, c: unknown) => ({
    kind: "inbox", protocolVersion: 1, reason: "read", changes: [change], counts: c, previousCursor, cursor,
  });
  s.transport.get().receive(inbox("c1", "c2", marks("n-2", 2), counts(1)));
  await s.clock.advance(0);
  assert.equal(s.client.inbox.cursor, "c2");
  assert.deepEqual(s.client.inbox.counts, counts(1));
  assert.deepEqual(seen.at(-1), { changes: [marks("n-2", 2)], reset: false, source: "envelope" });
  assert.equal(s.inboxRequests().length, 1, "applied without a request");

  s.transport.get().receive(inbox("c3", "c4", marks("n-1", 4), counts(0))); // c2 -> c3 was missed
  await s.clock.advance(0);
  assert.deepEqual(s.inboxRequests().at(-1), "GET /api/inbox/changes?after=c2");
  assert.equal(s.client.inbox.cursor, "c4");
  assert.deepEqual(s.client.inbox.counts, counts(0));
});

test("markRead applies its answer; the envelope of the same change then costs nothing", async () => {
  const s = setup((request) => {
    if (request.url.endsWith("/api/inbox/items/n-1/read")) {
      return { status: 200, body: { item: marks("n-1", 6), changed: true, counts: counts(0), previousCursor: "c5", cursor: "c6" } };
    }
    return changesAnswer("c5", [], false, false, counts(1));
  });
  await connect(s);
  void s.client.inbox;
  await s.clock.advance(0);
  const answer = await s.client.markRead("n-1");
  assert.deepEqual(answer, marks("n-1", 6));
  assert.equal(s.client.inbox.cursor, "c6");
  assert.deepEqual(s.client.inbox.counts, counts(0));
  s.transport.get().receive({ kind: "inbox", protocolVersion: 1, reason: "read", changes: [marks("n-1", 6)], counts: counts(0), previousCursor: "c5", cursor: "c6" });
  await s.clock.advance(0);
  assert.deepEqual(s.inboxRequests(), ["GET /api/inbox/changes", "POST /api/inbox/items/n-1/read"]);
  await assert.rejects(s.client.markRead("not an id"), TypeError);
});

test("a listed in-app notification makes the inbox catch up shortly after, an unlisted one does not", async () => {
  const s = setup(() => changesAnswer("c1"), { inbox: { arrivalDelayMs: 300 } });
  await connect(s);
  void s.client.inbox;
  await s.clock.advance(0);
  s.transport.get().receive(envelope("typing-1", { inbox: false }));
  await s.clock.advance(1000);
  assert.equal(s.inboxRequests().length, 1);
  s.transport.get().receive(envelope("n-9"));
  s.transport.get().receive(envelope("n-10"));
  await s.clock.advance(299);
  assert.equal(s.inboxRequests().length, 1);
  await s.clock.advance(1);
  assert.deepEqual(s.inboxRequests(), ["GET /api/inbox/changes", "GET /api/inbox/changes?after=c1"], "one catch-up for both");
});

test("the cursor and the counts survive a restart in the given storage", async () => {
  const storage = new SyncStorage();
  const first = setup(() => changesAnswer("c7", [], false, false, counts(4)), { inbox: { storage, key: "inbox.alice" } });
  await connect(first);
  void first.client.inbox;
  await first.clock.advance(0);
  assert.deepEqual(JSON.parse(storage.items.get("inbox.alice") ?? "{}"), { cursor: "c7", counts: counts(4) });
  const second = setup(() => changesAnswer("c8"), { inbox: { storage, key: "inbox.alice" } });
  await connect(second);
  void second.client.inbox;
  await second.clock.advance(0);
  assert.deepEqual(second.inboxRequests(), ["GET /api/inbox/changes?after=c7"]);
});

test("a reset drops what the client knew of versions", async () => {
  const answers = [changesAnswer("c2", [item("n-1", 2)]), changesAnswer("c1", [item("n-1", 1)], false, true)];
  const s = setup(() => answers.shift() ?? changesAnswer("c1"));
  await connect(s);
  const seen: InboxChanges[] = [];
  s.client.inbox.on("changes", (c) => seen.push(c));
  await s.clock.advance(0);
  await s.client.inbox.catchUp();
  assert.deepEqual(seen.map((c) => [c.reset, c.changes.map((x) => x.version)]), [[false, [2]], [true, [1]]]);
});

test("list and readAll with its resume tokens", async () => {
  const s = setup((request) => {
    if (request.url.includes("/api/inbox?")) {
      return { status: 200, body: { items: [item("n-2", 5)], next: "p1", cursor: "c5", counts: counts(2), retentionDays: 90 } };
    }
    if (request.url.includes("/read-all")) {
      const resumed = request.url.includes("resume=");
      return { status: 200, body: { marked: resumed ? 1 : 99, done: resumed, resume: resumed ? null : "r 1", counts: counts(0), cursor: "c9" } };
    }
    return changesAnswer("c5");
  });
  const page = await s.client.inbox.list({ limit: 1, status: "unread", type: "chat & co" });
  assert.deepEqual(page, { items: [item("n-2", 5)], next: "p1", counts: counts(2) });
  assert.equal(await s.client.inbox.readAll({ type: "chat" }), 100);
  assert.deepEqual(s.inboxRequests().slice(0, 3), [
    "GET /api/inbox?limit=1&type=chat%20%26%20co&status=unread",
    "POST /api/inbox/read-all?type=chat",
    "POST /api/inbox/read-all?type=chat&resume=r%201",
  ]);
  assert.deepEqual(s.client.inbox.counts, counts(0));
});

test("an error answer of an inbox route rejects with the service's code", async () => {
  const s = setup(() => ({ status: 404, body: { error: { code: "not_found", message: "no such notification in the inbox" } } }));
  await assert.rejects(s.client.inbox.get("n-404"), (e: NotifyError) => e.code === "not_found" && e.operation === "inbox" && e.status === 404);
});
