// The SDK must run unchanged in browsers and React Native: no Node.js built-ins and nothing of the DOM
// beyond fetch and WebSocket (WebSocket is @azure/web-pubsub-client's business). The compiler enforces
// it (tsconfig.json: lib ES2022, no @types); this test keeps that configuration in place and checks the
// emitted JavaScript as well.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const LIBRARY = join(ROOT, "dist", "esm");
const ALLOWED_IMPORTS = new Set(["@azure/web-pubsub-client"]);
// Globals of Node.js, the DOM and React Native that a portable core must not touch.
const FORBIDDEN_GLOBALS = [
  "window", "document", "navigator", "location", "localStorage", "sessionStorage", "indexedDB",
  "process", "Buffer", "require", "module", "__dirname", "__filename", "global", "setImmediate",
  "XMLHttpRequest", "EventSource", "BroadcastChannel", "Worker", "crypto", "TextEncoder", "TextDecoder",
  "URL", "URLSearchParams", "atob", "btoa", "structuredClone", "queueMicrotask", "performance",
];

function libraryFiles(): Array<[string, string]> {
  return readdirSync(LIBRARY)
    .filter((name) => name.endsWith(".js"))
    .map((name) => [name, readFileSync(join(LIBRARY, name), "utf8")]);
}

function code(source: string): string {
  // Drop comments and string contents, so that words in them do not count.
  return source
    .replace(/\/\*[\s\S]*?\*\//g, " ")
    .replace(/(^|[^:])\/\/.*$/gm, "$1")
    .replace(/`(?:\\[\s\S]|[^`\\])*`/g, "``")
    .replace(/"(?:\\.|[^"\\])*"/g, '""')
    .replace(/'(?:\\.|[^'\\])*'/g, "''");
}

test("the library is compiled with ES2022 only and no @types", () => {
  const config = readFileSync(join(ROOT, "tsconfig.json"), "utf8").replace(/^\s*\/\/.*$/gm, "");
  const options = (JSON.parse(config) as { compilerOptions: { lib: string[]; types: string[]; strict: boolean } }).compilerOptions;
  assert.deepEqual(options.lib, ["ES2022"]);
  assert.deepEqual(options.types, []);
  assert.equal(options.strict, true);
});

test("the library imports only itself and @azure/web-pubsub-client", () => {
  const files = libraryFiles();
  assert.ok(files.length >= 10, "dist/esm is built");
  for (const [name, source] of files) {
    for (const match of source.matchAll(/(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)) {
      const specifier = match[1] ?? match[2] ?? "";
      assert.ok(specifier.startsWith("./") || ALLOWED_IMPORTS.has(specifier), `${name} imports ${specifier}`);
    }
  }
});

test("the library touches no Node.js or DOM global", () => {
  for (const [name, source] of libraryFiles()) {
    const stripped = code(source);
    for (const global of FORBIDDEN_GLOBALS) {
      const use = new RegExp(`(?<![.\\w$])${global}(?![\\w$])(?!\\s*:)`);
      assert.ok(!use.test(stripped), `${name} uses ${global}`);
    }
    for (const match of stripped.matchAll(/globalThis\s*\)?\s*\.\s*(\w+)/g)) {
      assert.ok(["fetch", "AbortController"].includes(match[1] ?? ""), `${name} reads globalThis.${match[1]}`);
    }
  }
});

test("the package depends on @azure/web-pubsub-client alone, pinned", () => {
  const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
    type: string;
    exports: Record<string, unknown>;
  };
  assert.deepEqual(Object.keys(manifest.dependencies), ["@azure/web-pubsub-client"]);
  assert.match(manifest.dependencies["@azure/web-pubsub-client"] ?? "", /^\d+\.\d+\.\d+$/);
  assert.equal(manifest.type, "module");
  assert.ok(manifest.exports["."], "an exports map with the ESM entry and its types");
});
