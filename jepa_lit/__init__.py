"""jepa-lit: Video-JEPA pretraining and frozen-encoder evaluation with PyTorch Lightning."""

import os

# albumentations checks for updates over the network when imported, unless told not to; set it here,
# before any submodule imports it.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.4.0"

# Bumped whenever a change alters what a run trains, or what a probe measures, for the same config
# (2: the predictor follows interpolate_rope; masks and data order follow the run's seed; synthetic clips
# seeded as the study's release; bad evaluation clips dropped; 3: mask index lists cut per group of 8
# samples, one mask token shared by the generators, lr / weight decay of step i at the schedule's i + 1,
# Delta's target detached, HW skipping fewer than 2 targets, VelGate skipping one time step; 4: hard-weighted
# LD's softmax per cut group (softmax_scope: local), evaluation frame indices truncated as the release's,
# the synthetic regime's context loss over absolute steps, FWM's covariance from partial sums). Checkpoints, sweep run hashes and probe
# comparison keys carry it, so runs and results from either side of a change are never mixed silently.
BEHAVIOUR_VERSION = 4
