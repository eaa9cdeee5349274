"""Moved to jepa_lit.study (``python -m jepa_lit.study report``); this name still runs the report."""

from jepa_lit.study.report import main

if __name__ == "__main__":
    raise SystemExit(main())
