// An upstream event handler written the way a Node team would: express + @azure/web-pubsub-express,
// default options. It records every event it is given so tests can assert on them.
import { WebPubSubEventHandler } from "@azure/web-pubsub-express";
import express from "express";
import { listen, waitFor } from "./emulators.mjs";

const HANDLER_PATH = "/eventhandler";

/**
 * Start an express app serving `WebPubSubEventHandler(hub, options)`. `handlers` may override
 * handleConnect / handleUserEvent; every call is recorded in `events` as `{ kind, request, at }`.
 * Returns { urlTemplate, events, waitForEvent, close }.
 */
export async function startExpressHandler(hub, handlers = {}, handlerOptions = {}) {
  const events = [];
  const record = (kind, request) => events.push({ kind, request, at: Date.now() });
  const handler = new WebPubSubEventHandler(hub, {
    path: HANDLER_PATH,
    ...handlerOptions,
    handleConnect: (request, response) => {
      record("connect", request);
      if (handlers.handleConnect) handlers.handleConnect(request, response);
      else response.success();
    },
    onConnected: (request) => record("connected", request),
    onDisconnected: (request) => record("disconnected", request),
    handleUserEvent: (request, response) => {
      record("user", request);
      if (handlers.handleUserEvent) handlers.handleUserEvent(request, response);
      else response.success();
    },
  });
  const app = express();
  let preflights = 0;
  app.use((req, _res, next) => {
    if (req.method === "OPTIONS") preflights += 1;
    next();
  });
  app.use(handler.getMiddleware());
  // Anything the handler library did not recognise as a Web PubSub request ends here.
  app.use((req, res) => {
    record("unrecognised", { method: req.method, path: req.path, headers: req.headers });
    res.status(404).end();
  });
  const server = await listen(app);
  return {
    urlTemplate: `${server.url}${HANDLER_PATH}`,
    events,
    preflights: () => preflights,
    /** Resolve with the first recorded event of `kind` matching `predicate(request)`. */
    waitForEvent: (kind, predicate = () => true, timeoutMs = 10_000) =>
      waitFor(
        () => events.find((e) => e.kind === kind && predicate(e.request)),
        `a ${kind} event at the express handler (saw ${events.map((e) => e.kind).join(", ") || "none"})`,
        timeoutMs,
      ),
    close: server.close,
  };
}

/** Hub settings that send every system event and every user event to `urlTemplate`. */
export function allEventsTo(urlTemplate) {
  return {
    eventHandlers: [
      { urlTemplate, userEventPattern: "*", systemEvents: ["connect", "connected", "disconnected"] },
    ],
  };
}
