// The browser demo: a web app built on the SDK, as a developer would write it. Served by `make dev`
// (devstack/browser_demo.py), which also hands out development tokens, enqueues notifications for the
// "send" form and shows the push sink; everything else goes from this page to the app's API directly.
import { createNotifyClient, createSeenStore } from "/notify-client.js";

const $ = (selector) => document.querySelector(selector);
const config = await (await fetch("/config.json")).json();
let client = null;
let userId = null;
let pushPoll = null;
const shownPushes = new Set();

function log(text) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("#log").prepend(item);
}

function badge(text, kind = text) {
  const span = document.createElement("span");
  span.className = `badge ${kind}`;
  span.textContent = text;
  return span;
}

function installationId() {
  let id = localStorage.getItem("azure-notify.demo.installation");
  if (!id) {
    id = `browser-${crypto.randomUUID()}`;
    localStorage.setItem("azure-notify.demo.installation", id);
  }
  return id;
}

async function devToken(forceRefresh) {
  const response = await fetch("/token", { method: "POST", body: JSON.stringify({ userId }) });
  if (!response.ok) throw new Error(`no development token: ${response.status}`);
  if (forceRefresh) log("token refreshed after a 401");
  return (await response.json()).token;
}

function showNotification(notification, source) {
  const item = document.createElement("li");
  item.dataset.id = notification.notificationId;
  item.dataset.source = source;
  const title = document.createElement("b");
  title.textContent = notification.title;
  const body = document.createElement("div");
  body.textContent = notification.body;
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.append(badge(source), source === "realtime" ? badge("ack pending", "ack") : "", ` ${notification.notificationId}`);
  item.append(title, body, meta);
  $("#notifications").prepend(item);
}

function showAck(outcome) {
  const item = document.querySelector(`#notifications li[data-id="${CSS.escape(outcome.notificationId)}"]`);
  const ack = item?.querySelector(".badge.ack");
  if (ack) {
    ack.textContent = outcome.ok ? "acked" : `ack rejected: ${outcome.error.code}`;
    ack.className = `badge ack ${outcome.ok ? "acked" : "rejected"}`;
    ack.dataset.result = outcome.ok ? "acked" : outcome.error.code;
  }
}

async function pollPushes() {
  const response = await fetch(`/pushes?userId=${encodeURIComponent(userId)}`);
  if (!response.ok) return;
  for (const push of await response.json()) {
    if (shownPushes.has(push.id)) continue;
    shownPushes.add(push.id);
    // What a device's push handler does: hand the payload to the SDK, display only if it says so.
    const decision = await client.handlePush(push.payload);
    const item = document.createElement("li");
    item.dataset.id = push.notificationId ?? "";
    item.dataset.display = String(decision.display);
    item.dataset.kind = decision.reason === "retract" ? "retract" : "notification";
    const why = {
      duplicate: "already shown",
      not_a_notification: "not a notification",
      retract: "a retract (seen since it was pushed: remove it from the tray)",
    }[decision.reason] ?? decision.reason;
    const what = decision.display ? badge("displayed as a push", "displayed") : badge(`not displayed: ${why}`, "dropped");
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${push.platform} → ${push.installationId} · ${push.outcome} · ${push.notificationId}`;
    item.append(what, meta);
    $("#pushes").prepend(item);
  }
}

async function signIn(event) {
  event.preventDefault();
  if (client) await signOut();
  userId = $("#user").value.trim();
  const url = new URL(location.href);
  url.searchParams.set("user", userId);
  history.replaceState(null, "", url);
  let token = null;
  client = createNotifyClient({
    baseUrl: config.apiBaseUrl,
    getToken: async ({ forceRefresh }) => {
      if (forceRefresh || !token) token = await devToken(forceRefresh);
      return token;
    },
    // Kept across reloads: reload the page and a push for something already shown is still dropped.
    store: createSeenStore({ storage: localStorage, key: `azure-notify.seen.${userId}` }),
    // A real app removes the shown notification here (docs/PUSH-ON-DEVICES.md).
    onRetract: (retraction) => log(`retract: remove the shown push of ${retraction.notificationId}`),
  });
  client.onNotification((notification, source) => showNotification(notification, source));
  client.on("ack", showAck);
  client.on("error", (error) => log(`error (${error.operation}): ${error.code}: ${error.message}`));
  client.on("state", (change) => {
    $("#state").textContent = change.state + (change.delayMs !== undefined ? ` (next attempt in ${change.delayMs} ms)` : "");
    $("#state").dataset.state = change.state;
    $("#connection-id").textContent = change.connectionId ?? "";
    log(`state: ${change.state}`);
  });
  $("#sign-out").disabled = false;
  $("#send").disabled = false;
  const device = await client.registerDevice({
    installationId: installationId(),
    platform: "fcmv1",
    pushChannel: `demo-browser-fcm-token-${installationId()}`,
  });
  log(`device ${device.installationId} registered (${device.platform})`);
  await client.start();
  shownPushes.clear();
  // Pushes already in the sink from an earlier visit are shown, and dropped by handlePush as duplicates.
  pushPoll = setInterval(() => pollPushes().catch((error) => log(`push sink: ${error}`)), 1000);
}

async function signOut() {
  clearInterval(pushPoll);
  await client?.stop();
  client = null;
  $("#sign-out").disabled = true;
  $("#send").disabled = true;
}

async function send(event) {
  event.preventDefault();
  const response = await fetch("/send", {
    method: "POST",
    body: JSON.stringify({
      userId,
      title: $("#send-title").value,
      body: $("#send-body").value,
      delivery: $("#send-delivery").value,
    }),
  });
  const answer = await response.json();
  $("#sent").textContent = response.ok ? `enqueued ${answer.notificationId}` : `refused: ${answer.error?.message}`;
  $("#sent").dataset.id = answer.notificationId ?? "";
}

$("#user").value = new URLSearchParams(location.search).get("user") ?? `web-${Math.random().toString(36).slice(2, 8)}`;
$("#sign-in-form").addEventListener("submit", (event) => signIn(event).catch((error) => log(`sign-in failed: ${error}`)));
$("#sign-out").addEventListener("click", () => signOut());
$("#send-form").addEventListener("submit", (event) => send(event).catch((error) => log(`send failed: ${error}`)));
log(`API at ${config.apiBaseUrl}; ack timeout ${config.ackTimeoutSeconds} s`);
document.body.dataset.ready = "true";
