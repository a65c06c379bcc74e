"""Sweep tests sign their stores with a fixed key (never the user's key file in ~/.config)."""

import os

os.environ.setdefault("DLNLAB_STORE_KEY", "dlnlab-tests")
