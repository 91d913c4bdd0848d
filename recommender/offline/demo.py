"""A synthetic Totara export (contract §4) with structure a recommender can learn.

Every tenant has a few hidden interest clusters (themes such as "safety" or "python"). A user
belongs to one cluster, visible (with some noise) in their interests, positions, organisations,
competencies and description; an item belongs to one cluster, visible in its topic/tag flags and
its document. Users mostly pick items of their own cluster, the rest from the whole catalogue,
both with Zipf-like popularity (recommender.offline.demointeractions), so a model that uses the
features or the co-occurrences beats plain popularity on held-out interactions.

Generation is vectorised (numpy + pyarrow) and the CSV is written the way PHP's fputcsv quotes
(recommender.offline.phpcsv).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recommender.ingest.export import TENANTS_FILE, interactions_file, items_file, users_file
from recommender.ingest.tables import INTERACTION_COLUMNS, USER_COLUMNS
from recommender.offline.demointeractions import interaction_columns
from recommender.offline.phpcsv import write_php_csv
from runtime.items import FAMILY_OF_TYPE, ITEM_TYPES

# Fixed "now" so the same seed always writes the same bytes (2026-01-01 00:00 UTC).
DEMO_NOW = 1_767_225_600

THEMES: dict[str, tuple[str, ...]] = {
    "safety": ("hazard", "ppe", "incident", "risk", "fire", "evacuation", "firstaid", "ladder"),
    "leadership": ("coaching", "feedback", "vision", "delegation", "mentoring", "strategy",
                   "influence", "trust"),
    "sales": ("pipeline", "prospecting", "negotiation", "closing", "crm", "quota", "pitch",
              "objection"),
    "python": ("pandas", "numpy", "functions", "classes", "pytest", "packaging", "asyncio",
               "typing"),
    "finance": ("budget", "forecast", "ledger", "audit", "invoice", "cashflow", "tax", "payroll"),
    "marketing": ("campaign", "brand", "seo", "content", "social", "funnel", "persona",
                  "analytics"),
    "compliance": ("gdpr", "privacy", "bribery", "policy", "whistleblowing", "records",
                   "consent", "ethics"),
    "nursing": ("triage", "medication", "wound", "infection", "patient", "handover", "vitals",
                "dementia"),
    "cooking": ("knife", "sauce", "hygiene", "allergen", "pastry", "grill", "menu", "plating"),
    "design": ("typography", "colour", "layout", "prototype", "wireframe", "accessibility",
               "sketch", "grid"),
    "wellbeing": ("stress", "sleep", "mindfulness", "resilience", "exercise", "nutrition",
                  "balance", "burnout"),
    "customer": ("service", "complaint", "empathy", "loyalty", "callcentre", "ticket",
                 "satisfaction", "escalation"),
    "project": ("scope", "milestone", "gantt", "agile", "scrum", "sprint", "stakeholder",
                "kanban"),
    "data": ("sql", "dashboard", "warehouse", "statistics", "regression", "visualisation", "etl",
             "metrics"),
    "languages": ("spanish", "french", "grammar", "vocabulary", "pronunciation", "conversation",
                  "german", "idioms"),
    "security": ("phishing", "password", "malware", "encryption", "firewall", "mfa",
                 "ransomware", "patching"),
    "people": ("recruitment", "onboarding", "appraisal", "diversity", "inclusion", "benefits",
               "grievance", "retention"),
    "logistics": ("forklift", "inventory", "shipping", "supplier", "procurement", "freight",
                  "picking", "pallet"),
    "writing": ("editing", "storytelling", "reports", "email", "proofreading", "structure",
                "tone", "clarity"),
    "electrical": ("wiring", "circuits", "voltage", "isolation", "earthing", "fuses",
                   "inspection", "rcd"),
}
FILLERS = ("Introduction to", "Practical", "Advanced", "Essentials of", "A guide to",
           "Workshop:", "Everyday", "Mastering")
COUNTRIES = ("NZ", "GB", "US", "DE", "FR", "ES", "AU", "IN")
LANGS = ("en", "en", "en", "de", "fr", "es", "en", "en")
CITIES = (("Wellington", "Auckland", "Christchurch"), ("London", "Leeds", "Milton Keynes"),
          ("New York", "Chicago", "San Francisco"), ("Berlin", "Munich", "Hamburg"),
          ("Paris", "Lyon", "Aix-en-Provence"), ("Madrid", "Sevilla", "Las Palmas"),
          ("Sydney", "Perth", "Alice Springs"), ("Mumbai", "Pune", "New Delhi"))
# Share of each item type (course, workspace, article, micro-learning, playlist).
TYPE_SHARES = (0.25, 0.10, 0.35, 0.15, 0.15)
FEATURE_NOISE = 0.15  # chance that a user feature comes from another cluster


def _text(values: np.ndarray | list[str]) -> pa.Array:
    return pa.array(values, pa.string())


def _pick(vocab: list[str], index: np.ndarray) -> pa.Array:
    return pc.take(_text(vocab), pa.array(index.ravel()))


def _join(parts: list[pa.Array | str], sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*[pa.scalar(p) if isinstance(p, str) else p
                                         for p in parts], sep)


def _joined(values: pa.Array, present: np.ndarray) -> pa.Array:
    """``|``-joined values per row: ``values`` row-major (n * k), ``present`` an (n, k) mask."""
    offsets = np.zeros(len(present) + 1, np.int32)
    np.cumsum(present.sum(axis=1), out=offsets[1:])
    kept = values.filter(pa.array(present.ravel()))
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), kept), "|")


def _token_lists(tokens: np.ndarray, present: np.ndarray) -> pa.Array:
    """``|``-joined ids per row from an (n, k) id matrix and an (n, k) presence mask."""
    return _joined(pc.cast(pa.array(tokens.ravel().astype(np.int64)), pa.string()), present)


def _noisy(rng: np.random.Generator, clusters: np.ndarray, n_clusters: int,
           k: int) -> np.ndarray:
    """(n, k) clusters: the row's own one, sometimes replaced by another at random."""
    own = np.repeat(clusters[:, None], k, axis=1)
    other = rng.integers(n_clusters, size=own.shape)
    return np.where(rng.random(own.shape) < FEATURE_NOISE, other, own)


def _distinct(rng: np.random.Generator, n: int, pool: int, k: int) -> np.ndarray:
    """(n, k) distinct slots out of ``pool`` per row."""
    return np.argsort(rng.random((n, pool)), axis=1)[:, :k]


def _users(rng: np.random.Generator, n: int, n_clusters: int) -> tuple[dict, np.ndarray]:
    ids = np.sort(rng.choice(np.arange(2, 3 * n + 2), size=n, replace=False))
    cluster = rng.integers(n_clusters, size=n)
    country = rng.choice(len(COUNTRIES), size=n, p=(.15, .25, .2, .1, .1, .08, .07, .05))
    city_index = country * 3 + rng.integers(3, size=n)
    themes = list(THEMES)
    words = [w for t in themes[:n_clusters] for w in THEMES[t]]

    # Interests: 0-3 of the cluster's six tag instance ids.
    slots = _distinct(rng, n, 6, 3)
    interest = 1000 + _noisy(rng, cluster, n_clusters, 3) * 10 + slots
    interests = _token_lists(interest, rng.random((n, 3)) < (0.8, 0.6, 0.3))
    position = 10 + _noisy(rng, cluster, n_clusters, 1) * 3 + rng.integers(3, size=(n, 1))
    positions = _token_lists(position, rng.random((n, 1)) < 0.9)
    aspiration = 10 + _noisy(rng, cluster, n_clusters, 1) * 3 + rng.integers(3, size=(n, 1))
    asp_position = _token_lists(aspiration, rng.random((n, 1)) < 0.3)
    team = 5 + _noisy(rng, cluster, n_clusters, 1) * 2 + rng.integers(2, size=(n, 1))
    site = rng.integers(1, 5, size=(n, 1))  # a few organisations that span the clusters
    organisations = _token_lists(np.hstack([team, site]), rng.random((n, 2)) < (0.85, 0.5))
    badge = rng.integers(1, 41, size=n)
    other_badge = (badge + rng.integers(0, 39, size=n)) % 40 + 1  # never the same badge
    badges = _token_lists(np.column_stack([badge, other_badge]),
                          rng.random((n, 2)) < (0.3, 0.1))
    comp = 100 + _noisy(rng, cluster, n_clusters, 2) * 4 + _distinct(rng, n, 4, 2)
    level = _pick(["1", "2", "3", "0.5"], rng.integers(4, size=(n, 2)))
    competencies = _joined(_join([pc.cast(pa.array(comp.ravel()), pa.string()), ":", level]),
                           rng.random((n, 2)) < (0.5, 0.25))

    # Description: the cluster's words, with the occasional comma, apostrophe or line break.
    word = _noisy(rng, cluster, n_clusters, 3) * 8 + _distinct(rng, n, 8, 3)
    lead = _pick(["Interested in", "I work on", "Keen on", "Learning about"],
                 rng.integers(4, size=n))
    tail = _pick(["", "", "", " (it's my focus)", ".\nAlso mentoring new starters"],
                 rng.integers(5, size=n))
    description = _join([lead, " ", _pick(words, word[:, 0]), ", ", _pick(words, word[:, 1]),
                         " and ", _pick(words, word[:, 2]), tail])
    description = pc.if_else(pa.array(rng.random(n) < 0.05), pa.scalar(""), description)
    columns = {
        "user_id": pa.array(ids), "lang": _pick(list(LANGS), country),
        "city": _pick([c for group in CITIES for c in group], city_index),
        "country": _pick(list(COUNTRIES), country), "interests": interests,
        "asp_position": asp_position, "positions": positions, "organisations": organisations,
        "competencies_scale": competencies, "badges": badges, "description": description,
    }
    return columns, cluster


def _item_numbers(rng: np.random.Generator, types: np.ndarray) -> np.ndarray:
    """Ids unique within a family: articles and micro-learning share Totara's article table."""
    numbers = np.zeros(len(types), np.int64)
    families = np.asarray(FAMILY_OF_TYPE)[types]
    for family in np.unique(families):
        members = np.flatnonzero(families == family)
        start = int(rng.integers(1, 500))
        numbers[members] = start + rng.permutation(len(members)) * int(rng.integers(1, 4))
    return numbers


def _items(rng: np.random.Generator, n: int, n_clusters: int) -> tuple[dict, np.ndarray]:
    types = rng.choice(len(ITEM_TYPES), size=n, p=TYPE_SHARES)
    types[:min(n, len(ITEM_TYPES))] = np.arange(min(n, len(ITEM_TYPES)))  # every type present
    types = rng.permutation(types)
    numbers = _item_numbers(rng, types)
    keys = _join([_pick(list(ITEM_TYPES), types), pc.cast(pa.array(numbers), pa.string())])
    cluster = rng.permutation(np.arange(n) % n_clusters)  # no cluster is empty
    themes = list(THEMES)[:n_clusters]
    columns: dict[str, pa.Array] = {"item_id": keys}
    for code, name in enumerate(ITEM_TYPES):
        columns[name] = pa.array((types == code).astype(np.int8))
    other = rng.integers(n_clusters, size=n)
    for c, theme in enumerate(themes):
        flag = ((cluster == c) & (rng.random(n) < 0.85)) | ((other == c) & (rng.random(n) < .1))
        columns[f"topic_{theme}"] = pa.array(flag.astype(np.int8))
    for c, theme in enumerate(themes):
        for word in THEMES[theme][:2]:
            flag = ((cluster == c) & (rng.random(n) < 0.4)) | (rng.random(n) < 0.02)
            columns[f"tag_{word}"] = pa.array(flag.astype(np.int8))
    words = [w for t in themes for w in THEMES[t]]
    word = cluster[:, None] * 8 + _distinct(rng, n, 8, 4)
    kind = _pick(["a course", "a workspace", "an article", "a quick read", "a playlist"], types)
    title = _join([_pick(list(FILLERS), rng.integers(len(FILLERS), size=n)), " ",
                   _pick(themes, cluster), " ", _pick(words, word[:, 0])])
    quoted = pc.if_else(pa.array(rng.random(n) < 0.03), pa.scalar(' "top pick"'), pa.scalar(""))
    columns["document"] = _join([title, quoted, ": ", kind, " about ", _pick(words, word[:, 1]),
                                 ", ", _pick(words, word[:, 2]), " and ",
                                 _pick(words, word[:, 3]), "."])
    return columns, cluster


def write_demo_export(dest: Path, *, tenants: int = 3, users: int = 2000, items: int = 400,
                      interactions: int = 40000, seed: int = 0,
                      now: int = DEMO_NOW) -> list[str]:
    """Write tenants.csv and every tenant's three files into ``dest``; return the tenant ids.

    Tenant "0" has the sizes asked for; the others are 75-100 % of them, so tenants differ.
    ``interactions`` is a row count before nothing is left to draw: a tiny catalogue may hold
    fewer distinct (user, item) pairs than asked for.
    """
    if tenants < 1 or users < 1 or items < 1 or interactions < 0:
        raise ValueError("tenants, users and items must be positive, interactions not negative")
    dest.mkdir(parents=True, exist_ok=True)
    ids = [str(t) for t in range(tenants)]
    (dest / TENANTS_FILE).write_text("tenants\n" + "".join(f"{t}\n" for t in ids))
    for index, tenant in enumerate(ids):
        rng = np.random.default_rng([seed, index])
        scale = 1.0 if index == 0 else float(rng.uniform(0.75, 1.0))
        n_users = max(1, round(users * scale))
        n_items = max(1, round(items * scale))
        n_clusters = int(np.clip(n_items // 15, 1, len(THEMES)))
        user_columns, user_cluster = _users(rng, n_users, n_clusters)
        item_columns, item_cluster = _items(rng, n_items, n_clusters)
        rows = interaction_columns(rng, round(interactions * scale),
                                   user_columns["user_id"].to_numpy(), user_cluster,
                                   item_columns["item_id"], item_cluster, now)
        assert tuple(user_columns) == USER_COLUMNS and tuple(rows) == INTERACTION_COLUMNS
        write_php_csv(dest / users_file(tenant), user_columns)
        write_php_csv(dest / items_file(tenant), item_columns)
        write_php_csv(dest / interactions_file(tenant), rows)
    return ids
