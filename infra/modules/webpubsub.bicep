// Azure Web PubSub, Entra ID only (access keys disabled): the app signs client tokens through the
// service's :generateToken API with its managed identity (Web PubSub Service Owner, see rbac.bicep).
// The hub is a separate module (webpubsub-hub.bicep) because its event handler needs the function
// app's webpubsub_extension system key, which exists only after the first code deployment.

@description('Name of the Web PubSub service.')
param name string

@description('Azure region.')
param location string

@description('Tags for the resource.')
param tags object

@description('Pricing tier. Free_F1 has no SLA and 20 concurrent connections; use Standard_S1 or Premium_P1 in production.')
@allowed([
  'Free_F1'
  'Standard_S1'
  'Premium_P1'
])
param skuName string

@description('Units (1 for Free_F1).')
@minValue(1)
param capacity int

resource webPubSub 'Microsoft.SignalRService/webPubSub@2024-03-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    capacity: capacity
  }
  properties: {
    disableLocalAuth: true
    disableAadAuth: false
    publicNetworkAccess: 'Enabled'
    tls: {
      clientCertEnabled: false
    }
  }
}

output name string = webPubSub.name
output id string = webPubSub.id
output endpoint string = 'https://${webPubSub.properties.hostName}'
