// Every role assignment, and the one table of built-in role definition ids they use.
// Ids from Microsoft's list of built-in roles:
// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
// (tests/unit/infra/test_infra_consistency.py checks each id against that page's table).

@description('Principal id of the app\'s user-assigned identity.')
param appPrincipalId string

@description('Storage account the app uses (host storage, deployment container, queues, tables).')
param storageAccountName string

@description('Web PubSub service the app sends through and signs client tokens with.')
param webPubSubName string

@description('Key vault holding the Notification Hubs connection string.')
param keyVaultName string

@description('Application Insights component the app publishes telemetry to (local auth disabled).')
param applicationInsightsName string

@description('Optional: object id of the deploying user or service principal, allowed to enqueue test notifications.')
param deployerPrincipalId string = ''

@description('Type of deployerPrincipalId.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param deployerPrincipalType string = 'User'

var roles = {
  storageBlobDataOwner: {
    name: 'Storage Blob Data Owner'
    id: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  }
  storageQueueDataContributor: {
    name: 'Storage Queue Data Contributor'
    id: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  }
  storageQueueDataMessageSender: {
    name: 'Storage Queue Data Message Sender'
    id: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
  }
  storageTableDataContributor: {
    name: 'Storage Table Data Contributor'
    id: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  }
  webPubSubServiceOwner: {
    name: 'Web PubSub Service Owner'
    id: '12cf5a90-567b-43ae-8102-96cf46c7d9b4'
  }
  keyVaultSecretsUser: {
    name: 'Key Vault Secrets User'
    id: '4633458b-17de-408a-b874-0445c86b69e6'
  }
  monitoringMetricsPublisher: {
    name: 'Monitoring Metrics Publisher'
    id: '3913510d-42f4-4e42-8a64-420c390055eb'
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: storageAccountName
}

resource webPubSub 'Microsoft.SignalRService/webPubSub@2024-03-01' existing = {
  name: webPubSubName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Host storage (keys, leases) and the Flex Consumption deployment container.
resource appBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageBlobDataOwner.id)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner.id)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Queue triggers, deadline messages and moving messages to <queue>-poison.
resource appQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageQueueDataContributor.id)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor.id)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Presence, deliveries and devices tables.
resource appTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageTableDataContributor.id)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor.id)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// send_to_user, connection_exists and :generateToken for negotiate.
resource appWebPubSub 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(webPubSub.id, appPrincipalId, roles.webPubSubServiceOwner.id)
  scope: webPubSub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.webPubSubServiceOwner.id)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The Key Vault reference of NOTIFICATION_HUBS_CONNECTION_STRING.
resource appSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roles.keyVaultSecretsUser.id)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser.id)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry with Entra ID (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, roles.monitoringMetricsPublisher.id)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher.id)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Lets the deployer enqueue a test notification (README "Verify the deployment"); nothing else.
resource deployerQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(storage.id, deployerPrincipalId, roles.storageQueueDataMessageSender.id)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender.id)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}
