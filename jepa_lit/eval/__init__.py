"""Frozen-encoder evaluation: the eval encoder of a checkpoint, cached features, multi-head probes, results JSON.

    jepa-lit test --probe synthetic --ckpt_path RUN/checkpoints/last.ckpt

checkpoint.py (which encoder, rebuilt), features.py (extraction + fp16 cache), feature_data.py (cached
features as a DataModule), probe_module.py (multi-head probe training and metrics), benchmarks.py (the
protocols), results.py (the JSON), evaluate.py (the pipeline). The probes are in jepa_lit/models/probes.py.
"""
