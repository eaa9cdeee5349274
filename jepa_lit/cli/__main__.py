"""``python -m jepa_lit.cli``: what the sweep's runs and torchrun call (the ``jepa-lit`` script's main)."""

from jepa_lit.cli.commands import main

main()
