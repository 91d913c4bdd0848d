"""From a fitted model to what is served: top-K lists, the saved model files, a new version in
Redis switched in atomically."""
