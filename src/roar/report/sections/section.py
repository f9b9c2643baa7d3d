"""What a report section is: one paper's part of the report, which gathers its rows from the report's data,
draws its figures, writes its CSV tables and renders its HTML. A new paper's section is one new module
with one ``Section`` in it, listed in ``roar.report.sections.SECTIONS``."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Table:
    """A CSV of the report folder. ``always``: written even without rows (a header, so a script finds it);
    otherwise a table without rows is removed."""

    name: str
    columns: list
    rows: list
    comment: str = ""
    always: bool = False


def nothing(*_) -> list:
    return []


@dataclass(frozen=True)
class Section:
    """One part of the report page. Every function takes the report's data (roar.report.run.gather), where
    this section's own rows are ``data[name]`` (what ``gather`` returned).

    - ``gather(data)``: the section's rows, from the common data (runs, summary, evaluations, ...), or None;
    - ``html(data)``: its HTML (empty: the section has nothing to show and is left out);
    - ``figures(data, out, palette)``: [(path, caption)] of the figures drawn into ``out``;
    - ``tables(data)``: [Table] it writes; ``table_names``: every CSV it may write (also when it removes one).
    """

    name: str
    title: str
    gather: Callable | None = None
    html: Callable = lambda data: ""
    figures: Callable = nothing
    tables: Callable = nothing
    table_names: tuple = field(default=())


def drawn_if(path: Path | None, caption: str) -> list:
    """[(path, caption)] of a figure that was drawn, else [] (a plot function returns None without data)."""
    return [(path, caption)] if path else []


def keep(figures: list, path: Path | None, caption: str) -> None:
    """Add a figure that was drawn (a plot function returns None where it has no data)."""
    if path:
        figures.append((path, caption))
