import type { Backoff } from "./backoff.js";
import type { Clock } from "./clock.js";
import { NotifyError } from "./errors.js";
import { ackError } from "./protocol.js";
import type { AckOutcome } from "./types.js";

/** Sends one `ack` event; rejects when it could not be sent. */
export type AckSender = (notificationId: string) => Promise<void>;

interface PendingAck {
  readonly notificationId: string;
  attempts: number;
  timer: unknown;
  /** True while an event is out and its answer awaited. */
  inFlight: boolean;
  readonly resolve: (outcome: AckOutcome) => void;
  readonly promise: Promise<AckOutcome>;
}

/** Options of {@link AckTracker}. */
export interface AckTrackerOptions {
  /** How long to wait for an answer before sending the ack again (default 5000 ms). */
  answerTimeoutMs?: number;
  /** Sends of one ack before giving up with `no_answer` (default 5). */
  maxAttempts?: number;
}

/**
 * The acks sent and not yet answered. Each is sent when connected, sent again when its answer does not
 * come in time or after a reconnect, and again with backoff after a retryable error answer; it ends with
 * the answer, or with `no_answer` after `maxAttempts` sends (the push fallback then delivers it).
 */
export class AckTracker {
  private readonly pending = new Map<string, PendingAck>();
  private connected = false;
  private readonly answerTimeoutMs: number;
  private readonly maxAttempts: number;

  constructor(
    private readonly send: AckSender,
    private readonly clock: Clock,
    private readonly backoff: Backoff,
    private readonly onOutcome: (outcome: AckOutcome) => void,
    options: AckTrackerOptions = {},
  ) {
    this.answerTimeoutMs = options.answerTimeoutMs ?? 5000;
    this.maxAttempts = options.maxAttempts ?? 5;
  }

  /** Ack `notificationId` (once, however often it is called before the answer); resolves with the outcome. */
  ack(notificationId: string): Promise<AckOutcome> {
    const existing = this.pending.get(notificationId);
    if (existing !== undefined) return existing.promise;
    let resolve!: (outcome: AckOutcome) => void;
    const promise = new Promise<AckOutcome>((r) => (resolve = r));
    const entry: PendingAck = { notificationId, attempts: 0, timer: undefined, inFlight: false, resolve, promise };
    this.pending.set(notificationId, entry);
    if (this.connected) this.transmit(entry);
    return promise;
  }

  /** The ids waiting for an answer. */
  get waiting(): string[] {
    return [...this.pending.keys()];
  }

  /** The connection is up: send what waits. */
  connectionUp(): void {
    this.connected = true;
    for (const entry of this.pending.values()) {
      if (!entry.inFlight && entry.timer === undefined) this.transmit(entry);
    }
  }

  /** The connection is down: answers in flight are lost; send again once it is up. */
  connectionDown(): void {
    this.connected = false;
    for (const entry of this.pending.values()) {
      if (entry.inFlight) {
        this.clock.clearTimeout(entry.timer);
        entry.timer = undefined;
        entry.inFlight = false;
      }
    }
  }

  /** An `ackResult` arrived. */
  answered(notificationId: string, ok: boolean, error?: { code: string; message: string; retryable: boolean }): void {
    const entry = this.pending.get(notificationId);
    if (entry === undefined) return; // an answer to an ack already settled (a duplicate send)
    this.clock.clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.inFlight = false;
    if (ok || error === undefined) {
      this.settle(entry, { notificationId, ok: true });
      return;
    }
    const rejected = ackError(notificationId, error);
    if (error.retryable && entry.attempts < this.maxAttempts) {
      entry.timer = this.clock.setTimeout(() => {
        entry.timer = undefined;
        if (this.connected) this.transmit(entry);
      }, this.backoff.delay(entry.attempts));
      return;
    }
    this.settle(entry, { notificationId, ok: false, error: rejected });
  }

  /** Give up on every pending ack (the client stops). */
  clear(reason: string): void {
    for (const entry of [...this.pending.values()]) {
      this.clock.clearTimeout(entry.timer);
      this.settle(entry, {
        notificationId: entry.notificationId,
        ok: false,
        error: new NotifyError(`ack of ${entry.notificationId} not answered: ${reason}`, {
          code: "stopped",
          operation: "ack",
          notificationId: entry.notificationId,
        }),
      });
    }
  }

  private transmit(entry: PendingAck): void {
    if (entry.attempts >= this.maxAttempts) {
      this.settle(entry, {
        notificationId: entry.notificationId,
        ok: false,
        error: new NotifyError(`ack of ${entry.notificationId} got no answer after ${entry.attempts} sends`, {
          code: "no_answer",
          operation: "ack",
          retryable: true,
          notificationId: entry.notificationId,
        }),
      });
      return;
    }
    entry.attempts += 1;
    entry.inFlight = true;
    entry.timer = this.clock.setTimeout(() => {
      entry.timer = undefined;
      entry.inFlight = false;
      if (this.connected) this.transmit(entry);
    }, this.answerTimeoutMs);
    // Not sent (the socket is between a drop and its recovery, say): the answer timer sends it again.
    this.send(entry.notificationId).catch(() => undefined);
  }

  private settle(entry: PendingAck, outcome: AckOutcome): void {
    this.pending.delete(entry.notificationId);
    entry.resolve(outcome);
    this.onOutcome(outcome);
  }
}
