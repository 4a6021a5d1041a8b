"""Notifications: the notifier actor relays the transactional outbox to Redis pub/sub
(``notifier``); ``audience`` says who hears an event, from the audience stored with its outbox
row: the channels it is published on, those a caller listens on, and a reconnecting caller's
replay."""
