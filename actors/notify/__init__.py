"""Notifications: the notifier actor relays the transactional outbox to Redis pub/sub
(``notifier``); ``audience`` says which channels, and so which people, hear an event."""
