import assert from "node:assert/strict";
import { test } from "node:test";

import { FakeClock } from "../test/support/fakes.js";
import { AckTracker } from "./acks.js";
import { Backoff } from "./backoff.js";
import type { AckOutcome } from "./types.js";

function tracker(options: { answerTimeoutMs?: number; maxAttempts?: number } = {}) {
  const clock = new FakeClock();
  const sent: string[] = [];
  const outcomes: AckOutcome[] = [];
  let failSends = false;
  const acks = new AckTracker(
    async (id) => {
      if (failSends) throw new Error("The connection is not connected.");
      sent.push(id);
    },
    clock,
    new Backoff({ initialDelayMs: 1000 }, () => 1),
    (o) => outcomes.push(o),
    { answerTimeoutMs: 5000, maxAttempts: 3, ...options },
  );
  return { acks, clock, sent, outcomes, failSends: (on: boolean) => (failSends = on) };
}

test("an ack waits for the connection, is sent once and ends with the answer", async () => {
  const { acks, sent } = tracker();
  const outcome = acks.ack("n-1");
  assert.equal(acks.ack("n-1"), outcome, "acking again before the answer is the same ack");
  assert.deepEqual(sent, []);
  acks.connectionUp();
  assert.deepEqual(sent, ["n-1"]);
  acks.answered("n-1", true);
  assert.deepEqual(await outcome, { notificationId: "n-1", ok: true });
  assert.deepEqual(acks.waiting, []);
});

test("no answer in time: sent again, and given up after maxAttempts with no_answer", async () => {
  const { acks, clock, sent, outcomes } = tracker();
  acks.connectionUp();
  const outcome = acks.ack("n-1");
  await clock.advance(5000);
  await clock.advance(5000);
  assert.deepEqual(sent, ["n-1", "n-1", "n-1"]);
  await clock.advance(5000);
  const result = await outcome;
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.error.code, "no_answer");
  assert.equal(outcomes.length, 1);
});

test("a dropped connection loses the answer: the ack is sent again after the reconnect", async () => {
  const { acks, clock, sent } = tracker();
  acks.connectionUp();
  void acks.ack("n-1");
  acks.connectionDown();
  await clock.advance(60_000); // nothing is sent while disconnected
  assert.deepEqual(sent, ["n-1"]);
  acks.connectionUp();
  assert.deepEqual(sent, ["n-1", "n-1"]);
});

test("a send that fails (socket recovering) is repeated by the answer timer", async () => {
  const { acks, clock, sent, failSends } = tracker();
  acks.connectionUp();
  failSends(true);
  void acks.ack("n-1");
  failSends(false);
  await clock.advance(5000);
  assert.deepEqual(sent, ["n-1"]);
});

test("a retryable error answer is retried with backoff; a final one settles as rejected", async () => {
  const { acks, clock, sent } = tracker();
  acks.connectionUp();
  const outcome = acks.ack("n-1");
  acks.answered("n-1", false, { code: "unavailable", message: "storage down", retryable: true });
  await clock.advance(999);
  assert.deepEqual(sent, ["n-1"]);
  await clock.advance(1);
  assert.deepEqual(sent, ["n-1", "n-1"]);
  acks.answered("n-1", false, { code: "unknown_notification", message: "no such notification", retryable: false });
  const result = await outcome;
  assert.ok(!result.ok);
  assert.equal(result.error.code, "unknown_notification");
  assert.equal(result.error.operation, "ack");
  assert.equal(result.error.notificationId, "n-1");
});

test("an answer for an ack that is not pending is ignored", () => {
  const { acks, outcomes } = tracker();
  acks.answered("nobody-asked", true);
  assert.deepEqual(outcomes, []);
});

test("clear settles every pending ack as stopped", async () => {
  const { acks } = tracker();
  const outcome = acks.ack("n-1");
  acks.clear("the client stopped");
  const result = await outcome;
  assert.ok(!result.ok && result.error.code === "stopped");
});
