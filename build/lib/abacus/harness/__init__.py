"""Abacus test harness: judge any server of the Abacus API, and measure it.

Everything here talks only to the public HTTP API, so it can judge any deployment.
"""
