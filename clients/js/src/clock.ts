/** Time as the SDK sees it; tests pass their own to check backoff and token renewal without waiting. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Run `callback` after `ms` milliseconds; returns a handle for {@link Clock.clearTimeout}. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancel a callback scheduled with {@link Clock.setTimeout}. */
  clearTimeout(handle: unknown): void;
}

/** The platform's clock and timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle),
};

/** Resolve after `ms` milliseconds of `clock`. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}
