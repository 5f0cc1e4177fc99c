"""Azure Notification Hubs emulator: data-plane REST (SAS, installations, sends) plus a push sink."""

from devstack.notificationhubs.emulator import RunningNotificationHubs, start_notification_hubs_emulator
from devstack.notificationhubs.sas import generate_sas_token

__all__ = ["RunningNotificationHubs", "generate_sas_token", "start_notification_hubs_emulator"]
