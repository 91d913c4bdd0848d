"""The event-driven side of the service: queue worker, retrain scheduler and event publisher.

See docs/events.md for the exchange, queues and event schema.
"""
