import type { Clock } from "./clock.js";
import { NotifyError, describe, type Operation } from "./errors.js";
import type { FetchLike, TokenProvider } from "./types.js";

interface AbortControllerLike {
  readonly signal: unknown;
  abort(): void;
}

/** The service's HTTP API (`/api/...` under the base URL), with the user's bearer token on every request. */
export class ApiClient {
  private readonly root: string;

  constructor(
    baseUrl: string,
    private readonly getToken: TokenProvider,
    private readonly fetchImpl: FetchLike,
    private readonly clock: Clock,
    private readonly timeoutMs: number,
  ) {
    if (!/^https?:\/\/[^/]/i.test(baseUrl)) {
      throw new TypeError(`baseUrl must be an http(s) URL, got ${JSON.stringify(baseUrl)}`);
    }
    this.root = baseUrl.replace(/\/+$/, "");
  }

  /**
   * Send a request and return the parsed JSON body (undefined for an empty one). A 401 gets one retry with
   * a token from `getToken({forceRefresh: true})`. Throws NotifyError with the service's code.
   */
  async request(operation: Operation, method: string, path: string, body?: unknown): Promise<unknown> {
    let response = await this.send(operation, method, path, body, false);
    if (response.status === 401) {
      await response.text().catch(() => "");
      response = await this.send(operation, method, path, body, true);
    }
    let text = "";
    try {
      text = await response.text();
    } catch {
      // A body that cannot be read is treated as empty; the status still says what happened.
    }
    if (response.status >= 200 && response.status < 300) {
      if (text === "") return undefined;
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new NotifyError(`${operation}: the service answered ${response.status} with a body that is not JSON`, {
          code: "invalid_response",
          operation,
          status: response.status,
        });
      }
    }
    throw errorFromResponse(operation, response.status, text, response.headers.get("Retry-After"));
  }

  private async send(
    operation: Operation,
    method: string,
    path: string,
    body: unknown,
    forceRefresh: boolean,
  ): Promise<Awaited<ReturnType<FetchLike>>> {
    let token: string;
    try {
      token = await this.getToken({ forceRefresh });
    } catch (error) {
      throw new NotifyError(`${operation}: getToken failed: ${describe(error)}`, {
        code: "token_unavailable",
        operation,
        retryable: true,
        cause: error,
      });
    }
    if (typeof token !== "string" || token === "") {
      throw new NotifyError(`${operation}: getToken returned no token`, { code: "token_unavailable", operation, retryable: true });
    }
    const headers: Record<string, string> = { Authorization: `Bearer ${token}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const controller = newAbortController();
    const timer = this.clock.setTimeout(() => controller?.abort(), this.timeoutMs);
    try {
      const init: Parameters<FetchLike>[1] = { method, headers };
      if (body !== undefined) init.body = JSON.stringify(body);
      if (controller !== undefined) init.signal = controller.signal;
      return await this.fetchImpl(this.root + path, init);
    } catch (error) {
      throw new NotifyError(`${operation}: the request failed: ${describe(error)}`, {
        code: "network",
        operation,
        retryable: true,
        cause: error,
      });
    } finally {
      this.clock.clearTimeout(timer);
    }
  }
}

/** The NotifyError for an HTTP error answer (the body is `{"error": {"code", "message", "field"?}}`). */
export function errorFromResponse(operation: Operation, status: number, text: string, retryAfter: string | null): NotifyError {
  let code = status === 401 ? "unauthorized" : `http_${status}`;
  let message = `the service answered ${status}`;
  let field: string | undefined;
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; field?: unknown } };
    const error = parsed.error;
    if (error !== undefined && typeof error.code === "string") code = error.code;
    if (error !== undefined && typeof error.message === "string") message = error.message;
    if (error !== undefined && typeof error.field === "string") field = error.field;
  } catch {
    // Not our error body (a proxy, the platform's 404): the status says enough.
  }
  const seconds = retryAfter === null ? undefined : Number.parseInt(retryAfter, 10);
  const details = {
    code,
    operation,
    status,
    retryable: status === 408 || status === 429 || status >= 500,
    ...(field !== undefined ? { field } : {}),
    ...(seconds !== undefined && Number.isFinite(seconds) ? { retryAfterSeconds: seconds } : {}),
  };
  return new NotifyError(`${operation}: ${message} (${status})`, details);
}

function newAbortController(): AbortControllerLike | undefined {
  const ctor = (globalThis as { AbortController?: new () => AbortControllerLike }).AbortController;
  return ctor === undefined ? undefined : new ctor();
}

/** The platform's fetch, or a clear error when there is none. */
export function platformFetch(): FetchLike {
  const impl = (globalThis as { fetch?: FetchLike }).fetch;
  if (impl === undefined) {
    throw new TypeError("no global fetch: pass options.fetch");
  }
  return (url, init) => impl(url, init);
}
