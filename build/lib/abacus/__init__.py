"""Abacus: a distributed running-sum service, its local stack and its consistency checker."""
