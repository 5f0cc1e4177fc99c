// Notification Hubs namespace, hub and the app's access policy (Listen + Send: installations and sends).
// Push credentials are optional; without them the hub accepts installations but cannot deliver.
// fcmV1Credential needs the 2023-10-01-preview API version on the hub.
// Sources: https://learn.microsoft.com/azure/templates/microsoft.notificationhubs/namespaces/notificationhubs,
// https://learn.microsoft.com/javascript/api/@azure/arm-notificationhubs/apnscredential (APNs token fields and endpoints).

@description('Name of the Notification Hubs namespace.')
param namespaceName string

@description('Name of the notification hub.')
param hubName string

@description('Azure region.')
param location string

@description('Tags for the resources.')
param tags object

@description('Namespace tier (Free: 1 M pushes and 500 devices; Standard for per-message telemetry and scheduled sends).')
@allowed([
  'Free'
  'Basic'
  'Standard'
])
param skuName string

@description('Name of the authorization rule the app uses.')
param appRuleName string = 'notify-app'

@description('FCM v1: Google service account project id. Empty: no FCM credential.')
param fcmV1ProjectId string = ''

@description('FCM v1: Google service account client email.')
param fcmV1ClientEmail string = ''

@description('FCM v1: Google service account private key (PEM).')
@secure()
param fcmV1PrivateKey string = ''

@description('APNs token auth: key id (kid). Empty: no APNs credential.')
param apnsKeyId string = ''

@description('APNs token auth: team id (iss).')
param apnsTeamId string = ''

@description('APNs token auth: bundle id of the app.')
param apnsBundleId string = ''

@description('APNs token auth: the .p8 key content.')
@secure()
param apnsToken string = ''

@description('APNs endpoint for token auth: production or sandbox.')
@allowed([
  'https://api.push.apple.com:443/3/device'
  'https://api.development.push.apple.com:443/3/device'
])
param apnsEndpoint string = 'https://api.push.apple.com:443/3/device'

var fcmV1Credential = empty(fcmV1ProjectId) ? {} : {
  fcmV1Credential: {
    properties: {
      projectId: fcmV1ProjectId
      clientEmail: fcmV1ClientEmail
      privateKey: fcmV1PrivateKey
    }
  }
}

var apnsCredential = empty(apnsKeyId) ? {} : {
  apnsCredential: {
    properties: {
      keyId: apnsKeyId
      appId: apnsTeamId
      appName: apnsBundleId
      token: apnsToken
      endpoint: apnsEndpoint
    }
  }
}

resource namespace 'Microsoft.NotificationHubs/namespaces@2023-09-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: skuName
  }
  properties: {
    namespaceType: 'NotificationHub'
  }
}

resource hub 'Microsoft.NotificationHubs/namespaces/notificationHubs@2023-10-01-preview' = {
  parent: namespace
  name: hubName
  location: location
  tags: tags
  properties: union(fcmV1Credential, apnsCredential)
}

resource appRule 'Microsoft.NotificationHubs/namespaces/notificationHubs/authorizationRules@2023-10-01-preview' = {
  parent: hub
  name: appRuleName
  properties: {
    rights: [
      'Listen'
      'Send'
    ]
  }
}

output namespaceName string = namespace.name
output hubName string = hub.name
output appRuleName string = appRule.name
