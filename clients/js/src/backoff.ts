/** How long to wait between reconnect attempts (and between ack retries). */
export interface BackoffOptions {
  /** The bound of the first delay (default 1000 ms). */
  initialDelayMs?: number;
  /** The largest bound (default 30000 ms). */
  maxDelayMs?: number;
  /** How much the bound grows per attempt (default 2). */
  multiplier?: number;
}

/** Exponential backoff with full jitter: attempt n waits a random time in [0, min(max, initial·m^(n-1))]. */
export class Backoff {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;

  constructor(options: BackoffOptions = {}, private readonly random: () => number = Math.random) {
    this.initialDelayMs = positive(options.initialDelayMs ?? 1000, "initialDelayMs");
    this.maxDelayMs = Math.max(this.initialDelayMs, positive(options.maxDelayMs ?? 30000, "maxDelayMs"));
    this.multiplier = options.multiplier ?? 2;
    if (!(this.multiplier >= 1)) throw new RangeError("multiplier must be at least 1");
  }

  /** The bound of attempt `attempt` (1-based): the delay is drawn below it. */
  bound(attempt: number): number {
    const exponent = Math.max(0, Math.floor(attempt) - 1);
    return Math.min(this.maxDelayMs, this.initialDelayMs * Math.pow(this.multiplier, exponent));
  }

  /** The delay before attempt `attempt` (1-based), in milliseconds. */
  delay(attempt: number): number {
    const draw = Math.min(Math.max(this.random(), 0), 1);
    return Math.round(draw * this.bound(attempt));
  }
}

function positive(value: number, name: string): number {
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`${name} must be a positive number`);
  return value;
}
