// Starts the repo's emulators (and, for the app checks, the whole private stack) as child processes on
// free ports, exactly as a developer runs them from the command line, and stops them again.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const VENV_PYTHON = path.join(REPO_ROOT, ".venv", "bin", "python");
export const PYTHON = process.env.PYTHON ?? (existsSync(VENV_PYTHON) ? VENV_PYTHON : "python3");
const READY_TIMEOUT_MS = 60_000;

/**
 * HTTPS mode: the emulators serve the certificate in DEVSTACK_TLS_DIR, which this Node process trusts
 * through NODE_EXTRA_CA_CERTS (read only at start, hence set by `make test-js`, as a user sets it).
 */
function tlsArgs() {
  const dir = process.env.DEVSTACK_TLS_DIR;
  if (!dir || !process.env.NODE_EXTRA_CA_CERTS) {
    throw new Error(
      "HTTPS tests need DEVSTACK_TLS_DIR and NODE_EXTRA_CA_CERTS (=<dir>/cert.pem); run them with `make test-js`",
    );
  }
  return ["--https", "--cert-dir", dir];
}

const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** A random, printable key (the emulators accept any string). */
export function randomKey() {
  return randomBytes(24).toString("base64url");
}

/**
 * Spawn `python -m <module> ...args` and resolve once a stdout line satisfies `isReady`.
 * Resolves to { process, lines, stop }; rejects with the process's stderr when it exits first.
 */
export async function startPythonProcess(module, args, isReady, env = {}) {
  const child = spawn(PYTHON, ["-m", module, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, PYTHONUNBUFFERED: "1", ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  children.add(child);
  const lines = [];
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-20_000);
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
    children.delete(child);
  };
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${module} was not ready within ${READY_TIMEOUT_MS} ms; stderr:\n${stderr}`));
    }, READY_TIMEOUT_MS);
    const reader = createInterface({ input: child.stdout });
    reader.on("line", (line) => {
      lines.push(line);
      if (isReady(lines)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${module} exited with ${code} before it was ready; stderr:\n${stderr}`));
    });
  });
  return { process: child, lines, stop, stderr: () => stderr };
}

/**
 * The Web PubSub emulator (`python -m devstack.webpubsub`) on a free port.
 * Returns { endpoint, connectionString, accessKey, certPath, stop, configureHub, drop, connections }.
 */
export async function startWebPubSub({ https = false, recoveryWindow, allowAnonymous = [] } = {}) {
  const accessKey = randomKey();
  const args = ["--port", "0", `--access-key=${accessKey}`, "--log-level", "WARNING"];
  if (https) args.push(...tlsArgs());
  if (recoveryWindow !== undefined) args.push("--recovery-window", String(recoveryWindow));
  for (const hub of allowAnonymous) args.push("--allow-anonymous", hub);
  const proc = await startPythonProcess("devstack.webpubsub", args, (lines) =>
    lines.some((l) => l.startsWith("webpubsub ready: ")),
  );
  const value = (prefix) => proc.lines.find((l) => l.startsWith(prefix))?.slice(prefix.length);
  const connectionString = value("webpubsub ready: ");
  const endpoint = /Endpoint=([^;]+)/.exec(connectionString)[1];
  const admin = async (method, pathname, body) => {
    const response = await fetch(`${endpoint}/_devstack${pathname}`, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status >= 300) {
      throw new Error(`${method} /_devstack${pathname} answered ${response.status}: ${await response.text()}`);
    }
    return response.status === 204 ? undefined : response.json();
  };
  return {
    endpoint,
    connectionString,
    accessKey,
    certPath: value("WEBPUBSUB_CERT="),
    stop: proc.stop,
    /** Replace a hub's settings (`{eventHandlers: [...], anonymousConnectPolicy}`). */
    configureHub: (hub, settings) => admin("PUT", `/hubs/${hub}`, settings),
    /** Cut a connection's TCP stream without a close frame (a network failure). */
    drop: (connectionId) => admin("POST", `/connections/${connectionId}/drop`),
    connections: async (hub) => (await admin("GET", `/connections?hub=${hub}`)).value,
  };
}

/**
 * The Notification Hubs emulator (`python -m devstack.notificationhubs`) on a free port.
 * Returns { connectionString, listenConnectionString, baseUrl, certPath, hub, stop, pushes, clearPushes }.
 */
export async function startNotificationHubs({ https = false, tier, hub = "notify" } = {}) {
  const fullKey = randomKey();
  const listenKey = randomKey();
  const args = ["--port", "0", "--hub", hub, `--full-key=${fullKey}`, `--listen-key=${listenKey}`];
  if (https) args.push(...tlsArgs());
  if (tier) args.push("--tier", tier);
  const proc = await startPythonProcess("devstack.notificationhubs", args, (lines) =>
    lines.some((l) => l.startsWith("NOTIFICATION_HUBS_CONNECTION_STRING=")),
  );
  const value = (prefix) => proc.lines.find((l) => l.startsWith(prefix))?.slice(prefix.length);
  const connectionString = value("NOTIFICATION_HUBS_CONNECTION_STRING=");
  const endpoint = /Endpoint=([^;]+)/.exec(connectionString)[1];
  const baseUrl = endpoint.replace(/^sb:\/\//, "https://").replace(/\/$/, "");
  const listenConnectionString = connectionString
    .replace("DefaultFullSharedAccessSignature", "DefaultListenSharedAccessSignature")
    .replace(fullKey, listenKey);
  return {
    hub,
    connectionString,
    listenConnectionString,
    baseUrl,
    fullKey,
    certPath: value("NOTIFICATION_HUBS_CERT="),
    stop: proc.stop,
    /** Pushes recorded by the sink, filtered like `GET /_devstack/pushes`. */
    pushes: async (filters = {}) => {
      const query = new URLSearchParams(filters).toString();
      const response = await fetch(`${baseUrl}/_devstack/pushes?${query}`);
      return response.json();
    },
    /** Pending scheduled sends (`GET /_devstack/scheduled`). */
    scheduled: async () => (await fetch(`${baseUrl}/_devstack/scheduled`)).json(),
  };
}

/**
 * The whole stack (Azurite, both emulators, the Functions host with function_app.py) on free ports, through
 * `support/private_stack.py`. Returns { functionsUrl, notificationHubsUrl, ackTimeoutSeconds, call, stop };
 * `call({cmd, ...})` runs one backend-side helper of the demo (token, registerDevice, enqueue, settle, pushes).
 */
export async function startPrivateStack() {
  const script = path.join(REPO_ROOT, "tests", "js", "support", "private_stack.py");
  const child = spawn(PYTHON, [script], {
    cwd: REPO_ROOT,
    env: { ...process.env, PYTHONUNBUFFERED: "1" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  children.add(child);
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-20_000);
  });
  const replies = [];
  const waiting = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    const next = waiting.shift();
    if (next) next(line);
    else replies.push(line);
  });
  const nextLine = (timeoutMs) =>
    new Promise((resolve, reject) => {
      if (replies.length) return resolve(replies.shift());
      const timer = setTimeout(() => reject(new Error(`no answer from the private stack; stderr:\n${stderr}`)), timeoutMs);
      waiting.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
      child.once("exit", (code) => reject(new Error(`the private stack exited (${code}); stderr:\n${stderr}`)));
    });
  const ready = JSON.parse(await nextLine(120_000));
  let queue = Promise.resolve();
  const call = (command) => {
    const result = queue.then(async () => {
      child.stdin.write(`${JSON.stringify(command)}\n`);
      const reply = JSON.parse(await nextLine(90_000));
      if (!reply.ok) throw new Error(`${command.cmd} failed: ${reply.error}`);
      return reply.result;
    });
    queue = result.catch(() => {});
    return result;
  };
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.stdin.end();
    const timer = setTimeout(() => child.kill("SIGTERM"), 30_000);
    await exited;
    clearTimeout(timer);
    children.delete(child);
  };
  return { ...ready, call, stop };
}

/** Listen on a free 127.0.0.1 port with a node:http request listener (an express app works). */
export async function listen(requestListener) {
  const server = createServer(requestListener);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
    server,
  };
}

/** Resolve when `predicate()` is truthy (checked every 25 ms); reject with `what` after `timeoutMs`. */
export async function waitFor(predicate, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
