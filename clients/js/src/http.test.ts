import assert from "node:assert/strict";
import { test } from "node:test";

import { FakeClock, scriptedFetch } from "../test/support/fakes.js";
import { ApiClient } from "./http.js";

function client(route: Parameters<typeof scriptedFetch>[0], tokens: string[] = ["old", "new"]) {
  const asked: boolean[] = [];
  const { fetch, requests } = scriptedFetch(route);
  const api = new ApiClient(
    "http://127.0.0.1:7071/",
    ({ forceRefresh }) => {
      asked.push(forceRefresh);
      return (forceRefresh ? tokens[1] : tokens[0]) ?? "";
    },
    fetch,
    new FakeClock(),
    1000,
  );
  return { api, requests, asked };
}

test("a 401 is retried once with a refreshed token", async () => {
  const { api, requests, asked } = client((r) =>
    r.headers["Authorization"] === "Bearer new" ? { status: 200, body: { ok: 1 } } : { status: 401, body: { error: { code: "unauthorized", message: "token has expired" } } },
  );
  assert.deepEqual(await api.request("negotiate", "POST", "/api/negotiate"), { ok: 1 });
  assert.deepEqual(asked, [false, true]);
  assert.equal(requests.length, 2);
  assert.equal(requests[0]?.url, "http://127.0.0.1:7071/api/negotiate");
});

test("a second 401 is thrown with the service's code and message", async () => {
  const { api, asked } = client(() => ({ status: 401, body: { error: { code: "unauthorized", message: "token has expired" } } }));
  await assert.rejects(api.request("negotiate", "POST", "/api/negotiate"), (error: { code: string; status: number; message: string }) => {
    assert.equal(error.code, "unauthorized");
    assert.equal(error.status, 401);
    assert.match(error.message, /token has expired/);
    return true;
  });
  assert.deepEqual(asked, [false, true]);
});

test("an error body's field, the status and Retry-After are kept", async () => {
  const { api } = client(() => ({
    status: 503,
    headers: { "Retry-After": "7" },
    body: { error: { code: "upstream_unavailable", message: "busy" } },
  }));
  await assert.rejects(api.request("registerDevice", "PUT", "/api/devices/x", { a: 1 }), {
    code: "upstream_unavailable",
    status: 503,
    retryable: true,
    retryAfterSeconds: 7,
    operation: "registerDevice",
  });
  const { api: bad } = client(() => ({ status: 400, body: { error: { code: "bad_request", message: "no", field: "platform" } } }));
  await assert.rejects(bad.request("registerDevice", "PUT", "/api/devices/x", {}), { code: "bad_request", field: "platform", retryable: false });
});

test("a body that is not our error body still gives a status-based code", async () => {
  const { api } = client(() => ({ status: 404, body: "<html>not found</html>" }));
  await assert.rejects(api.request("negotiate", "POST", "/api/negotiate"), { code: "http_404", status: 404 });
});

test("a failed fetch is a retryable network error", async () => {
  const { api } = client(() => new TypeError("fetch failed"));
  await assert.rejects(api.request("negotiate", "POST", "/api/negotiate"), { code: "network", retryable: true });
});

test("getToken failing or giving nothing is token_unavailable", async () => {
  const { api } = client(() => ({ status: 200 }), ["", ""]);
  await assert.rejects(api.request("negotiate", "POST", "/api/negotiate"), { code: "token_unavailable" });
});

test("JSON bodies are sent with their content type; 204 gives undefined", async () => {
  const { api, requests } = client(() => ({ status: 204 }));
  assert.equal(await api.request("unregisterDevice", "PUT", "/api/devices/x", { platform: "apns" }), undefined);
  assert.equal(requests[0]?.headers["Content-Type"], "application/json");
  assert.deepEqual(requests[0]?.body, { platform: "apns" });
});

test("a base URL that is not http(s) is refused at once", () => {
  assert.throws(() => new ApiClient("127.0.0.1:7071", () => "t", async () => { throw new Error(); }, new FakeClock(), 1), TypeError);
});
