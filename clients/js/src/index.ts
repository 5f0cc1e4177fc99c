// The public surface of the SDK, and nothing else.
export { createNotifyClient, NotifyClient, type NotifyClientOptions } from "./client.js";
export { createSeenStore, flushSeenStore, type KeyValueStorage, type SeenStore, type SeenStoreOptions } from "./seen-store.js";
export { parsePush, parseRetract } from "./push.js";
export {
  Inbox,
  type InboxChange,
  type InboxChanges,
  type InboxCounts,
  type InboxItem,
  type InboxListOptions,
  type InboxMarks,
  type InboxOptions,
  type InboxPage,
} from "./inbox.js";
export { NotifyError, type NotifyErrorDetails, type Operation } from "./errors.js";
export { PROTOCOL_VERSION } from "./protocol.js";
export type { BackoffOptions } from "./backoff.js";
export type { AckTrackerOptions } from "./acks.js";
export type { Clock } from "./clock.js";
export type { RealtimeTransport, TransportFactory } from "./transport.js";
export type {
  AckOutcome,
  ConnectionState,
  DeviceRegistration,
  FetchLike,
  Notification,
  NotificationListener,
  NotificationSource,
  NotifyClientEvents,
  PushDecision,
  PushPlatform,
  Retraction,
  StateChange,
  TokenProvider,
} from "./types.js";
