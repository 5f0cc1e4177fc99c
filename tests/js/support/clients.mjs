// Connected @azure/web-pubsub-client instances (default options unless a test passes some) that record
// everything they receive, for assertions.
import { WebPubSubClient } from "@azure/web-pubsub-client";
import { waitFor } from "./emulators.mjs";

/**
 * Get a client URL from `service.getClientAccessToken(tokenOptions)` and start a client on it.
 * Returns { client, connectionId, userId, server, group, disconnects, connections, nextServer, nextGroup }.
 */
export async function connectClient(service, tokenOptions = {}, clientOptions = undefined) {
  const { url } = await service.getClientAccessToken(tokenOptions);
  const client = new WebPubSubClient(url, clientOptions);
  const seen = { server: [], group: [], disconnects: [], connections: [] };
  client.on("server-message", (e) => seen.server.push(e.message));
  client.on("group-message", (e) => seen.group.push(e.message));
  client.on("disconnected", (e) => seen.disconnects.push(e));
  client.on("connected", (e) => seen.connections.push(e));
  await client.start();
  const { connectionId, userId } = await waitFor(() => seen.connections[0], "the connected event");
  const next = (list, what) => {
    let taken = 0;
    return async (timeoutMs = 10_000) => {
      const message = await waitFor(() => list[taken], `a ${what} message`, timeoutMs);
      taken += 1;
      return message;
    };
  };
  return {
    client,
    connectionId,
    userId,
    ...seen,
    nextServer: next(seen.server, "server"),
    nextGroup: next(seen.group, "group"),
  };
}

/** `ArrayBuffer` -> array of byte values (binary messages arrive as ArrayBuffer). */
export const bytes = (buffer) => [...new Uint8Array(buffer)];

/** Resolve after `ms`. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
