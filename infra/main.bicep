// azure-notify: everything the function app needs, with managed identity and secure defaults.
// Deploy with `azd up`, or `az deployment group create` then `func azure functionapp publish <app>`;
// see infra/README.md. Every app setting the code reads is set in `appSettings` below and checked against
// shared/settings.py and the function bindings by tests/unit/infra/test_infra_consistency.py.

targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Environment name (azd: AZURE_ENV_NAME); makes resource names unique and tags the resources.')
param environmentName string

@description('Azure region of every resource (one that offers Flex Consumption).')
param location string = resourceGroup().location

@description('Optional: object id of the deploying user or service principal (azd: AZURE_PRINCIPAL_ID); granted Storage Queue Data Message Sender to send a test notification.')
param principalId string = ''

@description('Type of principalId.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

// ---- function app ----------------------------------------------------------------------------------

@description('Python version of the function app (the app needs 3.13: it pins azure-functions-runtime, see requirements.txt).')
@allowed([
  '3.13'
])
param pythonVersion string = '3.13'

@description('Flex Consumption: maximum number of instances (40-1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Flex Consumption: memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Allow basic-auth publishing to the scm site (only for tools that cannot deploy with Entra ID).')
param scmBasicAuthEnabled bool = false

// ---- Web PubSub ------------------------------------------------------------------------------------

@description('Web PubSub tier: Free_F1 (no SLA, 20 connections), Standard_S1 or Premium_P1.')
@allowed([
  'Free_F1'
  'Standard_S1'
  'Premium_P1'
])
param webPubSubSku string = 'Free_F1'

@description('Web PubSub units (1 for Free_F1).')
@minValue(1)
param webPubSubCapacity int = 1

@description('Web PubSub hub name (app setting WebPubSubHub).')
param webPubSubHubName string = 'notify'

@description('Point the hub event handler at the function app. False on the first deployment, true once the code is published (the webpubsub_extension system key exists only then); see infra/README.md.')
param webPubSubEventHandlerEnabled bool = false

// ---- Notification Hubs -----------------------------------------------------------------------------

@description('Notification Hubs namespace tier.')
@allowed([
  'Free'
  'Basic'
  'Standard'
])
param notificationHubsSku string = 'Free'

@description('Notification hub name (app setting NOTIFICATION_HUB_NAME).')
param notificationHubName string = 'notify'

@description('FCM v1: project id of the Google service account. Empty: no FCM credential.')
param fcmV1ProjectId string = ''

@description('FCM v1: client email of the Google service account.')
param fcmV1ClientEmail string = ''

@description('FCM v1: private key (PEM) of the Google service account.')
@secure()
param fcmV1PrivateKey string = ''

@description('APNs (token auth): key id. Empty: no APNs credential.')
param apnsKeyId string = ''

@description('APNs (token auth): team id.')
param apnsTeamId string = ''

@description('APNs (token auth): bundle id of the iOS app.')
param apnsBundleId string = ''

@description('APNs (token auth): content of the .p8 signing key.')
@secure()
param apnsToken string = ''

@description('APNs endpoint: production or sandbox (development builds).')
@allowed([
  'https://api.push.apple.com:443/3/device'
  'https://api.development.push.apple.com:443/3/device'
])
param apnsEndpoint string = 'https://api.push.apple.com:443/3/device'

// ---- queues and tables (defaults = the app's defaults in shared/settings.py) ---------------------

@description('Queue the backends enqueue notifications to.')
param notificationsQueueName string = 'notifications'

@description('Queue of ack-deadline messages.')
param deadlinesQueueName string = 'notification-deadlines'

@description('Queue of delivery events waiting to be POSTed to the webhook (exists even with webhooks off).')
param webhookQueueName string = 'notification-webhooks'

@description('Table of delivery records.')
param deliveriesTableName string = 'deliveries'

@description('Table of device installation ownership and, per user, the device index, live connections and notification preferences.')
param devicesTableName string = 'devices'

// ---- behaviour (defaults = the app's defaults) -----------------------------------------------------

@description('Seconds an online user has to ack before the push fallback; 0 trusts presence.')
@minValue(0)
@maxValue(600)
param ackTimeoutSeconds int = 10

@description('Lifetime in minutes of the Web PubSub client token from negotiate.')
@minValue(1)
@maxValue(1440)
param clientTokenMinutes int = 60

@description('NCRONTAB schedule of the presence sweep.')
param presenceSweepSchedule string = '0 */5 * * * *'

@description('Age in seconds after which a presence row is checked with the service.')
@minValue(30)
@maxValue(86400)
param presenceStaleSeconds int = 300

@description('Days an inbox item (and its delivery record) is kept before the sweep removes it.')
@minValue(7)
@maxValue(3650)
param inboxRetentionDays int = 90

@description('NCRONTAB schedule of the inbox retention sweep.')
param inboxSweepSchedule string = '0 30 3 * * *'

@description('Put the unread count on every push as the badge (one more table query per push).')
param inboxPushBadge bool = false

@description('OIDC issuer of the bearer tokens callers send. Without any auth configured, every request is refused.')
param authOidcIssuer string = ''

@description('Expected audience of the bearer tokens.')
param authOidcAudience string = ''

@description('JWKS URL (default: discovered from the issuer).')
param authOidcJwksUrl string = ''

@description('Management API (backends): issuer of the backend tokens. Empty: the user issuer (authOidcIssuer).')
param authManageIssuer string = ''

@description('Management API: the audience backend tokens are issued for (e.g. api://notify-manage); must differ from authOidcAudience. Empty: the management API refuses every request.')
param authManageAudience string = ''

@description('Management API: JWKS URL (default: discovered from the issuer).')
param authManageJwksUrl string = ''

@description('Management API: the app role a backend token must carry in its roles claim.')
param authManageRole string = 'Notify.Manage'

// ---- webhooks and telemetry ------------------------------------------------------------------------

@description('Delivery webhooks: the https URL every delivery event is POSTed to. Empty: webhooks off.')
param webhookUrl string = ''

@description('Delivery webhooks: the signing secret (whsec_<base64>, python -m notify webhook-secret); stored in Key Vault. Required with webhookUrl.')
@secure()
param webhookSecret string = ''

@description('Delivery webhooks: seconds an event is retried before it goes to the poison queue.')
@minValue(60)
@maxValue(604800)
param webhookRetrySeconds int = 86400

@description('Delivery webhooks: seconds before the first retry (doubling, at most an hour).')
@minValue(1)
@maxValue(3600)
param webhookBackoffSeconds int = 10

@description('Where the app sends OpenTelemetry traces and metrics: auto (Application Insights here).')
@allowed([
  'auto'
  'azure_monitor'
  'otlp'
  'console'
  'none'
])
param telemetryExporter string = 'auto'

@description('Claim holding the user id.')
param authUserClaim string = 'sub'

@description('Trust App Service Authentication (Easy Auth) headers. Only if Easy Auth is configured on the app.')
param authAppServiceEnabled bool = false

@description('Web origins allowed to call the HTTP API from a browser (CORS), comma-separated without spaces, e.g. https://app.example.com. Empty (the default): no cross-origin calls.')
param corsAllowedOrigins string = ''

@description('Attempts of a retried call (429, 5xx, timeouts).')
@minValue(1)
@maxValue(10)
param retryMaxAttempts int = 4

@description('Time budget in seconds of a retried call.')
@minValue(1)
@maxValue(600)
param retryBudgetSeconds int = 20

@description('Defaults per notification type as JSON, e.g. {"marketing":{"push":false,"priority":"normal","quietHours":"drop"},"security":{"critical":true}}; "*" applies to every other type. Users override inApp/push/quietHours in their preferences.')
param notificationTypes string = '{}'

@description('First delay in seconds of a notification re-scheduled after a transient failure; doubles with each failure.')
@minValue(1)
@maxValue(3600)
param retryDelaySeconds int = 10

@description('Longest delay in seconds between re-scheduled attempts.')
@minValue(1)
@maxValue(604800)
param retryMaxDelaySeconds int = 300

@description('How long in seconds a failing notification is re-scheduled before it goes to the poison queue (at least 30 minutes is advised).')
@minValue(1)
@maxValue(604800)
param retryHorizonSeconds int = 3600

@description('Seconds a handler holds its claim on a send; after it a crashed handler\'s send is taken over. Must exceed retryBudgetSeconds.')
@minValue(2)
@maxValue(3600)
param claimLeaseSeconds int = 60

@description('NCRONTAB schedule of the recovery pass over deliveries a crash left stuck.')
param recoverySchedule string = '*/30 * * * * *'

// ---- names -------------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  application: 'azure-notify'
}
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package'
var queueNames = [
  notificationsQueueName
  '${notificationsQueueName}-poison'
  deadlinesQueueName
  '${deadlinesQueueName}-poison'
  webhookQueueName
  '${webhookQueueName}-poison'
]
var tableNames = [
  deliveriesTableName
  devicesTableName
]

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    queueNames: queueNames
    tableNames: tableNames
  }
}

module webPubSub 'modules/webpubsub.bicep' = {
  name: 'webpubsub'
  params: {
    name: 'wps-${resourceToken}'
    location: location
    tags: tags
    skuName: webPubSubSku
    capacity: webPubSubCapacity
  }
}

module notificationHubs 'modules/notification-hubs.bicep' = {
  name: 'notification-hubs'
  params: {
    namespaceName: 'ntfns-${resourceToken}'
    hubName: notificationHubName
    location: location
    tags: tags
    skuName: notificationHubsSku
    fcmV1ProjectId: fcmV1ProjectId
    fcmV1ClientEmail: fcmV1ClientEmail
    fcmV1PrivateKey: fcmV1PrivateKey
    apnsKeyId: apnsKeyId
    apnsTeamId: apnsTeamId
    apnsBundleId: apnsBundleId
    apnsToken: apnsToken
    apnsEndpoint: apnsEndpoint
  }
}

module keyVault 'modules/key-vault.bicep' = {
  name: 'key-vault'
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    notificationHubsNamespaceName: notificationHubs.outputs.namespaceName
    notificationHubName: notificationHubs.outputs.hubName
    notificationHubsRuleName: notificationHubs.outputs.appRuleName
  }
}

// The webhook signing secret lives in Key Vault like the Notification Hubs connection string.
var webhookSecretEnabled = !empty(webhookSecret)

module webhookSecretStore 'modules/key-vault-secret.bicep' = if (webhookSecretEnabled) {
  name: 'webhook-secret'
  params: {
    keyVaultName: keyVault.outputs.name
    secretName: 'webhook-secret'
    secretValue: webhookSecret
    contentType: 'Delivery webhook signing secret (Standard Webhooks, whsec_)'
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    appPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    webPubSubName: webPubSub.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

// Every app setting of the function app. Names are the ones shared/settings.py and the function bindings
// read; identity-based connections use the `<connection>__*` forms (no keys anywhere).
var appSettings = {
  // Functions host storage and the app's queues/tables, through the identity.
  AzureWebJobsStorage__accountName: storage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  // Web PubSub through the identity (the extension and the app's service client).
  WebPubSubConnectionString__serviceUri: webPubSub.outputs.endpoint
  WebPubSubConnectionString__credential: 'managedidentity'
  WebPubSubConnectionString__clientId: identity.outputs.clientId
  WebPubSubHub: webPubSubHubName
  // Notification Hubs: SAS only, so the connection string is read from Key Vault.
  NOTIFICATION_HUBS_CONNECTION_STRING: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.notificationHubsSecretUri})'
  NOTIFICATION_HUB_NAME: notificationHubName
  NOTIFICATIONS_QUEUE: notificationsQueueName
  DEADLINES_QUEUE: deadlinesQueueName
  DELIVERIES_TABLE: deliveriesTableName
  DEVICES_TABLE: devicesTableName
  ACK_TIMEOUT_SECONDS: string(ackTimeoutSeconds)
  CLIENT_TOKEN_MINUTES: string(clientTokenMinutes)
  PRESENCE_SWEEP_SCHEDULE: presenceSweepSchedule
  PRESENCE_STALE_SECONDS: string(presenceStaleSeconds)
  INBOX_RETENTION_DAYS: string(inboxRetentionDays)
  INBOX_SWEEP_SCHEDULE: inboxSweepSchedule
  INBOX_PUSH_BADGE: string(inboxPushBadge)
  AUTH_OIDC_ISSUER: authOidcIssuer
  AUTH_OIDC_AUDIENCE: authOidcAudience
  AUTH_OIDC_JWKS_URL: authOidcJwksUrl
  AUTH_MANAGE_ISSUER: authManageIssuer
  AUTH_MANAGE_AUDIENCE: authManageAudience
  AUTH_MANAGE_JWKS_URL: authManageJwksUrl
  AUTH_MANAGE_ROLE: authManageRole
  AUTH_USER_CLAIM: authUserClaim
  AUTH_APP_SERVICE_ENABLED: string(authAppServiceEnabled)
  RETRY_MAX_ATTEMPTS: string(retryMaxAttempts)
  RETRY_BUDGET_SECONDS: string(retryBudgetSeconds)
  NOTIFICATION_TYPES: notificationTypes
  RETRY_DELAY_SECONDS: string(retryDelaySeconds)
  RETRY_MAX_DELAY_SECONDS: string(retryMaxDelaySeconds)
  RETRY_HORIZON_SECONDS: string(retryHorizonSeconds)
  CLAIM_LEASE_SECONDS: string(claimLeaseSeconds)
  RECOVERY_SCHEDULE: recoverySchedule
  // Read by the Python runtime, not by the app: how many synchronous invocations run at once. The functions
  // wait on HTTP (tables, Web PubSub, Notification Hubs); the runtime's default, min(32, cores + 4), would run
  // only a few of the 24 messages a queue trigger takes at a time (host.json batchSize + newBatchThreshold).
  PYTHON_THREADPOOL_THREAD_COUNT: '32'
  WEBHOOK_URL: webhookUrl
  WEBHOOK_SECRET: webhookSecretEnabled ? '@Microsoft.KeyVault(SecretUri=${webhookSecretStore.outputs.secretUri})' : ''
  WEBHOOK_QUEUE: webhookQueueName
  WEBHOOK_RETRY_SECONDS: string(webhookRetrySeconds)
  WEBHOOK_BACKOFF_SECONDS: string(webhookBackoffSeconds)
  // Read by the app (shared/observability.py) and by the Functions host: telemetry with Entra ID.
  TELEMETRY_EXPORTER: telemetryExporter
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    appSettings: appSettings
    scmBasicAuthEnabled: scmBasicAuthEnabled
    corsAllowedOrigins: empty(corsAllowedOrigins) ? [] : split(corsAllowedOrigins, ',')
  }
  // The identity's roles first, so the host's first start can reach storage and Key Vault.
  dependsOn: [
    rbac
  ]
}

module webPubSubHub 'modules/webpubsub-hub.bicep' = {
  name: 'webpubsub-hub'
  params: {
    webPubSubName: webPubSub.outputs.name
    hubName: webPubSubHubName
    functionAppName: functionApp.outputs.name
    eventHandlerEnabled: webPubSubEventHandlerEnabled
  }
}

// Outputs for azd (UPPER_SNAKE, stored in .azure/<env>/.env) and for the scripts. No keys, no connection strings.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = subscription().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output NOTIFICATIONS_QUEUE string = notificationsQueueName
output WEBPUBSUB_NAME string = webPubSub.outputs.name
output WEBPUBSUB_ENDPOINT string = webPubSub.outputs.endpoint
output WEBPUBSUB_HUB string = webPubSubHub.outputs.name
output WEBPUBSUB_EVENT_HANDLER_ENABLED bool = webPubSubEventHandlerEnabled
output NOTIFICATION_HUBS_NAMESPACE string = notificationHubs.outputs.namespaceName
output NOTIFICATION_HUB_NAME string = notificationHubs.outputs.hubName
output KEY_VAULT_NAME string = keyVault.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
