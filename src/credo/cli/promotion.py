"""promotion review SLATE.csv: rank a slate on performance and integrity."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from credo.cli.common import AsOf, app, err, read_text, refusals, register

promotion_app = typer.Typer(no_args_is_help=True, help="Promotion reviews.")
app.add_typer(promotion_app, name="promotion")

COLUMNS = ["rank", "subject_id", "performance", "integrity", "combined", "eligible", "blocked_by"]


def read_slate(text: str, source: str) -> list[Any]:
    """Slate rows from CSV text with columns subject_id and performance (0 to 100)."""
    from credo.domain.errors import Problem, ValidationError
    from credo.services.promotion import Candidate

    reader = csv.DictReader(io.StringIO(text))
    missing = {"subject_id", "performance"} - set(reader.fieldnames or [])
    if missing:
        raise ValidationError(
            f"{source}: the header lacks {', '.join(sorted(missing))}",
            [Problem("line 1", f"missing column {name!r}") for name in sorted(missing)],
        )
    slate, problems = [], []
    for line, row in enumerate(reader, start=2):
        raw = (row.get("performance") or "").strip()
        try:
            performance = float(raw)
        except ValueError:
            problems.append(Problem(f"line {line}.performance", f"{raw!r} is not a number"))
            continue
        slate.append(Candidate((row.get("subject_id") or "").strip(), performance, f"line {line}"))
    if problems:
        raise ValidationError(f"{source}: the slate was refused", problems)
    return slate


def _cells(row: dict[str, Any]) -> list[str]:
    return [
        str(row["rank"] or "-"),
        row["subject_id"],
        f"{row['performance']:g}",
        f"{row['integrity']:.2f}",
        f"{row['combined']:.2f}",
        "yes" if row["eligible"] else "no",
        ", ".join(b["measure"] for b in row["blocked_by"]) or "-",
    ]


@promotion_app.command("review")
def promotion_review(
    slate: Path,
    authority: Annotated[str, typer.Option("--authority", help="The asking authority's id.")],
    as_of: AsOf = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """Rank a slate (CSV: subject_id, performance); each candidate is one logged inquiry."""
    from credo.services.promotion import review_slate

    if as_json and as_csv:
        raise typer.BadParameter("choose --json or --csv", param_hint="--csv")
    with refusals():
        candidates = read_slate(read_text(slate), str(slate))
        result = review_slate(
            register(),
            candidates,
            authority_id=authority,
            as_of=as_of,  # type: ignore[arg-type]
            channel="cli",
        )
    rows = result["candidates"]
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    if as_csv:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(_cells(row) for row in rows)
        typer.echo(out.getvalue(), nl=False)
        return
    weights = result["weights"]
    typer.echo(
        f"promotion review as of {result['as_of']} ({result['policy']}): performance "
        f"x{weights['performance']:g}, integrity x{weights['integrity']:g}"
    )
    widths = [max(len(c), *(len(_cells(r)[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in rows:
        cells = _cells(row)
        typer.echo("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    ineligible = [r for r in rows if not r["eligible"]]
    if ineligible:
        err.print(f"{len(ineligible)} not eligible (blocked by a measure)", markup=False)
