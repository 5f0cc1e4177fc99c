import type { Clock } from "./clock.js";
import { NotifyError } from "./errors.js";
import type { ApiClient } from "./http.js";

/** What `POST /api/negotiate` answers (docs/openapi.yaml, NegotiateResponse). */
export interface NegotiateResponse {
  readonly url: string;
  readonly expiresAt: string;
  readonly expiresInSeconds?: number;
  readonly userId: string;
}

/** A client access URL and when to replace it (local clock). */
interface CachedUrl {
  readonly url: string;
  readonly userId: string;
  readonly renewAt: number;
  readonly expiresAt: number;
}

/** Renew this long before expiry at most (and a quarter of the lifetime for short lifetimes). */
export const MAX_RENEWAL_MARGIN_MS = 5 * 60 * 1000;
/** Lifetimes beyond this are taken as a skewed clock and capped. */
const MAX_TRUSTED_LIFETIME_MS = 24 * 60 * 60 * 1000;

/**
 * The Web PubSub client access URL from `/api/negotiate`, kept until a quarter of its lifetime (at most
 * five minutes) before it expires, and negotiated again after that, on demand or by {@link renewIfDue}.
 * The lifetime (`expiresInSeconds`) is counted on the local clock from the moment the answer arrived, so a
 * device whose clock is off still renews in time.
 */
export class AccessUrlProvider {
  private cached: CachedUrl | undefined;
  private inFlight: Promise<CachedUrl> | undefined;
  /** How many negotiations succeeded (for the `state` of tests and diagnostics). */
  negotiations = 0;

  constructor(
    private readonly api: ApiClient,
    private readonly clock: Clock,
  ) {}

  /**
   * A URL that is not due for renewal: the cached one, or a new one from negotiate. When negotiating fails
   * while the cached URL has not expired yet, the cached one is still good for a connection.
   */
  async url(): Promise<string> {
    const cached = this.cached;
    if (cached !== undefined && this.clock.now() < cached.renewAt) return cached.url;
    try {
      return (await this.negotiate()).url;
    } catch (error) {
      if (cached !== undefined && this.cached === cached && this.clock.now() < cached.expiresAt) return cached.url;
      throw error;
    }
  }

  /** Negotiate again now when the cached URL is due for renewal; true when it did. */
  async renewIfDue(): Promise<boolean> {
    const cached = this.cached;
    if (cached === undefined || this.clock.now() < cached.renewAt) return false;
    await this.negotiate();
    return true;
  }

  /** Forget the cached URL (after a connection attempt failed with it). */
  invalidate(): void {
    this.cached = undefined;
  }

  /** When the cached URL is due for renewal (local clock), if there is one. */
  get renewAt(): number | undefined {
    return this.cached?.renewAt;
  }

  private negotiate(): Promise<CachedUrl> {
    // Concurrent callers share one request.
    this.inFlight ??= this.fetchUrl().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async fetchUrl(): Promise<CachedUrl> {
    const body = await this.api.request("negotiate", "POST", "/api/negotiate");
    const answer = parseNegotiateResponse(body);
    const received = this.clock.now();
    const lifetime =
      answer.expiresInSeconds !== undefined ? answer.expiresInSeconds * 1000 : Date.parse(answer.expiresAt) - received;
    const cached = { url: answer.url, userId: answer.userId, ...renewalTimes(received, lifetime) };
    this.cached = cached;
    this.negotiations += 1;
    return cached;
  }
}

/** When to renew and when it expires, for a URL received at `received` that lives `lifetimeMs`. */
export function renewalTimes(received: number, lifetimeMs: number): { renewAt: number; expiresAt: number } {
  const lifetime = Number.isFinite(lifetimeMs) ? Math.min(Math.max(lifetimeMs, 0), MAX_TRUSTED_LIFETIME_MS) : 0;
  const margin = Math.min(MAX_RENEWAL_MARGIN_MS, lifetime / 4);
  return { renewAt: received + lifetime - margin, expiresAt: received + lifetime };
}

/** Check the shape of a negotiate answer; throw NotifyError `invalid_response` otherwise. */
export function parseNegotiateResponse(body: unknown): NegotiateResponse {
  const value = body as Partial<Record<keyof NegotiateResponse, unknown>> | null;
  if (
    typeof value !== "object" ||
    value === null ||
    typeof value.url !== "string" ||
    !/^wss?:\/\//i.test(value.url) ||
    typeof value.expiresAt !== "string" ||
    Number.isNaN(Date.parse(value.expiresAt)) ||
    typeof value.userId !== "string"
  ) {
    throw new NotifyError("negotiate: the answer is not a NegotiateResponse", {
      code: "invalid_response",
      operation: "negotiate",
    });
  }
  const seconds = value.expiresInSeconds;
  const answer = { url: value.url, userId: value.userId, expiresAt: value.expiresAt };
  return typeof seconds === "number" && seconds > 0 ? { ...answer, expiresInSeconds: seconds } : answer;
}
