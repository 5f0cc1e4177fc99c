import type { NotifyError } from "./errors.js";

/** One notification, whichever channel brought it. */
export interface Notification {
  /** The id the backend gave it; the same in-app and in a push. */
  readonly notificationId: string;
  readonly title: string;
  readonly body: string;
  /** The backend's category (`default` unless it set one). */
  readonly type: string;
  /** The backend's own data. */
  readonly data: Readonly<Record<string, unknown>>;
}

/**
 * Which channel delivered a notification: `realtime` (the in-app WebSocket) or `push` (a push the app's
 * push handler passed to {@link NotifyClient.handlePush}). More sources may be added (the inbox).
 */
export type NotificationSource = "realtime" | "push";

/** A listener of {@link NotifyClient.onNotification}; a returned promise is awaited before the ack. */
export type NotificationListener = (notification: Notification, source: NotificationSource) => void | Promise<void>;

/**
 * The in-app connection: `idle` before `start()`, `connecting` (first attempt), `connected`,
 * `reconnecting` (waiting to try again or trying), `stopped` after `stop()`.
 */
export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "stopped";

/** A `state` event. */
export interface StateChange {
  readonly state: ConnectionState;
  readonly previous: ConnectionState;
  /** The Web PubSub connection id, when connected. */
  readonly connectionId?: string;
  /** For `reconnecting`: the attempt that comes next (1-based) and how long until it starts. */
  readonly attempt?: number;
  readonly delayMs?: number;
  /** What ended the connection or failed the attempt, if known. */
  readonly error?: NotifyError;
}

/** The answer to an ack: `ok`, or the error the service (or the SDK, e.g. `no_answer`) gave. */
export type AckOutcome =
  | { readonly notificationId: string; readonly ok: true }
  | { readonly notificationId: string; readonly ok: false; readonly error: NotifyError };

/**
 * A retract: the service asks the app to remove a notification it showed as a push, because the user has
 * seen it since (in-app, or read or archived it). Remove what is shown under `collapseId` (Android: the
 * notification's tag) or whose payload carries `notificationId` (iOS: `userInfo`).
 */
export interface Retraction {
  readonly notificationId: string;
  readonly collapseId: string;
}

/** What {@link NotifyClient.handlePush} decided. */
export interface PushDecision {
  /** True when the app should display the push: it is a notification not yet shown. */
  readonly display: boolean;
  /** The notification in the push; null when the payload is not one of ours, or a retract. */
  readonly notification: Notification | null;
  /**
   * `new`, `duplicate` (already shown, in-app or by an earlier push), `retract` (remove the notification
   * named in `retraction`; the `onRetract` option was called) or `not_a_notification`.
   */
  readonly reason: "new" | "duplicate" | "retract" | "not_a_notification";
  /** For `retract`: what to remove. */
  readonly retraction?: Retraction;
}

/** The push platforms: `fcmv1` (Android, web) and `apns` (iOS). */
export type PushPlatform = "fcmv1" | "apns";

/** A device registration: see docs/CLIENT-PROTOCOL.md, "Devices". */
export interface DeviceRegistration {
  /** The app's id for this installation of the app (make one at first start and keep it). */
  readonly installationId: string;
  readonly platform: PushPlatform | "fcm";
  /** The FCM registration token or the APNs device token (hex). */
  readonly pushChannel: string;
}

/** The events of a {@link NotifyClient}. */
export interface NotifyClientEvents {
  [name: string]: unknown;
  /** The connection state changed. */
  state: StateChange;
  /** An ack was answered (or given up on). */
  ack: AckOutcome;
  /** Something failed: a connection attempt, a rejected ack, a listener that threw, the store. */
  error: NotifyError;
}

/** The part of `fetch` the SDK uses (the platform's, or one the app passes). */
export type FetchLike = (
  url: string,
  init: {
    method: string;
    headers: Record<string, string>;
    body?: string;
    signal?: unknown;
  },
) => Promise<{
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

/** Gets the user's bearer token; `forceRefresh` after the service refused the last one (401). */
export type TokenProvider = (options: { readonly forceRefresh: boolean }) => string | Promise<string>;
