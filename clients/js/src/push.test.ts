import assert from "node:assert/strict";
import { test } from "node:test";

import { parsePush, parseRetract } from "./push.js";

const DATA = {
  notificationId: "order-42-shipped",
  title: "Your order has shipped",
  body: "Order 42 is on its way.",
  type: "order",
  data: '{"orderId":42,"carrier":"DHL"}',
};
const EXPECTED = {
  notificationId: "order-42-shipped",
  title: "Your order has shipped",
  body: "Order 42 is on its way.",
  type: "order",
  data: { orderId: 42, carrier: "DHL" },
};

test("FCM v1: the message a messaging library hands the app (RemoteMessage / MessagePayload)", () => {
  const remoteMessage = { messageId: "0:1", data: DATA, notification: { title: DATA.title, body: DATA.body } };
  assert.deepEqual(parsePush(remoteMessage), EXPECTED);
});

test("FCM v1: the send body Notification Hubs posts (what the push sink records)", () => {
  assert.deepEqual(parsePush({ message: { notification: { title: DATA.title, body: DATA.body }, data: DATA } }), EXPECTED);
});

test("FCM v1: the bare data map, and title/body taken from notification when the data lacks them", () => {
  assert.deepEqual(parsePush(DATA, "fcmv1"), EXPECTED);
  const { title, body, ...rest } = DATA;
  assert.deepEqual(parsePush({ data: rest, notification: { title, body } }), EXPECTED);
});

test("APNs: the userInfo dictionary iOS hands the app", () => {
  const userInfo = {
    aps: { alert: { title: DATA.title, body: DATA.body }, sound: "default" },
    notificationId: DATA.notificationId,
    type: DATA.type,
    data: DATA.data,
  };
  assert.deepEqual(parsePush(userInfo), EXPECTED);
  assert.deepEqual(parsePush(JSON.stringify(userInfo)), EXPECTED);
});

test("APNs: a string alert is the body; without aps the platform can be named", () => {
  const parsed = parsePush({ aps: { alert: "Order 42 is on its way." }, notificationId: "n-1", data: "{}" });
  assert.deepEqual(parsed, { notificationId: "n-1", title: "", body: "Order 42 is on its way.", type: "default", data: {} });
  assert.equal(parsePush({ notificationId: "n-1", title: "t" }, "apns")?.title, "t");
});

test("data that is missing or not a JSON object becomes an empty object", () => {
  for (const data of [undefined, "not json", "[1,2]", "42"]) {
    assert.deepEqual(parsePush({ data: { ...DATA, data } })?.data, {});
  }
});

test("payloads that are not ours are null", () => {
  for (const payload of [null, 42, "not json", [], {}, { data: { hello: "world" } }, { aps: { alert: "hi" } }, { data: { notificationId: "has spaces" } }]) {
    assert.equal(parsePush(payload), null, JSON.stringify(payload));
  }
});

test("a retract is not a notification, and parseRetract reads it from either platform", () => {
  const fcm = { message: { android: { priority: "NORMAL" }, data: { kind: "retract", notificationId: "n-9", collapseId: "n-9" } } };
  const apns = { aps: { "content-available": 1 }, kind: "retract", notificationId: "n-9", collapseId: "h-abc" };
  assert.equal(parsePush(fcm), null);
  assert.equal(parsePush(apns), null);
  assert.deepEqual(parseRetract(fcm), { notificationId: "n-9", collapseId: "n-9" });
  assert.deepEqual(parseRetract({ data: fcm.message.data }), { notificationId: "n-9", collapseId: "n-9" });
  assert.deepEqual(parseRetract(JSON.stringify(apns)), { notificationId: "n-9", collapseId: "h-abc" });
  assert.deepEqual(parseRetract({ kind: "retract", notificationId: "n-9" }, "apns"), { notificationId: "n-9", collapseId: "n-9" });
  assert.equal(parseRetract({ data: { ...DATA, kind: "notification" } }), null);
  assert.equal(parseRetract({ data: { kind: "retract", notificationId: "bad id" } }), null);
});
