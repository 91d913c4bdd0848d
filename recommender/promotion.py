"""The promotion gate: a newly trained model replaces the published one only if it is not much
worse on validation. ``force`` (a retrain event, ``train --force``) skips it."""

from __future__ import annotations

from recommender.outcome import TenantResult

# A new model must reach this share of the published model's validation P@10.
PROMOTION_RATIO = 0.9


def gate(published: dict[str, str] | None, result: TenantResult) -> str | None:
    """Why the new model must not replace the published one, or None.

    A full fit is compared with the published model's last full fit (an incremental run's
    figure is measured on other pairs); an incremental run with the saved model's score on its
    own held-out pairs, which is the same measurement of the model it replaces.
    """
    baseline = result.metrics.get("warm_baseline_precision_at_10")
    if baseline is None:
        published = published or {}
        baseline = published.get("full_fit_precision_at_10", published.get("precision_at_10"))
    if baseline is None:
        return None
    try:
        old = float(baseline)
    except ValueError:
        return None
    new = result.metrics["precision_at_10"]
    if new < PROMOTION_RATIO * old:
        return (f"not published: validation P@10 {new:.4f} is below {PROMOTION_RATIO:.0%} of "
                f"the published model's {old:.4f} (train with force to publish anyway)")
    return None
