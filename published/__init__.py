"""The published state: the contract between training, the worker and the API.

Redis keys and their layout, the packed list format, the version writer and the pointer switch,
tenant locks, the per-tenant overview and gauges, and ``train_summary.log``. Training writes it,
the API and the worker read it; it depends on ``runtime`` only.
"""
