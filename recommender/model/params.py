"""The training settings of a tenant's fit: LightFM's, early stopping's and the layers' search
space. Defaults measured on OULAD and demo data (docs/quality.md)."""

from __future__ import annotations

from dataclasses import dataclass

from recommender.model import itemsearch


@dataclass(frozen=True)
class TrainParams:
    """Defaults measured on OULAD and demo data: docs/quality.md."""

    components: int = 64
    loss: str = "warp"
    learning_schedule: str = "adagrad"
    learning_rate: float = 0.05
    # L2 per feature. With metadata features 1e-3 makes WARP collapse after a few epochs, so
    # feature models rely on early stopping; identity-only (mf) models need the stronger one.
    item_alpha: float = 1e-4
    user_alpha: float = 1e-4
    mf_alpha: float = 1e-3
    max_sampled: int = 30
    max_epochs: int = 40
    patience: int = 3  # epochs without improvement before stopping
    # Identity share of a feature row, chosen on the validation split; the smallest share (most
    # metadata, best for cold users) within ``identity_tolerance`` of the best P@10 wins.
    identity_weights: tuple[float, ...] = (0.4, 0.9)
    identity_tolerance: float = 0.01
    validation_fraction: float = 0.2
    validation_users: int = 3000  # users sampled for the per-epoch check
    # Warm starts (recommender.model.warmstart) need few epochs; they stop sooner too.
    incremental_max_epochs: int = 10
    incremental_patience: int = 2
    # The item-item part blended into warm users' lists (recommender.model.itemsearch): its
    # neighbours per item, lambda and weight are chosen on the validation split, LightFM alone
    # being a candidate; no lambdas turn it off. The settings are ranked on
    # ``layer_search_users`` validation users, the best against LightFM alone on
    # ``blend_validation_users`` (more than per epoch: the steps between settings are small).
    item_item_neighbours: tuple[int, ...] = itemsearch.KS
    item_item_lambdas: tuple[float, ...] = itemsearch.LAMBDAS
    blend_weights: tuple[float, ...] = itemsearch.WEIGHTS
    finer_blend_weights: tuple[float, ...] = itemsearch.FINER_WEIGHTS
    item_item_dense_items: int = itemsearch.DENSE_ITEMS
    layer_search_users: int = 5000
    blend_validation_users: int = 20000
    # The re-ranker over the blend's candidates (recommender.model.rerank), trained on at most
    # ``rerank_users`` validation users; only tried when the blend is chosen.
    rerank: bool = True
    rerank_users: int = 5000
    seed: int = 42
