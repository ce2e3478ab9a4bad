"""Print a scenario's runs side by side, then its targets, met or missed and by how much."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

Column = dict[str, str]  # row name -> the figure printed in it


@dataclass(frozen=True)
class Target:
    """One limit a run is held to."""

    what: str  # "people wait p95 <= 4 s"
    run: str  # the column it applies to
    figure: float
    limit: float
    unit: str = ""  # "s", "%" (figure and limit then fractions), or none
    at_least: bool = False  # the figure must reach the limit rather than stay under it

    @property
    def met(self) -> bool:
        if math.isnan(self.figure):
            return False
        return self.figure >= self.limit if self.at_least else self.figure <= self.limit

    def verdict(self) -> str:
        shown = show(self.figure, self.unit)
        if self.met:
            return f"met ({shown})"
        if math.isnan(self.figure):
            return "missed (no figure)"
        return f"missed by {show(abs(self.figure - self.limit), self.unit)} ({shown})"


def show(value: float, unit: str = "") -> str:
    """Format a figure: seconds to 2 places, shares as percents to 1 place."""
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if unit == "%":
        return f"{value:.1%}"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def triple(values: tuple[float, float, float]) -> str:
    """Format p50 / p95 / max."""
    return " / ".join(show(value) for value in values)


def print_scenario(title: str, about: str, columns: dict[str, Column], targets: list[Target]) -> list[Target]:
    """Print the scenario's heading, one column a run, and its targets; return the targets."""
    rows = list(dict.fromkeys(row for column in columns.values() for row in column))
    first = max(map(len, rows)) + 2
    widths = [max(len(name), *(len(column.get(row, "")) for row in rows)) + 3 for name, column in columns.items()]
    print(f"\n== {title}: {about}")
    print(" " * first + "".join(f"{name:>{width}}" for name, width in zip(columns, widths, strict=True)))
    for row in rows:
        cells = "".join(f"{column.get(row, ''):>{width}}"
                        for column, width in zip(columns.values(), widths, strict=True))
        print(f"{row:<{first}}{cells}")
    for target in targets:
        print(f"  target, {target.run}: {target.what}: {target.verdict()}")
    return targets


def print_spread(runs: dict[str, list[list[Target]]]) -> None:
    """Print each target's figure in every run of its scenario, its median, and how many runs met it."""
    print("\n== over the runs: each target's figure, run by run")
    for scenario, held in runs.items():
        for same in zip(*held, strict=True):  # one target, in each run
            first, figures = same[0], [target.figure for target in same]
            shown = ", ".join(show(figure, first.unit) for figure in figures)
            middle, met = show(statistics.median(figures), first.unit), sum(target.met for target in same)
            print(f"  {scenario}, {first.run}: {first.what}: {shown}; median {middle}; met in {met} of {len(same)}")
