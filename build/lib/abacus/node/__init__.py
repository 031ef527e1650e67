"""Abacus: a distributed running sum served by stateless Starlette nodes over one Redis key."""
