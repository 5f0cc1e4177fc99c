"""Local stand-ins for the Azure services the app uses: Azurite, a Web PubSub emulator,
a Notification Hubs emulator and a local Functions host. Development only: the app never imports this."""
