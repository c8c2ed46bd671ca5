"""Evaluation harness: metrics, baselines, reports and the GuardDog side-by-side benchmark.

Needs the `eval` extra (scikit-learn, matplotlib) for the tree baseline and the plots;
the metrics themselves are plain Python.
"""
