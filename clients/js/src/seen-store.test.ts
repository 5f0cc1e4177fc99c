import assert from "node:assert/strict";
import { test } from "node:test";

import { AsyncStorageLike, SyncStorage } from "../test/support/fakes.js";
import { createSeenStore, flushSeenStore } from "./seen-store.js";

test("an id is new once", async () => {
  const store = createSeenStore();
  assert.equal(await store.markSeen("a"), true);
  assert.equal(await store.markSeen("a"), false);
  assert.equal(await store.hasSeen("a"), true);
  assert.equal(await store.hasSeen("b"), false);
});

test("the store is bounded: the oldest ids are forgotten first", async () => {
  const store = createSeenStore({ capacity: 3 });
  for (const id of ["a", "b", "c", "d"]) await store.markSeen(id);
  assert.deepEqual(await Promise.all(["a", "b", "c", "d"].map((id) => store.hasSeen(id))), [false, true, true, true]);
});

test("two channels marking the same id at once: exactly one wins", async () => {
  const store = createSeenStore({ storage: new AsyncStorageLike() });
  const results = await Promise.all([store.markSeen("x"), store.markSeen("x"), store.markSeen("x")]);
  assert.deepEqual(results.filter(Boolean), [true]);
});

for (const [name, make] of [
  ["localStorage-like (sync)", () => new SyncStorage()],
  ["AsyncStorage-like (async)", () => new AsyncStorageLike()],
] as const) {
  test(`ids survive a restart with ${name} storage`, async () => {
    const storage = make();
    const before = createSeenStore({ storage, key: "user-a" });
    await before.markSeen("n-1");
    await flushSeenStore(before);
    const after = createSeenStore({ storage, key: "user-a" }); // a new process: only the storage is shared
    assert.equal(await after.markSeen("n-1"), false);
    assert.equal(await after.markSeen("n-2"), true);
    const other = createSeenStore({ storage, key: "user-b" });
    assert.equal(await other.markSeen("n-1"), true);
  });
}

test("a burst of ids is written together, not once per id", async () => {
  const storage = new SyncStorage();
  const store = createSeenStore({ storage });
  await Promise.all(Array.from({ length: 50 }, (_, i) => store.markSeen(`n-${i}`)));
  await flushSeenStore(store);
  assert.ok(storage.writes < 50, `wrote ${storage.writes} times`);
  assert.equal(JSON.parse(storage.items.get("azure-notify.seen") ?? "[]").length, 50);
});

test("the stored ids and this run's ids are bounded together, oldest out first", async () => {
  const storage = new SyncStorage();
  storage.items.set("k", JSON.stringify(["old-1", "old-2", "old-3"]));
  const store = createSeenStore({ storage, key: "k", capacity: 3 });
  assert.equal(await store.markSeen("new-1"), true);
  assert.equal(await store.hasSeen("old-1"), false);
  assert.equal(await store.hasSeen("old-3"), true);
});

test("broken storage is reported and the store keeps working in memory", async () => {
  const errors: unknown[] = [];
  const storage = {
    getItem: () => "{not json",
    setItem: () => {
      throw new Error("quota exceeded");
    },
  };
  const store = createSeenStore({ storage, onError: (e) => errors.push(e) });
  assert.equal(await store.markSeen("a"), true);
  assert.equal(await store.markSeen("a"), false);
  await flushSeenStore(store);
  assert.equal(errors.length, 2);
});

test("a capacity that is not a positive integer is refused", () => {
  assert.throws(() => createSeenStore({ capacity: 0 }), RangeError);
  assert.throws(() => createSeenStore({ capacity: 1.5 }), RangeError);
});
