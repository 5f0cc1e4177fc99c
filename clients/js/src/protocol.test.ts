import assert from "node:assert/strict";
import { test } from "node:test";

import { ackResult, envelope } from "../test/support/fakes.js";
import { parseServerMessage } from "./protocol.js";

test("an envelope becomes a notification", () => {
  assert.deepEqual(parseServerMessage(envelope("n-1")), {
    kind: "notification",
    notification: { notificationId: "n-1", title: "Hello", body: "World", type: "chat", data: { room: "r1" } },
    listed: true,
  });
});

test("an envelope says whether the notification is listed in the inbox; inbox envelopes are read", () => {
  assert.equal((parseServerMessage(envelope("n-1", { inbox: false })) as { listed: boolean }).listed, false);
  const inbox = { kind: "inbox", protocolVersion: 1, reason: "read", changes: [], counts: { unread: 0, unseen: 0, total: 0 } };
  assert.deepEqual(parseServerMessage(inbox), { kind: "inbox", envelope: inbox });
  assert.equal(parseServerMessage({ ...inbox, protocolVersion: 2 }), null);
});

test("an envelope as JSON text, and one without protocolVersion (older servers), are read too", () => {
  assert.equal(parseServerMessage(JSON.stringify(envelope("n-1")))?.kind, "notification");
  const { protocolVersion, ...old } = envelope("n-1");
  assert.equal(protocolVersion, 1);
  assert.equal(parseServerMessage(old)?.kind, "notification");
});

test("messages of a newer protocol version, unknown kinds and foreign data are ignored", () => {
  for (const data of [envelope("n-1", { protocolVersion: 2 }), { kind: "inboxChanged", protocolVersion: 1 }, "hello", 42, null, [], envelope("bad id")]) {
    assert.equal(parseServerMessage(data), null, JSON.stringify(data));
  }
});

test("unknown fields do not matter", () => {
  assert.equal(parseServerMessage(envelope("n-1", { priority: "high" }))?.kind, "notification");
});

test("ack answers are read with their error", () => {
  assert.deepEqual(parseServerMessage(ackResult("n-1")), { kind: "ackResult", notificationId: "n-1", ok: true });
  assert.deepEqual(parseServerMessage(ackResult(null, "malformed")), {
    kind: "ackResult",
    notificationId: null,
    ok: false,
    error: { code: "malformed", message: "failed: malformed", retryable: false },
  });
});
