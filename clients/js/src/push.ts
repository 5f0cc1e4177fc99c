import { isNotificationId, isObject, notificationFrom } from "./protocol.js";
import type { Notification, PushPlatform, Retraction } from "./types.js";

/**
 * The notification in a push payload, or null when the payload is not one of ours. Accepts, for FCM v1,
 * the message a messaging library hands the app (`{data: {...}, notification?: {...}}`, e.g.
 * `@react-native-firebase/messaging`'s RemoteMessage or the Firebase JS SDK's MessagePayload), the bare data
 * map, or the FCM v1 send body (`{message: {data, notification}}`); for APNs, the `userInfo` dictionary
 * (`{aps: {alert: {title, body}}, notificationId, type, data}`), also without `aps`. `platform` skips the
 * detection.
 */
export function parsePush(payload: unknown, platform?: PushPlatform): Notification | null {
  const read = readPayload(payload, platform);
  if (read === null || kindOf(read.fields, read.platform) === "retract") return null;
  return read.platform === "apns" ? fromApns(read.fields) : fromFcm(read.fields);
}

/**
 * The retract in a push payload, or null when the payload is not a retract: the silent push the service
 * sends when a notification that was pushed has since been seen (acked in-app, read or archived), so that the
 * app removes it from the notification centre / tray. Accepts the same shapes as {@link parsePush}.
 */
export function parseRetract(payload: unknown, platform?: PushPlatform): Retraction | null {
  const read = readPayload(payload, platform);
  if (read === null || kindOf(read.fields, read.platform) !== "retract") return null;
  const fields = read.platform === "apns" ? read.fields : fcmData(read.fields);
  const notificationId = fields["notificationId"];
  if (!isNotificationId(notificationId)) return null;
  const collapseId = fields["collapseId"];
  return { notificationId, collapseId: typeof collapseId === "string" && collapseId ? collapseId : notificationId };
}

/** The payload as an object (parsed from JSON text if need be) and its platform (detected unless given). */
function readPayload(
  payload: unknown,
  platform?: PushPlatform,
): { fields: Record<string, unknown>; platform: PushPlatform } | null {
  if (typeof payload === "string") {
    try {
      payload = JSON.parse(payload) as unknown;
    } catch {
      return null;
    }
  }
  if (!isObject(payload)) return null;
  return { fields: payload, platform: platform ?? (isObject(payload["aps"]) ? "apns" : "fcmv1") };
}

function fcmData(payload: Record<string, unknown>): Record<string, unknown> {
  const message = isObject(payload["message"]) ? payload["message"] : payload;
  return isObject(message["data"]) ? message["data"] : message;
}

function kindOf(payload: Record<string, unknown>, platform: PushPlatform): unknown {
  return (platform === "apns" ? payload : fcmData(payload))["kind"];
}

function fromFcm(payload: Record<string, unknown>): Notification | null {
  const message = isObject(payload["message"]) ? payload["message"] : payload;
  const data = isObject(message["data"]) ? message["data"] : message;
  const shown = isObject(message["notification"]) ? message["notification"] : {};
  const fields = { ...data, title: data["title"] ?? shown["title"], body: data["body"] ?? shown["body"] };
  return notificationFrom(fields, data["data"]);
}

function fromApns(payload: Record<string, unknown>): Notification | null {
  const aps = isObject(payload["aps"]) ? payload["aps"] : {};
  const alert = aps["alert"];
  const shown = isObject(alert) ? alert : { body: alert };
  const fields = { ...payload, title: payload["title"] ?? shown["title"], body: payload["body"] ?? shown["body"] };
  return notificationFrom(fields, payload["data"]);
}
