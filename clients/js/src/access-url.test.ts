import assert from "node:assert/strict";
import { test } from "node:test";

import { FakeClock, negotiateAnswer, scriptedFetch } from "../test/support/fakes.js";
import { AccessUrlProvider, MAX_RENEWAL_MARGIN_MS, parseNegotiateResponse, renewalTimes } from "./access-url.js";
import { ApiClient } from "./http.js";

const HOUR = 3600_000;

function provider(clock: FakeClock, answer: () => { status: number; body?: unknown } = () => negotiateAnswer(clock)) {
  const { fetch, requests } = scriptedFetch(() => answer());
  const api = new ApiClient("http://127.0.0.1:7071", () => "bearer-token", fetch, clock, 1000);
  return { urls: new AccessUrlProvider(api, clock), requests };
}

test("a one-hour URL is renewed five minutes before it expires", () => {
  assert.deepEqual(renewalTimes(0, HOUR), { renewAt: HOUR - MAX_RENEWAL_MARGIN_MS, expiresAt: HOUR });
});

test("a short-lived URL is renewed a quarter of its lifetime early", () => {
  assert.deepEqual(renewalTimes(1000, 60_000), { renewAt: 1000 + 45_000, expiresAt: 61_000 });
});

test("a lifetime that cannot be right is capped or treated as expired", () => {
  assert.equal(renewalTimes(0, -5).renewAt, 0);
  assert.equal(renewalTimes(0, Number.NaN).renewAt, 0);
  assert.equal(renewalTimes(0, 1000 * HOUR).expiresAt, 24 * HOUR);
});

test("the URL is negotiated once and reused until it is due", async () => {
  const clock = new FakeClock();
  const { urls, requests } = provider(clock);
  const first = await urls.url();
  await clock.advance(HOUR - MAX_RENEWAL_MARGIN_MS - 1);
  assert.equal(await urls.url(), first);
  assert.equal(await urls.renewIfDue(), false);
  assert.equal(requests.length, 1);
  assert.equal(requests[0]?.method, "POST");
  assert.equal(requests[0]?.url, "http://127.0.0.1:7071/api/negotiate");
  assert.equal(requests[0]?.headers["Authorization"], "Bearer bearer-token");
});

test("once due, renewIfDue negotiates a new URL", async () => {
  const clock = new FakeClock();
  const { urls, requests } = provider(clock);
  const first = await urls.url();
  await clock.advance(HOUR - MAX_RENEWAL_MARGIN_MS);
  assert.equal(await urls.renewIfDue(), true);
  assert.notEqual(await urls.url(), first);
  assert.equal(requests.length, 2);
  assert.equal(urls.negotiations, 2);
});

test("the lifetime comes from expiresInSeconds, so a device clock that is off still renews in time", async () => {
  const clock = new FakeClock();
  // The device's clock is two hours behind the service: expiresAt looks three hours away.
  const { urls } = provider(clock, () => {
    const answer = negotiateAnswer(clock);
    return { ...answer, body: { ...(answer.body as object), expiresAt: new Date(clock.now() + 3 * HOUR).toISOString() } };
  });
  await urls.url();
  assert.equal(urls.renewAt, clock.now() + HOUR - MAX_RENEWAL_MARGIN_MS);
});

test("concurrent callers share one negotiate request", async () => {
  const clock = new FakeClock();
  const { urls, requests } = provider(clock);
  const [a, b] = await Promise.all([urls.url(), urls.url()]);
  assert.equal(a, b);
  assert.equal(requests.length, 1);
});

test("after invalidate the next URL is negotiated again", async () => {
  const clock = new FakeClock();
  const { urls, requests } = provider(clock);
  await urls.url();
  urls.invalidate();
  await urls.url();
  assert.equal(requests.length, 2);
});

test("a negotiate answer of the wrong shape is an invalid_response error", () => {
  for (const body of [null, {}, { url: "http://x", expiresAt: "2026-01-01T00:00:00Z", userId: "a" }, { url: "ws://x", expiresAt: "soon", userId: "a" }]) {
    assert.throws(() => parseNegotiateResponse(body), { code: "invalid_response", operation: "negotiate" });
  }
});

test("when negotiate fails after the renewal point, the URL is used until it really expires", async () => {
  const clock = new FakeClock();
  let down = false;
  const { urls } = provider(clock, () => (down ? { status: 503, body: { error: { code: "upstream_unavailable", message: "down" } } } : negotiateAnswer(clock)));
  const first = await urls.url();
  down = true;
  await clock.advance(HOUR - MAX_RENEWAL_MARGIN_MS);
  assert.equal(await urls.url(), first, "still valid: used");
  await clock.advance(MAX_RENEWAL_MARGIN_MS);
  await assert.rejects(urls.url(), { code: "upstream_unavailable" });
});
