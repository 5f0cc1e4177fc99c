import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff } from "./backoff.js";

test("the bound doubles from the initial delay up to the maximum", () => {
  const backoff = new Backoff({ initialDelayMs: 1000, maxDelayMs: 30000 });
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 20].map((n) => backoff.bound(n)), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test("each delay is drawn in [0, bound] (full jitter)", () => {
  const draws = [0, 0.5, 0.999999, 1];
  const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000 }, () => draws.shift() ?? 0);
  assert.deepEqual([backoff.delay(3), backoff.delay(3), backoff.delay(3), backoff.delay(3)], [0, 200, 400, 400]);
});

test("a random source that misbehaves is clamped into the bound", () => {
  const high = new Backoff({ initialDelayMs: 100 }, () => 7);
  const low = new Backoff({ initialDelayMs: 100 }, () => -3);
  assert.equal(high.delay(1), 100);
  assert.equal(low.delay(1), 0);
});

test("nonsense options are refused", () => {
  assert.throws(() => new Backoff({ initialDelayMs: 0 }), RangeError);
  assert.throws(() => new Backoff({ maxDelayMs: Number.NaN }), RangeError);
  assert.throws(() => new Backoff({ multiplier: 0.5 }), RangeError);
});

test("a maximum below the initial delay is raised to it", () => {
  assert.equal(new Backoff({ initialDelayMs: 5000, maxDelayMs: 10 }).bound(9), 5000);
});
