import { NotifyError } from "./errors.js";
import type { Notification } from "./types.js";

/** The client protocol version this SDK implements (docs/CLIENT-PROTOCOL.md). */
export const PROTOCOL_VERSION = 1;

/** The event name of an ack (docs/CLIENT-PROTOCOL.md, "Acks and their answers"). */
export const ACK_EVENT = "ack";

/** A server message the SDK understands. */
export type ServerMessage =
  | { readonly kind: "notification"; readonly notification: Notification; readonly listed: boolean }
  | { readonly kind: "inbox"; readonly envelope: Record<string, unknown> }
  | {
      readonly kind: "ackResult";
      readonly notificationId: string | null;
      readonly ok: boolean;
      readonly error?: { readonly code: string; readonly message: string; readonly retryable: boolean };
    };

const ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** True for a well-formed notificationId. */
export function isNotificationId(value: unknown): value is string {
  return typeof value === "string" && ID.test(value);
}

/**
 * Read a server message's data: a notification envelope, an ack answer or an inbox envelope; null for anything else (other
 * kinds, a newer protocol version, data that is not ours), which clients must ignore.
 */
export function parseServerMessage(data: unknown): ServerMessage | null {
  if (typeof data === "string") {
    try {
      data = JSON.parse(data) as unknown;
    } catch {
      return null;
    }
  }
  if (!isObject(data)) return null;
  const version = data["protocolVersion"] ?? PROTOCOL_VERSION;
  if (typeof version !== "number" || version > PROTOCOL_VERSION) return null;
  if (data["kind"] === "notification") {
    const notification = notificationFrom(data, data["data"]);
    return notification === null ? null : { kind: "notification", notification, listed: data["inbox"] !== false };
  }
  if (data["kind"] === "inbox") return { kind: "inbox", envelope: data };
  if (data["kind"] === "ackResult" && typeof data["ok"] === "boolean") {
    const id = isNotificationId(data["notificationId"]) ? data["notificationId"] : null;
    const error = data["error"];
    if (data["ok"] || !isObject(error)) return { kind: "ackResult", notificationId: id, ok: data["ok"] };
    return {
      kind: "ackResult",
      notificationId: id,
      ok: false,
      error: {
        code: typeof error["code"] === "string" ? error["code"] : "internal",
        message: typeof error["message"] === "string" ? error["message"] : "the ack was rejected",
        retryable: error["retryable"] === true,
      },
    };
  }
  return null;
}

/** A Notification from fields that are all there (`data` given separately: object or JSON text). */
export function notificationFrom(fields: Record<string, unknown>, data: unknown): Notification | null {
  const id = fields["notificationId"];
  if (!isNotificationId(id)) return null;
  return {
    notificationId: id,
    title: text(fields["title"]),
    body: text(fields["body"]),
    type: text(fields["type"]) || "default",
    data: objectFrom(data),
  };
}

/** The ack answer as an error (for `error` events and `ack` outcomes). */
export function ackError(notificationId: string, error: { code: string; message: string; retryable: boolean }): NotifyError {
  return new NotifyError(`ack of ${notificationId} rejected: ${error.message} (${error.code})`, {
    code: error.code,
    operation: "ack",
    retryable: error.retryable,
    notificationId,
  });
}

function objectFrom(value: unknown): Record<string, unknown> {
  if (typeof value === "string") {
    try {
      value = JSON.parse(value) as unknown;
    } catch {
      return {};
    }
  }
  return isObject(value) ? value : {};
}

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}

/** True for a plain JSON object. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
