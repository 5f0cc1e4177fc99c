/** What the SDK was doing when an error happened. */
export type Operation =
  | "negotiate"
  | "connect"
  | "ack"
  | "registerDevice"
  | "unregisterDevice"
  | "handlePush"
  | "listener"
  | "store"
  | "inbox";

/** What a {@link NotifyError} carries besides its message. */
export interface NotifyErrorDetails {
  /** Stable code: the service's error code (`unauthorized`, `unknown_notification`, …) or the SDK's own (`network`, `timeout`, `invalid_response`, `no_answer`, `listener_failed`, `store_failed`, `retract_failed`, `invalid_push`). */
  readonly code: string;
  /** What the SDK was doing. */
  readonly operation: Operation;
  /** HTTP status, for errors of an HTTP request. */
  readonly status?: number;
  /** The request field the service named as wrong. */
  readonly field?: string;
  /** True when the same operation may succeed later (the SDK retries those it owns). */
  readonly retryable?: boolean;
  /** The notification concerned, for acks, pushes and listeners. */
  readonly notificationId?: string;
  /** Seconds the service asked to wait (HTTP `Retry-After`). */
  readonly retryAfterSeconds?: number;
  /** The underlying error, if any. */
  readonly cause?: unknown;
}

/** Every error the SDK reports: thrown by its methods and emitted as `error` events. */
export class NotifyError extends Error {
  readonly code: string;
  readonly operation: Operation;
  readonly status: number | undefined;
  readonly field: string | undefined;
  readonly retryable: boolean;
  readonly notificationId: string | undefined;
  readonly retryAfterSeconds: number | undefined;
  override readonly cause: unknown;

  constructor(message: string, details: NotifyErrorDetails) {
    super(message);
    this.name = "NotifyError";
    this.code = details.code;
    this.operation = details.operation;
    this.status = details.status;
    this.field = details.field;
    this.retryable = details.retryable ?? false;
    this.notificationId = details.notificationId;
    this.retryAfterSeconds = details.retryAfterSeconds;
    this.cause = details.cause;
  }
}

/** The message of anything thrown. */
export function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === "string" ? error : "unknown error";
}
