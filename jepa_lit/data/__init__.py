"""Datasets and DataModules: the embedded synthetic motion data and the real video datasets."""
