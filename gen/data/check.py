"""`gen check-data DIR`: every problem of a metadata.jsonl data set, with its row, and a summary.

It runs the data loader's own checks (gen.data.records.read_folder for rows, gen.data.images for files), so what
it reports is exactly what training would skip. A FIFO or device is never opened and a decompression bomb
is refused from its header, so it returns in seconds on any folder.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

from gen.core.terminal import printable
from gen.data.images import EXIF_ORIENTATION, UNREADABLE, ImageRejected, decode_rgb, open_image, skip_reason
from gen.data.records import DataError, SkipLog, read_folder

LEVELS = ("error", "warning", "info")  # error: the row is skipped; warning: used, but look at it; info: used as is


@dataclass
class Problem:
    row: int | None  # metadata.jsonl line number
    file_name: str
    reason: str  # the category counted in summaries, as in training's skip counts
    level: str = "error"
    detail: str = ""


@dataclass
class Report:
    folder: Path
    total: int = 0  # non-blank rows of metadata.jsonl
    usable: int = 0  # rows training would use
    problems: list[Problem] = field(default_factory=list)

    def counts(self, level: str) -> collections.Counter[str]:
        return collections.Counter(p.reason for p in self.problems if p.level == level)


def check_image(path: Path) -> list[Problem]:
    """The problems of one image file (row and name left blank): what gen.data.read_rgb would refuse or change."""
    try:
        with open_image(path) as im:
            orientation = im.getexif().get(EXIF_ORIENTATION, 1)  # header data, nothing decoded
            _, note = decode_rgb(im)  # decodes every pixel: a truncated file fails only here
    except ImageRejected as err:
        return [Problem(None, "", err.reason, "error", err.detail)]
    except UNREADABLE as err:
        return [Problem(None, "", skip_reason(err), "error", str(err))]
    found = [Problem(None, "", note, "warning")] if note else []
    if orientation != 1:
        found.append(Problem(None, "", "EXIF-rotated: turned upright when loading", "info", f"orientation {orientation}"))
    return found


def check_folder(folder: str | Path) -> Report:
    """Check every row of FOLDER/metadata.jsonl (all splits); raises FileNotFoundError/DataError without one."""
    folder = Path(folder)
    skips = SkipLog(warn=False)
    records = read_folder(folder, split=None, skips=skips)
    report = Report(folder, total=len(records) + len(skips.items))
    report.problems = [Problem(i.get("row"), i["file_name"], i["reason"]) for i in skips.items]
    first_row: dict[Path, int] = {}
    root = folder.resolve()
    for rec in records:
        name = str(rec.path.relative_to(root))
        if rec.path in first_row:  # the same file twice (also through ./ or a symlink): trained on twice as often
            report.problems.append(Problem(rec.row, name, "duplicate file_name", "warning",
                                           f"same file as row {first_row[rec.path]}"))
        first_row.setdefault(rec.path, rec.row)
        found = check_image(rec.path)
        for p in found:
            p.row, p.file_name = rec.row, name
        report.problems += found
        report.usable += not any(p.level == "error" for p in found)
    report.problems.sort(key=lambda p: (p.row if p.row is not None else -1, LEVELS.index(p.level)))
    return report


def _by_reason(counts: collections.Counter[str]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in counts.most_common())


def format_summary(source: Report | SkipLog, usable: int | None = None) -> str:
    """One line: usable rows, then counts by reason. From a Report, or from training's SkipLog (pass `usable`)."""
    if isinstance(source, Report):
        head = f"{source.folder}: {source.usable} of {source.total} rows usable"
        parts = [(level, source.counts(level)) for level in LEVELS]
    else:
        head = f"data: {usable} items usable" if usable is not None else "data"
        parts = [("skipped", source.counts), ("warning", source.notes)]
    tail = "; ".join(f"{label}: {_by_reason(c)}" for label, c in parts if c)
    return f"{head}; {tail}" if tail else f"{head}; no problems found"


def run(folder: str | Path) -> int:
    """The CLI: print each problem and the summary; exit status 1 only when no row is usable.

    Every line goes through `printable`: file names, PIL's details and the folder are the data set's text,
    and one escape sequence in them would otherwise reach the terminal."""
    try:
        report = check_folder(folder)
    except (FileNotFoundError, DataError) as err:
        print(printable(f"error: {err}"))
        return 1
    for p in report.problems:
        row = f"row {p.row}" if p.row is not None else "-"
        print(printable(f"{row:>10}  {p.level:<7}  {p.file_name}: {p.reason}" + (f" ({p.detail})" if p.detail else "")))
    print(printable(format_summary(report)))
    return 0 if report.usable else 1
