// The browser demo end to end in headless Chromium (Debian's chromium, driven by playwright-core; no
// browser download): sign in, receive a notification enqueued with the producer CLI, see it acked, and see
// the same notification arrive as a push afterwards without being shown twice.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium, type Browser, type Page } from "playwright-core";

import { newUser, testStack } from "../integration/stack.js";

const stack = testStack();
const EXECUTABLE = process.env["CHROMIUM"] ?? "/usr/bin/chromium";
// What this machine's closed network needs (no background connections to Google's services).
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const TIMEOUT = 30000;
let browser: Browser;

before(async () => {
  // playwright-core gives every launch a new, empty profile (--user-data-dir) of its own.
  browser = await chromium.launch({ executablePath: EXECUTABLE, headless: true, args: FLAGS });
});

after(async () => {
  await browser?.close();
});

/** Enqueue with the producer CLI, as a backend operator would; returns the notificationId it printed. */
function produce(userId: string, title: string, delivery: string): string {
  const result = spawnSync(
    stack.python,
    ["-m", "notify", "send", "--user", userId, "--title", title, "--body", "Sent with python -m notify send", "--delivery", delivery],
    {
      cwd: stack.repoRoot,
      encoding: "utf8",
      timeout: 60000,
      env: { ...process.env, AzureWebJobsStorage: stack.storageConnectionString, NOTIFICATIONS_QUEUE: stack.notificationsQueue },
    },
  );
  assert.equal(result.status, 0, `python -m notify send failed: ${result.stderr}`);
  return result.stdout.trim();
}

async function signIn(page: Page, userId: string): Promise<void> {
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(error.message));
  await page.goto(`${stack.browserDemoUrl}/?user=${encodeURIComponent(userId)}`);
  await page.waitForSelector("body[data-ready=true]", { timeout: TIMEOUT });
  await page.click("#sign-in");
  await page.waitForSelector("#state[data-state=connected]", { timeout: TIMEOUT });
  assert.deepEqual(problems, []);
}

test("a notification from the producer appears in the page, is acked, and its push is not shown twice", async () => {
  const page = await browser.newPage();
  const userId = newUser("browser");
  await signIn(page, userId);
  assert.match((await page.textContent("#log")) ?? "", /device browser-[\w-]+ registered \(fcmv1\)/);

  const id = produce(userId, "From the producer", "both");
  const item = `#notifications li[data-id="${id}"]`;
  await page.waitForSelector(`${item}[data-source=realtime]`, { timeout: TIMEOUT });
  await page.waitForSelector(`${item} .badge.ack[data-result=acked]`, { timeout: TIMEOUT });

  // The push of the same notification reaches the push sink; the page hands it to handlePush.
  const pushed = `#pushes li[data-id="${id}"][data-kind=notification]`;
  await page.waitForSelector(pushed, { timeout: TIMEOUT });
  assert.equal(await page.getAttribute(pushed, "data-display"), "false");
  assert.match((await page.textContent(pushed)) ?? "", /not displayed: already shown/);
  assert.equal(await page.locator(`#notifications li[data-id="${id}"]`).count(), 1, "shown once");
  // Pushed and acked in-app: the service takes the push back with a silent retract.
  const retracted = `#pushes li[data-id="${id}"][data-kind=retract]`;
  await page.waitForSelector(retracted, { timeout: TIMEOUT });
  assert.equal(await page.getAttribute(retracted, "data-display"), "false");
  await page.screenshot({ path: join(stack.repoRoot, "clients", "js", "dist", "browser-demo.png"), fullPage: true });
  await page.close();
});

test("the page's own send form delivers to the signed-in user, and a push-only one is displayed as a push", async () => {
  const page = await browser.newPage();
  const userId = newUser("form");
  await signIn(page, userId);
  await page.fill("#send-title", "Sent from the page");
  await page.selectOption("#send-delivery", "realtime");
  await page.click("#send");
  await page.waitForSelector("#sent[data-id]:not([data-id=''])", { timeout: TIMEOUT });
  const realtimeId = await page.getAttribute("#sent", "data-id");
  await page.waitForSelector(`#notifications li[data-id="${realtimeId}"][data-source=realtime]`, { timeout: TIMEOUT });

  await page.fill("#send-title", "Push only");
  await page.selectOption("#send-delivery", "push");
  await page.click("#send");
  await page.waitForFunction((previous) => document.querySelector("#sent")?.getAttribute("data-id") !== previous, realtimeId);
  const pushId = await page.getAttribute("#sent", "data-id");
  await page.waitForSelector(`#pushes li[data-id="${pushId}"][data-display=true]`, { timeout: TIMEOUT });
  await page.waitForSelector(`#notifications li[data-id="${pushId}"][data-source=push]`, { timeout: TIMEOUT });
  await page.close();
});
