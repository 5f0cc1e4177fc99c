#!/bin/sh
# Point the Web PubSub hub's event handler at the function app (second deployment step).
#
# The handler URL carries the function app's `webpubsub_extension` system key, which the Functions host
# creates only when it starts with the published code. This script waits for that key (without printing
# it), then deploys infra/modules/webpubsub-hub.bicep with eventHandlerEnabled=true, which reads the key
# with listKeys() inside the deployment. Idempotent: run it after every code deployment.
#
# Used as the azd postdeploy hook (azd exports the Bicep outputs as environment variables), or by hand:
#   AZURE_RESOURCE_GROUP=rg FUNCTION_APP_NAME=func-x WEBPUBSUB_NAME=wps-x WEBPUBSUB_HUB=notify \
#     infra/scripts/enable-webpubsub-handler.sh
set -eu

: "${AZURE_RESOURCE_GROUP:?set AZURE_RESOURCE_GROUP}"
: "${FUNCTION_APP_NAME:?set FUNCTION_APP_NAME}"
: "${WEBPUBSUB_NAME:?set WEBPUBSUB_NAME}"
: "${WEBPUBSUB_HUB:?set WEBPUBSUB_HUB}"
attempts="${KEY_WAIT_ATTEMPTS:-30}"

here=$(cd "$(dirname "$0")" && pwd)
host=$(az functionapp show -g "$AZURE_RESOURCE_GROUP" -n "$FUNCTION_APP_NAME" --query defaultHostName -o tsv)

i=0
while :; do
  # Any request wakes a scaled-to-zero Flex app; the host creates the key when the extension loads.
  curl -s -o /dev/null --max-time 30 "https://$host/" || true
  # Only the key's length is queried: the key itself never reaches the terminal or a log.
  length=$(az functionapp keys list -g "$AZURE_RESOURCE_GROUP" -n "$FUNCTION_APP_NAME" \
    --query "length(systemKeys.webpubsub_extension || '')" -o tsv 2>/dev/null || echo 0)
  [ "${length:-0}" -gt 0 ] && break
  i=$((i + 1))
  if [ "$i" -ge "$attempts" ]; then
    echo "the webpubsub_extension system key of $FUNCTION_APP_NAME did not appear; is the code published?" >&2
    exit 1
  fi
  echo "waiting for the webpubsub_extension system key of $FUNCTION_APP_NAME ($i/$attempts)"
  sleep 10
done

az deployment group create -g "$AZURE_RESOURCE_GROUP" --name webpubsub-event-handler \
  --template-file "$here/../modules/webpubsub-hub.bicep" \
  --parameters webPubSubName="$WEBPUBSUB_NAME" hubName="$WEBPUBSUB_HUB" \
    functionAppName="$FUNCTION_APP_NAME" eventHandlerEnabled=true \
  --output none
echo "web pubsub hub $WEBPUBSUB_HUB now sends connected, disconnected and ack events to https://$host/runtime/webhooks/webpubsub"

# Keep the handler on later `azd provision` runs (main.bicep reads WEBPUBSUB_EVENT_HANDLER_ENABLED).
if [ -n "${AZURE_ENV_NAME:-}" ] && command -v azd >/dev/null 2>&1; then
  azd env set WEBPUBSUB_EVENT_HANDLER_ENABLED true
fi
