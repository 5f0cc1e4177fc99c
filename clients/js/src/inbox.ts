import type { Clock } from "./clock.js";
import { NotifyError, describe } from "./errors.js";
import { Emitter } from "./events.js";
import type { ApiClient } from "./http.js";
import { isNotificationId, isObject } from "./protocol.js";
import type { KeyValueStorage } from "./seen-store.js";

/** The user's counts (docs/CLIENT-PROTOCOL.md, "The inbox"): all over items neither archived nor deleted. */
export interface InboxCounts {
  readonly unread: number;
  readonly unseen: number;
  readonly total: number;
}

/** One item of the inbox, as the service lists it. */
export interface InboxItem {
  readonly notificationId: string;
  readonly title: string;
  readonly body: string;
  readonly type: string;
  readonly data: Readonly<Record<string, unknown>>;
  readonly createdAt: string;
  readonly expiresAt: string | null;
  readonly read: boolean;
  readonly readAt: string | null;
  readonly seen: boolean;
  readonly seenAt: string | null;
  readonly archived: boolean;
  readonly archivedAt: string | null;
  readonly deleted: false;
  readonly version: number;
}

/** A change of an item's marks (from an `inbox` envelope or a mark's answer), or a deletion. */
export interface InboxMarks {
  readonly notificationId: string;
  readonly read: boolean;
  readonly seen: boolean;
  readonly archived: boolean;
  readonly deleted: boolean;
  readonly version: number;
  /** True when the item was just taken into the inbox (fetch it with {@link Inbox.get} if you need it). */
  readonly new?: boolean;
}

/** What an `changes` event carries: whole items (catch-up) or marks (envelopes, marks), newest version only. */
export type InboxChange = InboxItem | InboxMarks;

/** A `changes` event. */
export interface InboxChanges {
  readonly changes: readonly InboxChange[];
  /** True when the cached inbox must be dropped first (the service no longer knows the stored cursor). */
  readonly reset: boolean;
  readonly source: "catch-up" | "envelope" | "mark";
}

/** One page of {@link Inbox.list}. */
export interface InboxPage {
  readonly items: readonly InboxItem[];
  /** Pass as `before` for the next page; null at the end. */
  readonly next: string | null;
  readonly counts: InboxCounts;
}

/** Options of {@link Inbox.list}. */
export interface InboxListOptions {
  /** 1-100 (default 20). */
  readonly limit?: number;
  /** The `next` of the previous page. */
  readonly before?: string;
  readonly type?: string;
  /** `unread`, `unseen`, `archived` or `all`; without it, everything not archived. */
  readonly status?: "unread" | "unseen" | "archived" | "all";
}

/** Options of the inbox part of {@link createNotifyClient}. */
export interface InboxOptions {
  /** Keeps the catch-up cursor and the last counts across restarts (localStorage, AsyncStorage). */
  readonly storage?: KeyValueStorage;
  /** The storage key (default `azure-notify.inbox`); one per signed-in user if several share a device. */
  readonly key?: string;
  /** How long after a listed in-app notification to catch up, so its counts come from the service (default 300 ms). */
  readonly arrivalDelayMs?: number;
}

/** The events of an {@link Inbox}. */
export interface InboxEvents {
  [name: string]: unknown;
  /** The counts the service reported changed. */
  counts: InboxCounts;
  /** Items were created or changed. */
  changes: InboxChanges;
}

const DEFAULT_KEY = "azure-notify.inbox";
const VERSIONS_KEPT = 1000;
type Marking = "read" | "unread" | "seen" | "archive" | "unarchive";

/**
 * The signed-in user's inbox: lists, counts that come from the service and follow every change, marks, and
 * catch-up from a cursor on every (re)connect (done by the client once the app has used `client.inbox`).
 */
export class Inbox {
  private readonly events: Emitter<InboxEvents>;
  private readonly versions = new Map<string, number>();
  private readonly key: string;
  private readonly arrivalDelayMs: number;
  private storedCursor: string | undefined;
  private currentCounts: InboxCounts | undefined;
  private loaded: Promise<void> | undefined;
  private catching: Promise<void> | undefined;
  private again = false;
  private arrivalTimer: unknown;

  /** @internal Made by the NotifyClient. */
  constructor(
    private readonly api: ApiClient,
    private readonly clock: Clock,
    private readonly reportError: (error: NotifyError) => void,
    private readonly options: InboxOptions = {},
  ) {
    this.events = new Emitter<InboxEvents>((error) => this.reportError(failure("a listener of the inbox failed", error)));
    this.key = options.key ?? DEFAULT_KEY;
    this.arrivalDelayMs = options.arrivalDelayMs ?? 300;
  }

  /** The counts as the service last reported them; undefined until the first answer. */
  get counts(): InboxCounts | undefined {
    return this.currentCounts;
  }

  /** The changes-feed cursor up to which everything was applied. */
  get cursor(): string | undefined {
    return this.storedCursor;
  }

  /** Subscribe to `counts` or `changes`; returns the function that unsubscribes. */
  on<E extends "counts" | "changes">(event: E, listener: (value: InboxEvents[E]) => void): () => void {
    return this.events.on(event, listener);
  }

  /** One page, newest first (`GET /api/inbox`). */
  async list(options: InboxListOptions = {}): Promise<InboxPage> {
    const suffix = queryString({
      limit: options.limit === undefined ? undefined : String(options.limit),
      before: options.before,
      type: options.type,
      status: options.status,
    });
    const body = record(await this.api.request("inbox", "GET", `/api/inbox${suffix}`), "InboxPage");
    const items = array(body["items"]).map(item);
    this.noteCounts(body["counts"]);
    await this.load();
    if (this.storedCursor === undefined && typeof body["cursor"] === "string") this.setCursor(body["cursor"]);
    for (const entry of items) this.noteVersion(entry.notificationId, entry.version);
    return { items, next: typeof body["next"] === "string" ? body["next"] : null, counts: this.currentCounts ?? ZERO };
  }

  /** One item (`GET /api/inbox/items/{id}`); rejects with code `not_found` when the user has no such item. */
  async get(notificationId: string): Promise<InboxItem> {
    return item(await this.api.request("inbox", "GET", itemPath(notificationId)));
  }

  /** Ask the service for the counts (they also arrive with every change). */
  async refreshCounts(): Promise<InboxCounts> {
    this.noteCounts(await this.api.request("inbox", "GET", "/api/inbox/counts"));
    return this.currentCounts ?? ZERO;
  }

  /** Mark read; call it when the user opens a notification, also one opened from a push. */
  markRead(notificationId: string): Promise<InboxMarks> {
    return this.mark(notificationId, "read");
  }

  /** Mark unread again. */
  markUnread(notificationId: string): Promise<InboxMarks> {
    return this.mark(notificationId, "unread");
  }

  /** Mark seen (shown in a list). */
  markSeen(notificationId: string): Promise<InboxMarks> {
    return this.mark(notificationId, "seen");
  }

  /** Archive (out of the feed and the counts). */
  archive(notificationId: string): Promise<InboxMarks> {
    return this.mark(notificationId, "archive");
  }

  /** Back into the feed. */
  unarchive(notificationId: string): Promise<InboxMarks> {
    return this.mark(notificationId, "unarchive");
  }

  /** Delete (`DELETE /api/inbox/items/{id}`); deleting twice is fine. */
  async remove(notificationId: string): Promise<void> {
    await this.api.request("inbox", "DELETE", itemPath(notificationId));
  }

  /** Mark every item read (only those of `type`, if given), following `resume` until the service is done. */
  readAll(options: { type?: string } = {}): Promise<number> {
    return this.markAll("read-all", options.type);
  }

  /** Mark every item seen (only those of `type`, if given). */
  seenAll(options: { type?: string } = {}): Promise<number> {
    return this.markAll("seen-all", options.type);
  }

  /**
   * Fetch everything created or changed since the stored cursor (all of it the first time) and report it as
   * `changes` events. The client calls it on every (re)connect; calls while one runs are folded into one more.
   */
  catchUp(): Promise<void> {
    if (this.catching !== undefined) {
      this.again = true;
      return this.catching;
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        await this.catchUpOnce();
      } while (this.again);
    };
    this.catching = run().finally(() => {
      this.catching = undefined;
    });
    return this.catching;
  }

  /** @internal An `inbox` envelope arrived. */
  receive(envelope: Record<string, unknown>): void {
    void this.load().then(() => {
      const previous = envelope["previousCursor"];
      const cursor = envelope["cursor"];
      if (typeof cursor !== "string" || typeof previous !== "string") return;
      if (cursor === this.storedCursor) return; // already applied (the answer to our own mark came first)
      this.noteCounts(envelope["counts"]);
      if (previous !== this.storedCursor) {
        this.background();
        return;
      }
      this.setCursor(cursor);
      this.report(array(envelope["changes"]).map(marks), false, "envelope");
    });
  }

  /** @internal A listed notification arrived in-app: catch up shortly, so the service counts it in. */
  arrived(): void {
    if (this.arrivalTimer !== undefined) return;
    this.arrivalTimer = this.clock.setTimeout(() => {
      this.arrivalTimer = undefined;
      this.background();
    }, this.arrivalDelayMs);
  }

  /** @internal Catch up without waiting; failures are `error` events. */
  background(): void {
    this.catchUp().catch((error: unknown) => this.reportError(asInboxError(error)));
  }

  /** @internal Stop timers (the client stopped). */
  dispose(): void {
    this.clock.clearTimeout(this.arrivalTimer);
    this.arrivalTimer = undefined;
  }

  private async catchUpOnce(): Promise<void> {
    await this.load();
    for (;;) {
      const after = queryString({ after: this.storedCursor });
      const body = record(await this.api.request("inbox", "GET", `/api/inbox/changes${after}`), "InboxChanges");
      const reset = body["reset"] === true;
      if (reset) this.versions.clear();
      const changes = array(body["changes"]).map((entry) => (isObject(entry) && entry["deleted"] === true ? marks(entry) : item(entry)));
      if (typeof body["cursor"] === "string") this.setCursor(body["cursor"]);
      this.noteCounts(body["counts"]);
      this.report(changes, reset, "catch-up");
      if (body["more"] !== true) return;
    }
  }

  private async mark(notificationId: string, action: Marking): Promise<InboxMarks> {
    const body = record(await this.api.request("inbox", "POST", `${itemPath(notificationId)}/${action}`), "InboxMarkAnswer");
    const entry = marks(body["item"]);
    this.noteCounts(body["counts"]);
    await this.load();
    const previous = body["previousCursor"];
    const cursor = body["cursor"];
    if (typeof cursor === "string" && cursor !== this.storedCursor) {
      if (previous === this.storedCursor) {
        this.setCursor(cursor);
        this.report([entry], false, "mark");
      } else {
        this.report([entry], false, "mark");
        this.background(); // something happened in between: fetch it
      }
    }
    return entry;
  }

  private async markAll(route: "read-all" | "seen-all", type: string | undefined): Promise<number> {
    let marked = 0;
    let resume: string | undefined;
    for (;;) {
      const suffix = queryString({ type, resume });
      const body = record(await this.api.request("inbox", "POST", `/api/inbox/${route}${suffix}`), "InboxMarkAllAnswer");
      marked += typeof body["marked"] === "number" ? body["marked"] : 0;
      this.noteCounts(body["counts"]);
      if (body["done"] === true || typeof body["resume"] !== "string") break;
      resume = body["resume"];
    }
    this.background(); // the envelopes carry the changes; catch up in case one was missed
    return marked;
  }

  private report(changes: InboxChange[], reset: boolean, source: InboxChanges["source"]): void {
    const fresh = changes.filter((change) => this.noteVersion(change.notificationId, change.version));
    if (fresh.length > 0 || reset) this.events.emit("changes", { changes: fresh, reset, source });
  }

  /** Remember the item's version; false when a newer (or the same) one was seen already. */
  private noteVersion(notificationId: string, version: number): boolean {
    const known = this.versions.get(notificationId);
    if (known !== undefined && known >= version) return false;
    this.versions.delete(notificationId);
    this.versions.set(notificationId, version);
    if (this.versions.size > VERSIONS_KEPT) {
      const oldest = this.versions.keys().next().value;
      if (oldest !== undefined) this.versions.delete(oldest);
    }
    return true;
  }

  private noteCounts(value: unknown): void {
    const counts = countsFrom(value);
    if (counts === undefined) return;
    const before = this.currentCounts;
    this.currentCounts = counts;
    if (before === undefined || before.unread !== counts.unread || before.unseen !== counts.unseen || before.total !== counts.total) {
      this.save();
      this.events.emit("counts", counts);
    }
  }

  private setCursor(cursor: string): void {
    if (cursor === this.storedCursor) return;
    this.storedCursor = cursor;
    this.save();
  }

  private load(): Promise<void> {
    const storage = this.options.storage;
    if (storage === undefined) return Promise.resolve();
    this.loaded ??= (async () => {
      try {
        const raw = await storage.getItem(this.key);
        const saved = raw ? (JSON.parse(raw) as unknown) : undefined;
        if (isObject(saved)) {
          if (typeof saved["cursor"] === "string" && this.storedCursor === undefined) this.storedCursor = saved["cursor"];
          const counts = countsFrom(saved["counts"]);
          if (counts !== undefined && this.currentCounts === undefined) this.currentCounts = counts;
        }
      } catch (error) {
        this.reportError(failure("reading the stored inbox cursor failed", error));
      }
    })();
    return this.loaded;
  }

  private save(): void {
    const storage = this.options.storage;
    if (storage === undefined) return;
    const value = JSON.stringify({ cursor: this.storedCursor, counts: this.currentCounts });
    Promise.resolve()
      .then(() => storage.setItem(this.key, value))
      .catch((error: unknown) => this.reportError(failure("storing the inbox cursor failed", error)));
  }
}

const ZERO: InboxCounts = { unread: 0, unseen: 0, total: 0 };

function itemPath(notificationId: string): string {
  if (!isNotificationId(notificationId)) throw new TypeError(`not a notificationId: ${JSON.stringify(notificationId)}`);
  return `/api/inbox/items/${encodeURIComponent(notificationId)}`;
}

/** `?a=1&b=2` of the defined values ("" for none); no URLSearchParams, which React Native lacks in part. */
function queryString(values: Record<string, string | undefined>): string {
  const parts = Object.entries(values)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([name, value]) => `${name}=${encodeURIComponent(value)}`);
  return parts.length > 0 ? `?${parts.join("&")}` : "";
}

function countsFrom(value: unknown): InboxCounts | undefined {
  if (!isObject(value)) return undefined;
  const { unread, unseen, total } = value;
  if (typeof unread !== "number" || typeof unseen !== "number" || typeof total !== "number") return undefined;
  return { unread, unseen, total };
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (!isObject(value)) throw invalid(`the answer is not an ${what}`);
  return value;
}

function array(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function item(value: unknown): InboxItem {
  const fields = record(value, "InboxItem");
  if (!isNotificationId(fields["notificationId"]) || typeof fields["version"] !== "number") throw invalid("an item has no id or version");
  return fields as unknown as InboxItem;
}

function marks(value: unknown): InboxMarks {
  const fields = record(value, "inbox change");
  const id = fields["notificationId"];
  if (!isNotificationId(id) || typeof fields["version"] !== "number") throw invalid("a change has no id or version");
  return {
    notificationId: id,
    read: fields["read"] === true,
    seen: fields["seen"] === true,
    archived: fields["archived"] === true,
    deleted: fields["deleted"] === true,
    version: fields["version"],
    ...(fields["new"] === true ? { new: true } : {}),
  };
}

function invalid(message: string): NotifyError {
  return new NotifyError(`inbox: ${message}`, { code: "invalid_response", operation: "inbox" });
}

function failure(message: string, error: unknown): NotifyError {
  return new NotifyError(`inbox: ${message}: ${describe(error)}`, { code: "inbox_failed", operation: "inbox", cause: error });
}

function asInboxError(error: unknown): NotifyError {
  return error instanceof NotifyError ? error : failure("catching up failed", error);
}
