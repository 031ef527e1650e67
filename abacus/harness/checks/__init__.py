"""The judge's independent checks, composed as Jepsen's `compose` does.

Each module is one check with a `NAME` and a `check(analysis) -> CheckResult`: it reads the
analysed history (abacus/harness/analysis.py), which no check writes, and returns its own
verdict and violations. Any one runs alone; abacus/harness/judge.py runs them all and merges.
"""
