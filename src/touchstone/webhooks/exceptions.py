"""Webhook failures with stable codes clients can branch on."""

from touchstone.core.errors import AppError, Conflict, InvalidInput, NotFound


class WebhookNotFound(NotFound):
    code, title = "webhook_not_found", "Webhook not found"


class DeliveryNotFound(NotFound):
    code, title = "webhook_delivery_not_found", "Webhook delivery not found"


class TargetRefused(InvalidInput):
    """The URL or an address it resolves to is not allowed (scheme, private network, ...)."""

    code, title = "webhook_target_refused", "The webhook target is not allowed"


class TargetUnresolvable(InvalidInput):
    code, title = "webhook_target_unresolvable", "The webhook target's host does not resolve"


class EndpointDisabled(Conflict):
    code, title = "webhook_disabled", "The webhook is disabled"


class DeliveryAttemptFailed(AppError):
    """Raised by the delivery job so it is retried; the attempt is already logged."""

    status, code, title = 502, "webhook_attempt_failed", "The webhook target did not accept"
