/**
 * Where the ids of the notifications already delivered to the app's listeners are kept, so that each
 * notification reaches them once across channels and across restarts (docs/CLIENT-PROTOCOL.md,
 * "Showing each notification once").
 */
export interface SeenStore {
  /**
   * Record `notificationId` as seen; resolves true when it was new, false when it had been seen. Checking and
   * recording are one step, so two channels delivering the same id at once deliver it once.
   */
  markSeen(notificationId: string): Promise<boolean>;
  /** Whether `notificationId` has been seen. */
  hasSeen(notificationId: string): Promise<boolean>;
}

/**
 * Key-value persistence for {@link createSeenStore}: `window.localStorage` and React Native's `AsyncStorage`
 * both have this shape (synchronous or promise-returning).
 */
export interface KeyValueStorage {
  getItem(key: string): string | null | undefined | Promise<string | null | undefined>;
  setItem(key: string, value: string): void | Promise<void>;
}

/** Options of {@link createSeenStore}. */
export interface SeenStoreOptions {
  /** Persistence; without one the store lives in memory only (not across restarts). */
  storage?: KeyValueStorage;
  /** The storage key (default `azure-notify.seen`). One per signed-in user if several share a device. */
  key?: string;
  /** How many ids to keep: the oldest are forgotten first (default 1000). */
  capacity?: number;
  /** Told when reading or writing the storage fails (the store then keeps working in memory). */
  onError?: (error: unknown) => void;
}

export const DEFAULT_SEEN_CAPACITY = 1000;
export const DEFAULT_SEEN_KEY = "azure-notify.seen";

/**
 * A bounded {@link SeenStore}: the last `capacity` ids in memory, written to `storage` (if given) after
 * every change as a JSON array under `key`, and read back from it on first use.
 */
export function createSeenStore(options: SeenStoreOptions = {}): SeenStore {
  return new BoundedSeenStore(options);
}

class BoundedSeenStore implements SeenStore {
  private readonly ids = new Set<string>();
  private readonly capacity: number;
  private readonly key: string;
  private loaded: Promise<void> | undefined;
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;

  constructor(private readonly options: SeenStoreOptions) {
    const capacity = options.capacity ?? DEFAULT_SEEN_CAPACITY;
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError("capacity must be a positive integer");
    this.capacity = capacity;
    this.key = options.key ?? DEFAULT_SEEN_KEY;
  }

  async markSeen(notificationId: string): Promise<boolean> {
    await this.load();
    if (this.ids.has(notificationId)) return false;
    this.ids.add(notificationId);
    this.trim();
    this.persist();
    return true;
  }

  async hasSeen(notificationId: string): Promise<boolean> {
    await this.load();
    return this.ids.has(notificationId);
  }

  private load(): Promise<void> {
    this.loaded ??= this.read();
    return this.loaded;
  }

  private async read(): Promise<void> {
    const storage = this.options.storage;
    if (storage === undefined) return;
    try {
      const text = await storage.getItem(this.key);
      const stored: unknown = text ? JSON.parse(text) : [];
      if (Array.isArray(stored)) {
        // Stored ids are older than anything seen in this run: they go first, so they are evicted first.
        const current = [...this.ids];
        this.ids.clear();
        for (const id of [...stored, ...current]) if (typeof id === "string") this.ids.add(id);
        this.trim();
      }
    } catch (error) {
      this.options.onError?.(error);
    }
  }

  private trim(): void {
    for (const oldest of this.ids) {
      if (this.ids.size <= this.capacity) break;
      this.ids.delete(oldest);
    }
  }

  private persist(): void {
    const storage = this.options.storage;
    if (storage === undefined) return;
    // Writes run one at a time, each with the latest snapshot; a burst of ids costs one write per run.
    if (this.dirty) return;
    this.dirty = true;
    this.writing = this.writing.then(async () => {
      this.dirty = false;
      try {
        await storage.setItem(this.key, JSON.stringify([...this.ids]));
      } catch (error) {
        this.options.onError?.(error);
      }
    });
  }

  /** Resolves when every write so far has finished (tests, and apps about to exit). */
  flush(): Promise<void> {
    return this.writing;
  }
}

/** Wait for a store's pending writes, if it has any (stores made by {@link createSeenStore}). */
export async function flushSeenStore(store: SeenStore): Promise<void> {
  const flush = (store as { flush?: () => Promise<void> }).flush;
  if (typeof flush === "function") await flush.call(store);
}
