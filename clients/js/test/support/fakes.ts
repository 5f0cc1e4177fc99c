// Test doubles for the unit tests: a clock whose time only moves when told, a scripted fetch, an in-memory
// transport and key-value storages shaped like localStorage (sync) and AsyncStorage (async).
import type { Clock } from "../../src/clock.js";
import type { RealtimeTransport, TransportFactory } from "../../src/transport.js";
import type { FetchLike } from "../../src/types.js";

interface Timer {
  id: number;
  at: number;
  callback: () => void;
}

/** A clock that runs timers only in {@link advance}. */
export class FakeClock implements Clock {
  private time = 1_700_000_000_000;
  private timers: Timer[] = [];
  private nextId = 1;

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const timer = { id: this.nextId++, at: this.time + Math.max(0, ms), callback };
    this.timers.push(timer);
    return timer.id;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  /** Pending timers, soonest first, as delays from now. */
  pending(): number[] {
    return this.timers.map((t) => t.at - this.time).sort((a, b) => a - b);
  }

  /** Move time forward by `ms`, running every timer that comes due (and letting promises settle between). */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = Math.max(this.time, due.at);
      due.callback();
    }
    this.time = end;
    await settle();
  }
}

/** Let pending promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** A recorded request. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

type Reply = { status: number; body?: unknown; headers?: Record<string, string> } | Error;

/** A fetch that answers from `route(request)` and records every request. */
export function scriptedFetch(route: (request: SeenRequest) => Reply): { fetch: FetchLike; requests: SeenRequest[] } {
  const requests: SeenRequest[] = [];
  const fetch: FetchLike = async (url, init) => {
    const request = { method: init.method, url, headers: init.headers, body: init.body ? JSON.parse(init.body) : undefined };
    requests.push(request);
    const reply = route(request);
    if (reply instanceof Error) throw reply;
    const headers = new Map(Object.entries(reply.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    return {
      status: reply.status,
      headers: { get: (name: string) => headers.get(name.toLowerCase()) ?? null },
      text: async () => (reply.body === undefined ? "" : typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body)),
    };
  };
  return { fetch, requests };
}

/** The negotiate answer the service gives, for `clock`'s now. */
export function negotiateAnswer(clock: Clock, userId = "alice", seconds = 3600): { status: number; body: unknown } {
  return {
    status: 200,
    body: {
      url: `ws://127.0.0.1:8080/client/hubs/notify?access_token=t${clock.now()}`,
      baseUrl: "ws://127.0.0.1:8080/client/hubs/notify",
      expiresAt: new Date(clock.now() + seconds * 1000).toISOString(),
      expiresInSeconds: seconds,
      userId,
    },
  };
}

/** A transport the test drives: it records what the client does and raises events on request. */
export class FakeTransport implements RealtimeTransport {
  readonly acks: string[] = [];
  readonly urls: string[] = [];
  starts = 0;
  stops = 0;
  /** Make the next start() fail with this error. */
  failNextStart: Error | undefined;
  private handlers = {
    connected: [] as Array<(id: string) => void>,
    disconnected: [] as Array<(reason: string | undefined) => void>,
    stopped: [] as Array<() => void>,
    message: [] as Array<(data: unknown) => void>,
  };
  private open = false;

  constructor(private readonly getUrl: () => Promise<string>) {}

  async start(): Promise<void> {
    this.starts += 1;
    this.urls.push(await this.getUrl());
    const failure = this.failNextStart;
    this.failNextStart = undefined;
    if (failure) throw failure;
    this.open = true;
  }

  stop(): void {
    this.stops += 1;
    if (this.open) {
      this.open = false;
      this.handlers.disconnected.forEach((h) => h(undefined));
      this.handlers.stopped.forEach((h) => h());
    }
  }

  async sendAck(notificationId: string): Promise<void> {
    if (!this.open) throw new Error("The connection is not connected.");
    this.acks.push(notificationId);
  }

  onConnected(listener: (connectionId: string) => void): void {
    this.handlers.connected.push(listener);
  }
  onDisconnected(listener: (reason: string | undefined) => void): void {
    this.handlers.disconnected.push(listener);
  }
  onStopped(listener: () => void): void {
    this.handlers.stopped.push(listener);
  }
  onMessage(listener: (data: unknown) => void): void {
    this.handlers.message.push(listener);
  }

  /** The service's `connected` message. */
  connect(connectionId = "conn-1"): void {
    this.handlers.connected.forEach((h) => h(connectionId));
  }

  /** A server message. */
  receive(data: unknown): void {
    this.handlers.message.forEach((h) => h(data));
  }

  /** The connection is lost for good (recovery failed). */
  drop(reason = "connection lost"): void {
    this.open = false;
    this.handlers.disconnected.forEach((h) => h(reason));
    this.handlers.stopped.forEach((h) => h());
  }
}

/** A transport factory that keeps the transport it made. */
export function fakeTransport(): { factory: TransportFactory; get: () => FakeTransport } {
  let made: FakeTransport | undefined;
  return {
    factory: (getUrl) => (made = new FakeTransport(getUrl)),
    get: () => {
      if (made === undefined) throw new Error("no transport made yet");
      return made;
    },
  };
}

/** Storage shaped like window.localStorage (synchronous). */
export class SyncStorage {
  readonly items = new Map<string, string>();
  writes = 0;
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.writes += 1;
    this.items.set(key, value);
  }
}

/** Storage shaped like React Native's AsyncStorage (promises). */
export class AsyncStorageLike {
  readonly items = new Map<string, string>();
  async getItem(key: string): Promise<string | null> {
    await settle();
    return this.items.get(key) ?? null;
  }
  async setItem(key: string, value: string): Promise<void> {
    await settle();
    this.items.set(key, value);
  }
}

/** The envelope the service sends in-app. */
export function envelope(notificationId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: "notification",
    protocolVersion: 1,
    notificationId,
    title: "Hello",
    body: "World",
    type: "chat",
    data: { room: "r1" },
    ...extra,
  };
}

/** The service's answer to an ack. */
export function ackResult(notificationId: string | null, code?: string, retryable = false): Record<string, unknown> {
  const answer: Record<string, unknown> = { kind: "ackResult", protocolVersion: 1, notificationId, ok: code === undefined };
  if (code !== undefined) answer["error"] = { code, message: `failed: ${code}`, retryable };
  return answer;
}
