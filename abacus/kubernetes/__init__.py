"""Abacus on Kubernetes: every object, built from the configuration all stacks share.

The nginx files and redis.conf of `abacus/conf/` go into ConfigMaps as they are, so there is one
source of each. `manifests.documents()` is the whole set; `scripts/render_kubernetes.py` writes it
to `kubernetes/`, which is committed (no tool but kubectl is needed to apply it), and
tests/test_kubernetes.py holds the committed files to a fresh rendering.
"""
