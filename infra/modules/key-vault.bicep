// Key Vault (RBAC mode) holding the Notification Hubs connection string. The secret is written from the
// authorization rule's listKeys() here, so the connection string never passes through a parameter or an
// output; the app reads it through a Key Vault reference app setting with its managed identity
// (Key Vault Secrets User, see rbac.bicep). Public network access stays on: Flex Consumption cannot
// resolve Key Vault references against a network-restricted vault.
// Sources: https://learn.microsoft.com/azure/app-service/app-service-key-vault-references,
// https://learn.microsoft.com/azure/templates/microsoft.keyvault/vaults/secrets.

@description('Name of the key vault (3-24 characters).')
param name string

@description('Azure region.')
param location string

@description('Tags for the resources.')
param tags object

@description('Notification Hubs namespace whose hub rule connection string is stored.')
param notificationHubsNamespaceName string

@description('Notification hub name.')
param notificationHubName string

@description('Authorization rule of the hub that the app uses (Listen + Send).')
param notificationHubsRuleName string

@description('Name of the secret holding the Notification Hubs connection string.')
param notificationHubsSecretName string = 'notification-hubs-connection-string'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource namespace 'Microsoft.NotificationHubs/namespaces@2023-09-01' existing = {
  name: notificationHubsNamespaceName
}

resource hub 'Microsoft.NotificationHubs/namespaces/notificationHubs@2023-10-01-preview' existing = {
  parent: namespace
  name: notificationHubName
}

resource appRule 'Microsoft.NotificationHubs/namespaces/notificationHubs/authorizationRules@2023-10-01-preview' existing = {
  parent: hub
  name: notificationHubsRuleName
}

resource notificationHubsSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: notificationHubsSecretName
  properties: {
    contentType: 'Notification Hubs connection string (Listen, Send)'
    value: appRule.listKeys().primaryConnectionString
  }
}

output name string = vault.name
output id string = vault.id
// Versionless URI: the app follows rotations of the secret.
output notificationHubsSecretUri string = notificationHubsSecret.properties.secretUri
