"""What every process shares and nothing else: settings, logging, the Redis connection, Totara's
request signature, item types, the error hierarchy. It imports no other package of the service."""
