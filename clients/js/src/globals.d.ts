// The only platform globals the SDK core uses. The library compiles with lib ES2022 and no @types at all
// (tsconfig.json), so anything from the DOM or Node.js beyond these fails to compile; browsers, React
// Native and Node.js 18+ all provide them. WebSocket is used by @azure/web-pubsub-client, not here.

declare function setTimeout(callback: () => void, ms?: number): unknown;
declare function clearTimeout(handle: unknown): void;
declare function setInterval(callback: () => void, ms?: number): unknown;
declare function clearInterval(handle: unknown): void;
