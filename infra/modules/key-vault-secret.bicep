// One secret in the app's Key Vault, written from a secure parameter (never an output). The app reads it
// through a Key Vault reference app setting with its identity (Key Vault Secrets User, see rbac.bicep).
// Source: https://learn.microsoft.com/azure/templates/microsoft.keyvault/vaults/secrets.

@description('Name of the existing key vault.')
param keyVaultName string

@description('Name of the secret.')
param secretName string

@description('Value of the secret.')
@secure()
param secretValue string

@description('What the secret is (shown in the portal).')
param contentType string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretName
  properties: {
    contentType: contentType
    value: secretValue
  }
}

// Versionless URI: the app follows rotations of the secret.
output secretUri string = secret.properties.secretUri
