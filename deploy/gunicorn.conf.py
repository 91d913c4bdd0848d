"""gunicorn settings of the API from a checkout: ``gunicorn -c deploy/gunicorn.conf.py
'api.app:create_app()'``. The settings live in the package (api/gunicorn_conf.py), so the
installed command ``totara-recommender-api`` runs with the same ones.
"""

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the config may be loaded from another working directory
    sys.path.insert(0, str(ROOT))

# Run afresh on every read (not a cached import): each read checks the environment of that start.
globals().update({name: value for name, value in runpy.run_module("api.gunicorn_conf").items()
                  if not name.startswith("__")})
# Relative ML_* paths (data/models) are the checkout's, whatever folder gunicorn starts in.
chdir = str(ROOT)
