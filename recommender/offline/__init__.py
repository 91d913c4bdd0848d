"""Tools that never run in production: offline evaluation and its baselines and reports, the
demo export generator, the OULAD import."""
