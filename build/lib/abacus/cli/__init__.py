"""Command-line entry points: abacus-stack, abacus-check, abacus-bench (and the make targets).

scripts/ holds thin wrappers of the same functions.
"""
