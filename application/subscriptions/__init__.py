"""Downstream subscribers: registration, the delivery rule and the relay to the broker."""
