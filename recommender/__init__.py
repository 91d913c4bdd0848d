"""The training side: a Totara export in, per-user and per-item top-K lists published out.

Data flows through its subpackages in one direction: ``ingest`` (download, parse and validate
the export) -> ``model`` (features, LightFM, the item-item and re-ranking layers) -> ``publish``
(top-K lists, saved model files, a new version in Redis). ``pipeline`` runs one tenant through
them; ``service`` is what the worker and the command line call. ``offline`` holds the tools that
never run in production: evaluation, baselines, demo data, the OULAD import.
"""
