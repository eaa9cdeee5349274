"""Moved to jepa_lit.study (``python -m jepa_lit.study sweep``); this name still runs the sweep, since
SLURM array scripts written before the move call ``python -m jepa_lit.sweep``."""

from jepa_lit.study.sweep import main

if __name__ == "__main__":
    raise SystemExit(main())
