// The Web PubSub hub and its event handler, which points at the Functions Web PubSub extension:
//   https://<defaultHostName>/runtime/webhooks/webpubsub?code=<webpubsub_extension system key>
// The system key only exists once the code is published and the host has started, so the handler is
// set only when eventHandlerEnabled is true (second step; see infra/README.md, "Web PubSub event handler").
// This module is deployed by main.bicep and, on its own, by infra/scripts/enable-webpubsub-handler.sh.
// Sources: https://learn.microsoft.com/azure/templates/microsoft.signalrservice/webpubsub/hubs (2024-03-01),
// https://learn.microsoft.com/rest/api/appservice/web-apps/list-host-keys (systemKeys),
// https://learn.microsoft.com/azure/azure-resource-manager/templates/template-functions-logical#if
// (only the branch selected by the condition is evaluated, so listKeys runs only when enabled).

@description('Name of the existing Web PubSub service.')
param webPubSubName string

@description('Hub name; the app setting WebPubSubHub names the same hub.')
param hubName string

@description('Name of the existing function app whose Web PubSub triggers handle the hub events.')
param functionAppName string

@description('Point the hub at the function app. Leave false until the code has been published once.')
param eventHandlerEnabled bool = false

// The events the app has triggers for (notify/blueprints/presence.py). There is no `connect` trigger, and
// listing `connect` without a handler would reject every client, so it is not listed.
var systemEvents = [
  'connected'
  'disconnected'
]
var userEventPattern = 'ack'
var webhookPath = '/runtime/webhooks/webpubsub'
var hostKeysApiVersion = '2024-04-01'

resource webPubSub 'Microsoft.SignalRService/webPubSub@2024-03-01' existing = {
  name: webPubSubName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource hub 'Microsoft.SignalRService/webPubSub/hubs@2024-03-01' = {
  parent: webPubSub
  name: hubName
  properties: {
    anonymousConnectPolicy: 'Deny'
    webSocketKeepAliveIntervalInSeconds: 20
    eventListeners: []
    eventHandlers: eventHandlerEnabled ? [
      {
        urlTemplate: 'https://${functionApp.properties.defaultHostName}${webhookPath}?code=${listKeys('${functionApp.id}/host/default', hostKeysApiVersion).systemKeys.webpubsub_extension}'
        userEventPattern: userEventPattern
        systemEvents: systemEvents
        auth: {
          type: 'None'
        }
      }
    ] : []
  }
}

output name string = hub.name
output eventHandlerEnabled bool = eventHandlerEnabled
