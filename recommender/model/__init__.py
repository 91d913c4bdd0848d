"""From an export's arrays to a fitted model: features, LightFM fits and warm starts, the
item-item blend and the re-ranker chosen on validation, ranking metrics."""

import os

# LightFM and LightGBM run on OpenMP, whose idle threads spin by default. Where the cores are
# shared (API workers, another worker, CI), a spinning thread holds a core its own team is
# waiting for: a LightGBM fit ran 4-25x slower on this 2-core machine under load, and 1x when
# the threads sleep instead. libgomp reads this once, when the first of them is imported, which
# is below this package; an operator's own value is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
