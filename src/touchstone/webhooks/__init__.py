"""Outgoing webhooks: org admins register HTTPS endpoints; outbox events reach them signed.

Deliveries are created in the outbox relay's transaction (an event is numbered if and only
if its deliveries exist), sent by a job with retries over hours, and logged attempt by
attempt. Targets pass an SSRF policy at registration, after DNS resolution and on every
redirect; the connection goes to the vetted address itself.
"""
