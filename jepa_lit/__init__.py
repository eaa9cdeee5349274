"""jepa-lit: Video-JEPA pretraining and frozen-encoder evaluation with PyTorch Lightning."""

import os

# albumentations checks for updates over the network when imported, unless told not to; set it here,
# before any submodule imports it.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
