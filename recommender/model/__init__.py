"""From an export's arrays to a fitted model: features, LightFM fits and warm starts, the
item-item blend and the re-ranker chosen on validation, ranking metrics."""
