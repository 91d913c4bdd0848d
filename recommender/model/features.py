"""Interaction and feature matrices for the three modes of contract §5.

- ``mf``: no features (LightFM's implicit identity features).
- ``partial``: user one-hot columns (lang, country and the ``|``-joined id columns, top 30 values
  per column), one numeric column per competency; item type and topic/tag flags.
- ``hybrid``: partial plus TF-IDF of the user's city + description and of the item's document.

Unlike the original, partial and hybrid also give every user and item with interactions an
identity feature: warm users and items get their own embedding, cold ones are scored from
metadata alone. Each row sums to 1 (a user with many tags does not get a larger representation)
and the identity column takes a fixed share of it, ``identity_weight``, so that metadata neither
drowns the identity nor vanishes; train.fit chooses that share per tenant (docs/quality.md).
Interactions weigh ``RATING_WEIGHTS`` by rating, 1 and 2 as in the original.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.ingest.export import TenantExport
from recommender.ingest.tables import Interactions, Items, Users
from runtime.items import ITEM_TYPES

TOP_VALUES = 30  # per one-hot user column, as the original
TFIDF_TERMS = 2000
MODES = ("hybrid", "partial", "mf")


IDENTITY_WEIGHT = 0.5  # share of a row for its identity column when nothing else is chosen
RATING_WEIGHTS = (1.0, 2.0)  # sample weight of a rating-0 and of a rating-1 interaction


@dataclass
class Parts:
    """A feature matrix before weighting: identity and metadata, each row summing to 1 or 0."""

    identity: sp.csr_matrix | None
    metadata: sp.csr_matrix

    def combine(self, identity_weight: float) -> sp.csr_matrix:
        """Identity weighs ``identity_weight`` of a row, metadata the rest.

        Without this split the identity's share would shrink as metadata grows (a user with ten
        tags would be mostly tags). A row without metadata is all identity. A row without an
        identity (no interactions to learn it from) keeps its metadata at the scale warm rows
        have, so cold and warm items are scored on the same scale.
        """
        if self.identity is None:
            return self.metadata
        has_meta = np.asarray(self.metadata.sum(axis=1)).ravel() > 0
        id_share = np.where(has_meta, identity_weight, 1.0).astype(np.float32)
        matrix = sp.hstack([sp.diags(id_share) @ self.identity,
                            self.metadata * np.float32(1.0 - identity_weight)],
                           format="csr", dtype=np.float32)
        matrix.eliminate_zeros()
        return matrix


@dataclass
class FeatureSet:
    interactions: sp.coo_matrix  # users x items, 1.0 per (user, item) pair
    weights: sp.coo_matrix  # same pattern, RATING_WEIGHTS by rating
    repeats: sp.csr_matrix  # the pairs with rating 1 (used on more than one occasion)
    item_types: np.ndarray  # type code per item (runtime.items)
    user_features: sp.csr_matrix | None  # None: identity only (mf)
    item_features: sp.csr_matrix | None
    user_feature_names: list[str]
    item_feature_names: list[str]
    user_parts: Parts | None = None  # what the feature matrices are made of, to re-weight them
    item_parts: Parts | None = None
    identity_weight: float | None = None  # None: no identity beside metadata

    def reweightable(self) -> bool:
        return (self.user_parts is not None and self.user_parts.identity is not None
                and self.item_parts is not None and self.item_parts.identity is not None)

    def with_identity_weight(self, identity_weight: float) -> FeatureSet:
        """The same features with another identity share (cheap: two sparse rescales)."""
        if not self.reweightable():
            return self
        assert self.user_parts is not None and self.item_parts is not None
        return replace(self, user_features=self.user_parts.combine(identity_weight),
                       item_features=self.item_parts.combine(identity_weight),
                       identity_weight=identity_weight)


def interaction_matrices(inter: Interactions, n_users: int, n_items: int,
                         rating_weights: tuple[float, float] = RATING_WEIGHTS,
                         ) -> tuple[sp.coo_matrix, sp.coo_matrix]:
    shape = (n_users, n_items)
    ones = sp.coo_matrix((np.ones(len(inter), np.float32), (inter.users, inter.items)), shape)
    values = np.asarray(rating_weights, np.float32)[inter.ratings.astype(np.int64)]
    weights = sp.coo_matrix((values, (inter.users, inter.items)), shape)
    return ones, weights


def repeat_pairs(inter: Interactions, n_users: int, n_items: int) -> sp.csr_matrix:
    """Users x items, 1.0 per pair with rating 1 (used on more than one occasion)."""
    chosen = inter.ratings.astype(bool)
    return sp.csr_matrix((np.ones(int(chosen.sum()), np.float32),
                          (inter.users[chosen], inter.items[chosen])), shape=(n_users, n_items))


def _one_hot(values: list[list[str]], prefix: str) -> tuple[sp.csr_matrix, list[str]]:
    """Columns for the TOP_VALUES most frequent tokens; rarer tokens are dropped."""
    counts = Counter(token for tokens in values for token in tokens)
    # A value every row has tells no one apart (e.g. one language site-wide): it is left out.
    vocab = [token for token, n in counts.most_common(TOP_VALUES)
             if n < len(values) or len(values) < 2]
    index = {token: i for i, token in enumerate(vocab)}
    rows, cols = [], []
    for row, tokens in enumerate(values):
        for token in tokens:
            col = index.get(token)
            if col is not None:
                rows.append(row)
                cols.append(col)
    data = np.ones(len(rows), np.float32)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(len(values), len(vocab)))
    matrix.data[:] = 1.0  # a token repeated in one cell still counts once
    return matrix, [f"{prefix}:{token}" for token in vocab]


def _competencies(users: Users) -> tuple[sp.csr_matrix, list[str]]:
    ids = sorted({cid for pairs in users.competencies for cid, _ in pairs})
    index = {cid: i for i, cid in enumerate(ids)}
    rows, cols, vals = [], [], []
    for row, pairs in enumerate(users.competencies):
        for cid, proficiency in pairs:
            rows.append(row)
            cols.append(index[cid])
            vals.append(proficiency)
    matrix = sp.csr_matrix((np.asarray(vals, np.float32), (rows, cols)),
                           shape=(len(users), len(ids)))
    # Proficiency scales differ between frameworks: scale each competency to [0, 1].
    peak = np.abs(matrix).max(axis=0).toarray().ravel()
    peak[peak == 0] = 1.0
    return sp.csr_matrix(matrix @ sp.diags(1.0 / peak)), [f"competency:{c}" for c in ids]


def _tfidf(documents: list[str], prefix: str) -> tuple[sp.csr_matrix, list[str]]:
    if not any(doc.strip() for doc in documents):
        return sp.csr_matrix((len(documents), 0), dtype=np.float32), []
    vectorizer = TfidfVectorizer(max_features=TFIDF_TERMS, min_df=2, stop_words="english",
                                 sublinear_tf=True, dtype=np.float32)
    try:
        matrix = vectorizer.fit_transform(documents)
    except ValueError:  # every term pruned (tiny tenants)
        return sp.csr_matrix((len(documents), 0), dtype=np.float32), []
    return matrix.tocsr(), [f"{prefix}:{term}" for term in vectorizer.get_feature_names_out()]


def _parts(identity: tuple[sp.csr_matrix, list[str]] | None,
           blocks: list[tuple[sp.spmatrix, list[str]]]) -> tuple[Parts, list[str]]:
    metadata = sp.hstack([b for b, _ in blocks], format="csr", dtype=np.float32)
    names = [name for _, block_names in blocks for name in block_names]
    sums = np.asarray(metadata.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    metadata = sp.csr_matrix(sp.diags((1.0 / sums).astype(np.float32)) @ metadata)
    if identity is None:
        return Parts(None, metadata), names
    return Parts(identity[0], metadata), identity[1] + names


def _identity(n: int, active: np.ndarray | None) -> sp.csr_matrix:
    """One column per row; rows without interactions get an empty row: an untrained vector is
    noise, so they are scored from metadata only."""
    diagonal = np.ones(n, np.float32) if active is None else active.astype(np.float32)
    return sp.csr_matrix(sp.diags(diagonal))


def user_parts(users: Users, mode: str, identity: bool,
               active: np.ndarray | None = None) -> tuple[Parts, list[str]]:
    blocks: list[tuple[sp.spmatrix, list[str]]] = []
    for column in ("lang", "country"):
        blocks.append(_one_hot([[v] if v else [] for v in users.text[column]], column))
    for column, values in users.multi.items():
        blocks.append(_one_hot(values, column))
    blocks.append(_competencies(users))
    if mode == "hybrid":
        texts = [f"{c} {d}" for c, d in zip(users.text["city"], users.text["description"],
                                             strict=True)]
        blocks.append(_tfidf(texts, "text"))
    ident = ((_identity(len(users), active), [f"user:{u}" for u in users.ids])
             if identity else None)
    return _parts(ident, blocks)


def item_parts(items: Items, mode: str, identity: bool,
               active: np.ndarray | None = None) -> tuple[Parts, list[str]]:
    type_matrix = sp.csr_matrix(
        (np.ones(len(items), np.float32), (np.arange(len(items)), items.types.astype(np.int64))),
        shape=(len(items), len(ITEM_TYPES)))
    blocks: list[tuple[sp.spmatrix, list[str]]] = [
        (type_matrix, [f"type:{t}" for t in ITEM_TYPES]),
        (items.tags.astype(np.float32), list(items.tag_names))]
    if mode == "hybrid":
        blocks.append(_tfidf(items.documents, "text"))
    ident = (_identity(len(items), active), list(items.keys)) if identity else None
    return _parts(ident, blocks)


def build(export: TenantExport, mode: str, identity: bool = True,
          identity_weight: float = IDENTITY_WEIGHT,
          rating_weights: tuple[float, float] = RATING_WEIGHTS) -> FeatureSet:
    """Features of ``mode``; with ``identity`` every user and item with interactions also has
    its own column, weighing ``identity_weight`` of its row (train.fit may choose another)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    n_users, n_items = len(export.users), len(export.items)
    ones, weights = interaction_matrices(export.interactions, n_users, n_items, rating_weights)
    repeats = repeat_pairs(export.interactions, n_users, n_items)
    types = np.asarray(export.items.types)
    if mode == "mf":
        return FeatureSet(ones, weights, repeats, types, None, None, [], [])
    inter = export.interactions
    active_users = np.bincount(inter.users, minlength=n_users) > 0
    active_items = np.bincount(inter.items, minlength=n_items) > 0
    users, user_names = user_parts(export.users, mode, identity, active_users)
    items, item_names = item_parts(export.items, mode, identity, active_items)
    fs = FeatureSet(ones, weights, repeats, types, users.combine(identity_weight),
                    items.combine(identity_weight), user_names, item_names, users, items,
                    identity_weight if identity else None)
    return fs
