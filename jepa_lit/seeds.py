"""The run's seed, for components whose own seed is left unset.

Masks, data order, clip windows and crops each draw from their own seeded generators (so that a resumed
run repeats them exactly). Left at ``seed: null`` they follow the run's ``seed_everything``, which
Lightning exports to every process as PL_GLOBAL_SEED: another seed then changes the masks and the data
order as well as the initial weights, which is what a seed-to-seed comparison needs.
"""

from __future__ import annotations

import os
from typing import Optional


def run_seed(seed: Optional[int] = None) -> int:
    """``seed`` itself, or when None the run's seed (seed_everything's, else 0)."""
    if seed is not None:
        return seed
    return int(os.environ.get("PL_GLOBAL_SEED", 0))
