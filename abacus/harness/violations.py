"""What a check finds: violations of a named kind, and each check's own result.

The judge composes independent checks (abacus/harness/checks/); each returns a `CheckResult`,
and the verdict merges them. The kinds are ranked: the headline of an inconsistent verdict is
the highest-ranked kind found, because a wrong final sum explains wrong new_sum values, not the
other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LOST_UPDATE = "lost update"
APPLIED_TWICE = "add applied twice"
FAILED_APPLIED = "failed add applied"
SURPLUS = "unexplained surplus"
NO_ORDER = "new_sum values fit no sequential order"
STALE_READ = "stale read"
BAD_READ = "read fits no sequential order"

# Ranked: the headline of an inconsistent verdict is the first of these that was found.
FAULTS = (LOST_UPDATE, APPLIED_TWICE, FAILED_APPLIED, SURPLUS, NO_ORDER, STALE_READ, BAD_READ)


@dataclass(frozen=True)
class Violation:
    kind: str
    detail: str


@dataclass
class CheckResult:
    """One check's own verdict over a history."""

    name: str  # the check's name, as the report labels its line
    summary: str  # one line for a person: what was checked and what was found
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.violations
