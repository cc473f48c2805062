"""A subject's file as a readable document: HTML (Jinja2) or PDF (fpdf2)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

_env = Environment(
    loader=PackageLoader("credo", "templates"), autoescape=select_autoescape(["html"])
)


def file_html(data: dict[str, Any]) -> str:
    """The whole file as one printable HTML page."""
    return _env.get_template("file.html").render(f=data)


def _latin(text: Any) -> str:
    return str(text if text is not None else "").encode("latin-1", "replace").decode("latin-1")


def file_pdf(data: dict[str, Any]) -> bytes:
    """The whole file as a PDF a person could print."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def heading(text: str) -> None:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 12)
        pdf.multi_cell(width, 7, _latin(text), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)

    def line(text: str) -> None:
        pdf.multi_cell(width, 5, _latin(text), new_x="LMARGIN", new_y="NEXT")

    subject, standing = data["subject"], data["standing"]
    pdf.set_font("Helvetica", "B", 15)
    pdf.multi_cell(
        width,
        8,
        _latin(f"Everything credo holds on {subject['name']}"),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_font("Helvetica", "", 9)
    line(
        f"Subject {subject['subject_id']} - {subject.get('position') or ''} "
        f"{subject.get('organisation') or ''} - as of {data['as_of']}, policy {data['policy']}"
    )
    heading("Standing")
    line(
        f"Score {standing['score']}, grade {standing['grade']}. Lists: "
        f"{', '.join(standing['lists']) or 'none'}. Measures: "
        f"{', '.join(standing['measures']) or 'none'}."
    )
    for item in standing["explanation"]:
        capped = " (capped)" if item["capped"] else ""
        line(
            f"  {item['points']:+d}{capped}  {item['category']}  {item['authority']}/"
            f"{item['reference']}  counts until {item['effective_until']}"
        )
    heading(f"Records ({len(data['records'])})")
    for r in data["records"]:
        line(
            f"{r['authority']}/{r['reference']} v{r['version']} - "
            f"{r['category_name'] or r['category']}"
            f" - decided {r['decided_on']} - {r['legal_basis']} - {r['state']}, until "
            f"{r['effective_until']}. {r['summary']}"
        )
    heading("Lists and measures over time")
    for e in data["history"] or [{"at": "", "event": "no changes", "list": ""}]:
        line(f"{e['at']} {e['event']} {e.get('list') or e.get('measure') or ''}")
    heading(f"Objections, repairs and reviews ({len(data['cases'])})")
    for c in data["cases"]:
        line(
            f"Case {c['id']} {c['kind']} filed {c['filed_on']}, due {c['due_on']}: {c['status']}"
            f"{' - ' + c['reasons'] if c['reasons'] else ''}"
        )
    heading(f"Who looked at this file ({len(data['inquiries'])})")
    for q in data["inquiries"]:
        line(f"{q['at']} {q['authority']} for {q['purpose']} ({q['channel']})")
    heading(f"Notices ({len(data['notices'])})")
    for n in data["notices"]:
        line(f"{n['created_at']} {n['title']}: {n['text']} [{n['delivery']}]")
    return bytes(pdf.output())
