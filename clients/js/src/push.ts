import { isObject, notificationFrom } from "./protocol.js";
import type { Notification, PushPlatform } from "./types.js";

/**
 * The notification in a push payload, or null when the payload is not one of ours. Accepts, for FCM v1,
 * the message a messaging library hands the app (`{data: {...}, notification?: {...}}`, e.g.
 * `@react-native-firebase/messaging`'s RemoteMessage or the Firebase JS SDK's MessagePayload), the bare data
 * map, or the FCM v1 send body (`{message: {data, notification}}`); for APNs, the `userInfo` dictionary
 * (`{aps: {alert: {title, body}}, notificationId, type, data}`), also without `aps`. `platform` skips the
 * detection.
 */
export function parsePush(payload: unknown, platform?: PushPlatform): Notification | null {
  if (typeof payload === "string") {
    try {
      payload = JSON.parse(payload) as unknown;
    } catch {
      return null;
    }
  }
  if (!isObject(payload)) return null;
  const detected = platform ?? (isObject(payload["aps"]) ? "apns" : "fcmv1");
  return detected === "apns" ? fromApns(payload) : fromFcm(payload);
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
