"""Interaction and feature matrices for the three modes of contract §5.

- ``mf``: no features (LightFM's implicit identity features).
- ``partial``: user one-hot columns (lang, country and the ``|``-joined id columns, top 30 values
  per column), one numeric column per competency; item type and topic/tag flags.
- ``hybrid``: partial plus TF-IDF of the user's city + description and of the item's document.

Unlike the original, partial and hybrid also give every user and item an identity feature by
default: warm users and items get their own embedding, cold ones still get one from metadata.
Each row is scaled to sum to 1, so a user with many tags does not get a larger representation.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.export import Interactions, Items, TenantExport, Users
from recommender.items import ITEM_TYPES

TOP_VALUES = 30  # per one-hot user column, as the original
TFIDF_TERMS = 2000
MODES = ("hybrid", "partial", "mf")


@dataclass
class FeatureSet:
    interactions: sp.coo_matrix  # users x items, 1.0 per (user, item) pair
    weights: sp.coo_matrix  # same pattern, rating + 1 (the original's sample weight)
    user_features: sp.csr_matrix | None  # None: identity only (mf)
    item_features: sp.csr_matrix | None
    user_feature_names: list[str]
    item_feature_names: list[str]


def interaction_matrices(inter: Interactions, n_users: int,
                         n_items: int) -> tuple[sp.coo_matrix, sp.coo_matrix]:
    shape = (n_users, n_items)
    ones = sp.coo_matrix((np.ones(len(inter), np.float32), (inter.users, inter.items)), shape)
    weights = sp.coo_matrix(
        (inter.ratings.astype(np.float32) + 1.0, (inter.users, inter.items)), shape)
    return ones, weights


def _one_hot(values: list[list[str]], prefix: str) -> tuple[sp.csr_matrix, list[str]]:
    """Columns for the TOP_VALUES most frequent tokens; rarer tokens are dropped."""
    counts = Counter(token for tokens in values for token in tokens)
    vocab = [token for token, _ in counts.most_common(TOP_VALUES)]
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


def _assemble(blocks: list[tuple[sp.spmatrix, list[str]]]) -> tuple[sp.csr_matrix, list[str]]:
    matrix = sp.hstack([b for b, _ in blocks], format="csr", dtype=np.float32)
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    matrix = sp.csr_matrix(sp.diags(1.0 / sums).astype(np.float32) @ matrix)
    names = [name for _, block_names in blocks for name in block_names]
    return matrix, names


def user_features(users: Users, mode: str, identity: bool) -> tuple[sp.csr_matrix, list[str]]:
    blocks: list[tuple[sp.spmatrix, list[str]]] = []
    if identity:
        blocks.append((sp.identity(len(users), np.float32, format="csr"),
                       [f"user:{u}" for u in users.ids]))
    for column in ("lang", "country"):
        blocks.append(_one_hot([[v] if v else [] for v in users.text[column]], column))
    for column, values in users.multi.items():
        blocks.append(_one_hot(values, column))
    blocks.append(_competencies(users))
    if mode == "hybrid":
        texts = [f"{c} {d}" for c, d in zip(users.text["city"], users.text["description"],
                                             strict=True)]
        blocks.append(_tfidf(texts, "text"))
    return _assemble(blocks)


def item_features(items: Items, mode: str, identity: bool) -> tuple[sp.csr_matrix, list[str]]:
    blocks: list[tuple[sp.spmatrix, list[str]]] = []
    if identity:
        blocks.append((sp.identity(len(items), np.float32, format="csr"), list(items.keys)))
    type_matrix = sp.csr_matrix(
        (np.ones(len(items), np.float32), (np.arange(len(items)), items.types.astype(np.int64))),
        shape=(len(items), len(ITEM_TYPES)))
    blocks.append((type_matrix, [f"type:{t}" for t in ITEM_TYPES]))
    blocks.append((items.tags.astype(np.float32), list(items.tag_names)))
    if mode == "hybrid":
        blocks.append(_tfidf(items.documents, "text"))
    return _assemble(blocks)


def build(export: TenantExport, mode: str, identity: bool = True) -> FeatureSet:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    ones, weights = interaction_matrices(export.interactions, len(export.users),
                                         len(export.items))
    if mode == "mf":
        return FeatureSet(ones, weights, None, None, [], [])
    uf, uf_names = user_features(export.users, mode, identity)
    itf, itf_names = item_features(export.items, mode, identity)
    return FeatureSet(ones, weights, uf, itf, uf_names, itf_names)
