import { WebPubSubClient } from "@azure/web-pubsub-client";

import { ACK_EVENT } from "./protocol.js";

/** What the client needs from the in-app connection (Web PubSub; tests pass their own). */
export interface RealtimeTransport {
  /** Open a connection (resolves when open, rejects when the attempt failed). */
  start(): Promise<void>;
  /** Close the connection; `stopped` follows. */
  stop(): void;
  /** Send the `ack` user event. */
  sendAck(notificationId: string): Promise<void>;
  /** Subscribe to the transport's events. */
  onConnected(listener: (connectionId: string) => void): void;
  onDisconnected(listener: (reason: string | undefined) => void): void;
  onStopped(listener: () => void): void;
  onMessage(listener: (data: unknown) => void): void;
}

/** Makes the transport for a client; `getUrl` gives the client access URL for each new connection. */
export type TransportFactory = (getUrl: () => Promise<string>) => RealtimeTransport;

/**
 * The default transport: `@azure/web-pubsub-client` with the reliable JSON subprotocol, whose recovery
 * keeps a connection (and every message sent to it) across a short network drop. Its own reconnect is off:
 * the NotifyClient reconnects with its backoff and a fresh URL.
 */
export const webPubSubTransport: TransportFactory = (getUrl) => {
  const client = new WebPubSubClient(
    { getClientAccessUrl: () => getUrl() },
    { autoReconnect: false, autoRejoinGroups: false },
  );
  return {
    start: () => client.start(),
    stop: () => client.stop(),
    sendAck: async (notificationId) => {
      // Fire and forget at this level: the service's ackResult answer is what the client waits for.
      await client.sendEvent(ACK_EVENT, { notificationId }, "json", { fireAndForget: true });
    },
    onConnected: (listener) => client.on("connected", (e) => listener(e.connectionId)),
    onDisconnected: (listener) => client.on("disconnected", (e) => listener(e.message?.message)),
    onStopped: (listener) => client.on("stopped", () => listener()),
    onMessage: (listener) =>
      client.on("server-message", (e) => {
        if (e.message.dataType === "json" || e.message.dataType === "text") listener(e.message.data);
      }),
  };
};
