// HTTPS mode (`--https`): the official JS SDKs work with their default options once Node trusts the printed
// certificate through NODE_EXTRA_CA_CERTS (set by `make test-js`), and refuse the emulators without it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, test } from "node:test";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { startNotificationHubs, startWebPubSub } from "./support/emulators.mjs";
import { connectClient } from "./support/clients.mjs";

let wps;
let nh;

before(async () => {
  [wps, nh] = await Promise.all([startWebPubSub({ https: true }), startNotificationHubs({ https: true })]);
});
after(async () => {
  await Promise.all([wps?.stop(), nh?.stop()]);
});

test("Web PubSub over https:// and wss:// with default options", async () => {
  assert.match(wps.connectionString, /^Endpoint=https:\/\/127\.0\.0\.1:\d+;AccessKey=/);
  const service = new WebPubSubServiceClient(wps.connectionString, "secure");
  const { url } = await service.getClientAccessToken({ userId: "tls-user" });
  assert.ok(url.startsWith("wss://127.0.0.1:"), url);
  const c = await connectClient(service, { userId: "tls-user" });
  try {
    await service.sendToUser("tls-user", "over tls", { contentType: "text/plain" });
    assert.equal((await c.nextServer()).data, "over tls");
    assert.equal(await service.userExists("tls-user"), true);
  } finally {
    c.client.stop();
  }
});

test("without NODE_EXTRA_CA_CERTS both SDKs refuse the self-signed certificate", () => {
  const script = `
    import { WebPubSubServiceClient } from "@azure/web-pubsub";
    import { NotificationHubsClient } from "@azure/notification-hubs";
    const out = {};
    try { await new WebPubSubServiceClient(process.env.WPS, "secure").userExists("x"); out.wps = "ok"; }
    catch (e) { out.wps = e.code ?? e.message; }
    try { await new NotificationHubsClient(process.env.NH, "notify").getInstallation("x"); out.nh = "ok"; }
    catch (e) { out.nh = e.code ?? e.message; }
    console.log(JSON.stringify(out));`;
  const env = { ...process.env, WPS: wps.connectionString, NH: nh.connectionString };
  delete env.NODE_EXTRA_CA_CERTS;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { env, encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout.trim().split("\n").pop());
  assert.match(out.wps, /SELF_SIGNED|self-signed|certificate/i);
  assert.match(out.nh, /SELF_SIGNED|self-signed|certificate/i);
});
