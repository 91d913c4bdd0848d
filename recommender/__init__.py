"""Training side of the service: Totara export -> LightFM -> top-K lists published to Redis.

Light modules (config, items, keys, packing, redisconn, signing) are shared with the API and the
consumer; only ``train`` imports LightFM.
"""
