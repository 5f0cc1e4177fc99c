import { AccessUrlProvider } from "./access-url.js";
import { AckTracker, type AckTrackerOptions } from "./acks.js";
import { Backoff, type BackoffOptions } from "./backoff.js";
import { systemClock, type Clock } from "./clock.js";
import { NotifyError, describe, type Operation } from "./errors.js";
import { Emitter } from "./events.js";
import { ApiClient, platformFetch } from "./http.js";
import { Inbox, type InboxMarks, type InboxOptions } from "./inbox.js";
import { parseServerMessage } from "./protocol.js";
import { parsePush, parseRetract } from "./push.js";
import { createSeenStore, type SeenStore } from "./seen-store.js";
import { webPubSubTransport, type RealtimeTransport, type TransportFactory } from "./transport.js";
import type {
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

/** Options of {@link createNotifyClient}. Only `baseUrl` and `getToken` are required. */
export interface NotifyClientOptions {
  /** The service's URL, in front of `/api/...` (e.g. `https://func-notify.azurewebsites.net`). */
  baseUrl: string;
  /** The signed-in user's bearer token; called again with `forceRefresh: true` after a 401. */
  getToken: TokenProvider;
  /**
   * Where the ids of delivered notifications are kept (default: in memory, the last 1000). Pass
   * `createSeenStore({ storage: localStorage })` or `createSeenStore({ storage: AsyncStorage })` to keep
   * them across restarts.
   */
  store?: SeenStore;
  /** Ack each in-app notification once the listeners have run (default true); else call {@link NotifyClient.ack}. */
  autoAck?: boolean;
  /** Delays between reconnect attempts (default: full jitter, 1 s doubling to 30 s). */
  reconnect?: BackoffOptions;
  /** Ack answers: how long to wait for one and how often to send (default 5 s, 5 sends). */
  acks?: AckTrackerOptions;
  /** Timeout of each HTTP request (default 15000 ms). */
  requestTimeoutMs?: number;
  /** How often a connected client checks whether its client access URL is due for renewal (default 30000 ms). */
  tokenCheckIntervalMs?: number;
  /** How many in-app notifications to hold while no listener is registered (default 100). */
  maxBuffered?: number;
  /** The fetch to use (default: the platform's). */
  fetch?: FetchLike;
  /** Time and timers (default: the platform's); for tests. */
  clock?: Clock;
  /** Randomness for the backoff's jitter (default Math.random); for tests. */
  random?: () => number;
  /** The in-app connection (default: `@azure/web-pubsub-client`); for tests. */
  transport?: TransportFactory;
  /**
   * Called by {@link NotifyClient.handlePush} for a retract: remove the notification the app shows for
   * `retraction` (see docs/PUSH-ON-DEVICES.md). A failure is an `error` event; `handlePush` still resolves.
   */
  onRetract?: (retraction: Retraction) => void | Promise<void>;
  /** The inbox's cursor persistence and timing (see {@link NotifyClient.inbox}). */
  inbox?: InboxOptions;
}

/** Create a client; nothing happens on the network until {@link NotifyClient.start}. */
export function createNotifyClient(options: NotifyClientOptions): NotifyClient {
  return new NotifyClient(options);
}

type Phase = "idle" | "connecting" | "waiting" | "connected" | "stopping" | "stopped";

/** How long stop() waits for the connection to close. */
const STOP_TIMEOUT_MS = 5000;

/**
 * One user's notifications on one device: the in-app connection (negotiate, connect, renew, reconnect),
 * pushes handed in by the app, each notification delivered to the listeners once, and acks.
 */
export class NotifyClient {
  private readonly clock: Clock;
  private readonly api: ApiClient;
  private readonly urls: AccessUrlProvider;
  private readonly store: SeenStore;
  private readonly acks: AckTracker;
  private readonly reconnectBackoff: Backoff;
  private readonly events: Emitter<NotifyClientEvents>;
  private readonly listeners = new Set<NotificationListener>();
  private readonly autoAck: boolean;
  private readonly tokenCheckIntervalMs: number;
  private readonly maxBuffered: number;
  private readonly transportFactory: TransportFactory;
  private readonly onRetract: ((retraction: Retraction) => void | Promise<void>) | undefined;
  private transport: RealtimeTransport | undefined;
  private phase: Phase = "idle";
  private publicState: ConnectionState = "idle";
  private currentConnectionId: string | undefined;
  private reconnectAttempt = 0;
  private reconnectTimer: unknown;
  private tokenTimer: unknown;
  private transportOpen = false;
  private attemptInFlight: Promise<void> | undefined;
  private readonly startWaiters: Array<() => void> = [];
  private stoppedWaiter: (() => void) | undefined;
  private buffered: Notification[] = [];
  private deliveries: Promise<unknown> = Promise.resolve();
  private inboxInstance: Inbox | undefined;
  private readonly inboxOptions: InboxOptions | undefined;

  constructor(options: NotifyClientOptions) {
    if (typeof options.getToken !== "function") throw new TypeError("getToken must be a function");
    this.clock = options.clock ?? systemClock;
    const random = options.random ?? Math.random;
    this.events = new Emitter<NotifyClientEvents>((error, event) => {
      if (event !== "error") this.fail("listener", "listener_failed", error);
    });
    this.api = new ApiClient(
      options.baseUrl,
      options.getToken,
      options.fetch ?? platformFetch(),
      this.clock,
      options.requestTimeoutMs ?? 15000,
    );
    this.urls = new AccessUrlProvider(this.api, this.clock);
    this.store =
      options.store ?? createSeenStore({ onError: (error) => this.fail("store", "store_failed", error) });
    this.reconnectBackoff = new Backoff(options.reconnect, random);
    this.acks = new AckTracker(
      (id) => this.requireTransport().sendAck(id),
      this.clock,
      new Backoff(options.reconnect, random),
      (outcome) => this.ackSettled(outcome),
      options.acks,
    );
    this.autoAck = options.autoAck ?? true;
    this.tokenCheckIntervalMs = options.tokenCheckIntervalMs ?? 30000;
    this.maxBuffered = options.maxBuffered ?? 100;
    this.transportFactory = options.transport ?? webPubSubTransport;
    this.onRetract = options.onRetract;
    this.inboxOptions = options.inbox;
  }

  /**
   * The user's inbox: `list()`, `counts` (with `on("counts")`), marks, `readAll()`. From the first use on, the
   * client catches up from the inbox's cursor on every (re)connect and applies the `inbox` envelopes the
   * service sends after each change, so `counts` and the `changes` events follow every device of the user.
   */
  get inbox(): Inbox {
    if (this.inboxInstance === undefined) {
      this.inboxInstance = new Inbox(this.api, this.clock, (error) => this.events.emit("error", error), this.inboxOptions);
      if (this.phase === "connected") this.inboxInstance.background();
    }
    return this.inboxInstance;
  }

  /** Mark a notification read in the inbox; call it when the user opens one, also from a push. */
  markRead(notificationId: string): Promise<InboxMarks> {
    return this.inbox.markRead(notificationId);
  }

  /** The connection state (also emitted as `state` events). */
  get state(): ConnectionState {
    return this.publicState;
  }

  /** The Web PubSub connection id while connected. */
  get connectionId(): string | undefined {
    return this.currentConnectionId;
  }

  /** How many times this client negotiated a client access URL. */
  get negotiations(): number {
    return this.urls.negotiations;
  }

  /**
   * Connect, and keep connected until {@link stop}: renew the client access URL before it expires, reconnect
   * with backoff when the connection ends. Resolves once connected (or when stopped first); failures are
   * `error` events and retried, never a rejection.
   */
  start(): Promise<void> {
    const waiter = new Promise<void>((resolve) => {
      if (this.phase === "connected") resolve();
      else this.startWaiters.push(resolve);
    });
    if (this.phase === "idle" || this.phase === "stopped") {
      this.reconnectAttempt = 0;
      this.attempt();
    }
    return waiter;
  }

  /** Close the connection and stop reconnecting; unanswered acks end with `stopped`. Resolves when closed. */
  async stop(): Promise<void> {
    if (this.phase === "idle" || this.phase === "stopped") {
      this.setState("stopped");
      return;
    }
    this.phase = "stopping";
    this.clock.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.stopTokenChecks();
    this.inboxInstance?.dispose();
    this.acks.clear("the client stopped");
    const closed = new Promise<void>((resolve) => (this.stoppedWaiter = resolve));
    this.transport?.stop();
    await this.attemptInFlight;
    if (this.transportOpen) {
      this.transport?.stop(); // a connection that opened while stopping
      let timer: unknown;
      const timeout = new Promise<void>((resolve) => (timer = this.clock.setTimeout(resolve, STOP_TIMEOUT_MS)));
      await Promise.race([closed, timeout]);
      this.clock.clearTimeout(timer);
    }
    this.stoppedWaiter = undefined;
    this.phase = "stopped";
    this.currentConnectionId = undefined;
    this.setState("stopped");
    this.releaseStartWaiters();
  }

  /**
   * Call `listener` for every notification the user receives, in-app (`realtime`) or through
   * {@link handlePush} (`push`), once per notificationId. Listeners run one notification at a time, in the
   * order they arrived. Returns the function that unsubscribes.
   */
  onNotification(listener: NotificationListener): () => void {
    this.listeners.add(listener);
    if (this.buffered.length > 0) {
      const held = this.buffered;
      this.buffered = [];
      for (const notification of held) void this.deliver(notification, "realtime");
    }
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Subscribe to `state`, `ack` or `error` events; returns the function that unsubscribes. */
  on<E extends "state" | "ack" | "error">(event: E, listener: (value: NotifyClientEvents[E]) => void): () => void {
    return this.events.on(event, listener);
  }

  /**
   * Ack an in-app notification (done for you unless `autoAck: false`). Sent when connected, repeated until
   * answered; resolves with the answer. A rejected ack is also an `error` event.
   */
  ack(notificationId: string): Promise<AckOutcome> {
    return this.acks.ack(notificationId);
  }

  /**
   * For the app's push handler: read the platform payload and decide whether to display it. `display` is
   * false when the notification was already delivered (in-app, or by an earlier push, also before a
   * restart when the store persists) or when the payload is not one of ours. New notifications also go to
   * the listeners, with source `push`.
   */
  handlePush(payload: unknown, options: { platform?: PushPlatform } = {}): Promise<PushDecision> {
    const retraction = parseRetract(payload, options.platform);
    if (retraction !== null) return this.retract(retraction);
    const notification = parsePush(payload, options.platform);
    if (notification === null) {
      return Promise.resolve({ display: false, notification: null, reason: "not_a_notification" });
    }
    return this.deliver(notification, "push").then((fresh) => ({
      display: fresh,
      notification,
      reason: fresh ? "new" : "duplicate",
    }));
  }

  /** Register this device for push (`PUT /api/devices/{installationId}`); again whenever its token changes. */
  async registerDevice(registration: DeviceRegistration): Promise<{ installationId: string; platform: PushPlatform }> {
    const { installationId, platform, pushChannel } = registration;
    const answer = await this.api.request("registerDevice", "PUT", devicePath(installationId), { platform, pushChannel });
    const body = answer as { installationId?: unknown; platform?: unknown } | undefined;
    if (typeof body?.installationId !== "string" || (body.platform !== "fcmv1" && body.platform !== "apns")) {
      throw new NotifyError("registerDevice: the answer is not a DeviceRegistered", {
        code: "invalid_response",
        operation: "registerDevice",
      });
    }
    return { installationId: body.installationId, platform: body.platform };
  }

  /** Unregister a device (`DELETE /api/devices/{installationId}`), e.g. at sign-out; gone already is fine. */
  async unregisterDevice(installationId: string): Promise<void> {
    await this.api.request("unregisterDevice", "DELETE", devicePath(installationId));
  }

  // ---- the connection -------------------------------------------------------------------------------

  private requireTransport(): RealtimeTransport {
    if (this.transport === undefined) {
      const transport = this.transportFactory(() => this.accessUrl());
      transport.onConnected((connectionId) => this.connected(connectionId));
      transport.onDisconnected((reason) => this.disconnected(reason));
      transport.onStopped(() => this.transportStopped());
      transport.onMessage((data) => this.message(data));
      this.transport = transport;
    }
    return this.transport;
  }

  private async accessUrl(): Promise<string> {
    try {
      return await this.urls.url();
    } catch (error) {
      throw asNotifyError(error, "negotiate");
    }
  }

  private attempt(): void {
    this.phase = "connecting";
    this.setState(this.reconnectAttempt === 0 ? "connecting" : "reconnecting", {
      attempt: this.reconnectAttempt + 1,
    });
    const transport = this.requireTransport();
    this.attemptInFlight = transport.start().then(
      () => {
        this.transportOpen = true;
      },
      (error: unknown) => {
        if (this.phase !== "connecting") return;
        // The URL may be what failed (an expired or refused token): the next attempt negotiates anew.
        this.urls.invalidate();
        const failure = asNotifyError(error, "connect");
        this.events.emit("error", failure);
        this.scheduleReconnect(failure);
      },
    );
  }

  private scheduleReconnect(error?: NotifyError): void {
    if (this.phase === "stopping" || this.phase === "stopped" || this.reconnectTimer !== undefined) return;
    this.phase = "waiting";
    this.reconnectAttempt += 1;
    const delayMs = this.reconnectBackoff.delay(this.reconnectAttempt);
    this.setState("reconnecting", { attempt: this.reconnectAttempt, delayMs, ...(error ? { error } : {}) });
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.phase === "waiting") this.attempt();
    }, delayMs);
  }

  private connected(connectionId: string): void {
    if (this.phase === "stopping" || this.phase === "stopped") {
      this.transport?.stop();
      return;
    }
    this.phase = "connected";
    this.transportOpen = true;
    this.reconnectAttempt = 0;
    this.currentConnectionId = connectionId;
    this.setState("connected", { connectionId });
    this.startTokenChecks();
    this.acks.connectionUp();
    this.inboxInstance?.background(); // catch up on every (re)connect
    this.releaseStartWaiters();
  }

  private disconnected(reason: string | undefined): void {
    this.acks.connectionDown();
    this.stopTokenChecks();
    this.currentConnectionId = undefined;
    if (this.phase === "connected") {
      const error = new NotifyError(`the connection ended${reason ? `: ${reason}` : ""}`, {
        code: "disconnected",
        operation: "connect",
        retryable: true,
      });
      this.setState("reconnecting", { attempt: 1, error });
    }
  }

  private transportStopped(): void {
    this.transportOpen = false;
    this.acks.connectionDown();
    this.stopTokenChecks();
    if (this.phase === "stopping") {
      this.stoppedWaiter?.();
      return;
    }
    if (this.phase === "connected" || this.phase === "connecting") this.scheduleReconnect();
  }

  private startTokenChecks(): void {
    this.stopTokenChecks();
    const tick = (): void => {
      this.tokenTimer = this.clock.setTimeout(() => {
        if (this.phase !== "connected") return;
        this.urls.renewIfDue().then(
          () => tick(),
          (error: unknown) => {
            this.events.emit("error", asNotifyError(error, "negotiate"));
            tick();
          },
        );
      }, this.tokenCheckIntervalMs);
    };
    tick();
  }

  private stopTokenChecks(): void {
    this.clock.clearTimeout(this.tokenTimer);
    this.tokenTimer = undefined;
  }

  private setState(state: ConnectionState, details: Omit<StateChange, "state" | "previous"> = {}): void {
    const previous = this.publicState;
    if (previous === state && details.attempt === undefined) return;
    this.publicState = state;
    this.events.emit("state", { state, previous, ...details });
  }

  private releaseStartWaiters(): void {
    for (const resolve of this.startWaiters.splice(0)) resolve();
  }

  // ---- what arrives -----------------------------------------------------------------------------------

  private message(data: unknown): void {
    const message = parseServerMessage(data);
    if (message === null) return;
    if (message.kind === "notification") {
      void this.deliver(message.notification, "realtime");
      if (message.listed) this.inboxInstance?.arrived();
      return;
    }
    if (message.kind === "inbox") {
      this.inboxInstance?.receive(message.envelope);
      return;
    }
    if (message.notificationId === null) {
      const detail = message.error ? `${message.error.message} (${message.error.code})` : "no notificationId";
      this.events.emit("error", new NotifyError(`an ack was rejected: ${detail}`, { code: message.error?.code ?? "malformed", operation: "ack" }));
      return;
    }
    this.acks.answered(message.notificationId, message.ok, message.error);
  }

  /** Deliver to the listeners unless already delivered; true when it was new. Serialised, in order. */
  private async retract(retraction: Retraction): Promise<PushDecision> {
    // Seen by the user: a push of it that arrives after its retract is a duplicate, not news.
    await this.store.markSeen(retraction.notificationId);
    try {
      await this.onRetract?.(retraction);
    } catch (error) {
      this.fail("handlePush", "retract_failed", error, retraction.notificationId);
    }
    return { display: false, notification: null, reason: "retract", retraction };
  }

  private deliver(notification: Notification, source: NotificationSource): Promise<boolean> {
    const run = this.deliveries.then(() => this.deliverNow(notification, source));
    this.deliveries = run.catch(() => undefined);
    return run;
  }

  private async deliverNow(notification: Notification, source: NotificationSource): Promise<boolean> {
    if (source === "realtime" && this.listeners.size === 0) {
      // Nobody to show it to yet: hold it, unacked (past the limit the push fallback delivers it).
      this.buffered.push(notification);
      if (this.buffered.length > this.maxBuffered) this.buffered.shift();
      return false;
    }
    let fresh = true;
    try {
      fresh = await this.store.markSeen(notification.notificationId);
    } catch (error) {
      this.fail("store", "store_failed", error);
    }
    if (fresh) {
      for (const listener of [...this.listeners]) {
        try {
          await listener(notification, source);
        } catch (error) {
          this.fail("listener", "listener_failed", error, notification.notificationId);
        }
      }
    }
    // Also for a duplicate: the earlier ack may be the thing that was lost.
    if (source === "realtime" && this.autoAck) void this.ack(notification.notificationId);
    return fresh;
  }

  private ackSettled(outcome: AckOutcome): void {
    this.events.emit("ack", outcome);
    if (!outcome.ok && outcome.error.code !== "stopped") this.events.emit("error", outcome.error);
  }

  private fail(operation: Operation, code: string, error: unknown, notificationId?: string): void {
    this.events.emit(
      "error",
      new NotifyError(`${operation}: ${describe(error)}`, {
        code,
        operation,
        cause: error,
        ...(notificationId !== undefined ? { notificationId } : {}),
      }),
    );
  }
}

function devicePath(installationId: string): string {
  if (typeof installationId !== "string" || installationId === "") {
    throw new TypeError("installationId must be a non-empty string");
  }
  return `/api/devices/${encodeURIComponent(installationId)}`;
}

function asNotifyError(error: unknown, operation: Operation): NotifyError {
  if (error instanceof NotifyError) return error;
  return new NotifyError(`${operation}: ${describe(error)}`, { code: "connect_failed", operation, retryable: true, cause: error });
}
