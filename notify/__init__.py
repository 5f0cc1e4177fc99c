"""The notification domain: messages, delivery decisions, presence, devices and push."""
