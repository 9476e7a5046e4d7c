"""A standalone HTML report for a :class:`~securepipe.checks.Scorecard`.

One file, inline CSS, no scripts, no external assets (it opens offline and can be attached to a
ticket); every value that comes from the account or the configuration is escaped with
:func:`html.escape`, since bucket names, tags and policy statements are attacker-influenced.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from securepipe.checks import Scorecard

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1f2328}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem}
.meta{color:#57606a;font-size:.9rem}
table{border-collapse:collapse;width:100%;margin-top:.6rem;font-size:.88rem}
th,td{border:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.s{font-weight:700;text-align:center;white-space:nowrap;color:#fff}
.pass{background:#1a7f37}.fail{background:#cf222e}.error{background:#bc4c00}
.unverifiable{background:#6e7781}
.chip{display:inline-block;padding:.15rem .55rem;border-radius:1rem;margin-right:.4rem;
color:#fff;font-weight:600}
details{margin:.2rem 0}summary{cursor:pointer}
.sev-critical{font-weight:700;color:#cf222e}.sev-high{font-weight:700;color:#bc4c00}
code{font-size:.85em}.allow{background:#fddcdc}.deny{background:#e6f4ea}.mono{font-family:monospace}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def render(card: Scorecard, *, title: str = "securepipe scorecard") -> str:
    """Render ``card`` as one HTML document."""
    counts = card.counts()
    chips = "".join(f'<span class="chip {s}">{_e(n)} {_e(s)}</span>'
                    for s, n in counts.items() if n)
    where = card.endpoint or f"AWS {card.region}"
    rows = []
    for r in card.results:
        c = r.check
        resources = "".join(
            f'<tr><td class="s {_e(x.status)}">{_e(x.status)}</td><td class="mono">'
            f'{_e(card.config.label(x.resource))}</td><td>{_e(x.evidence)}</td></tr>'
            for x in r.resources)
        rows.append(
            f'<tr><td class="s {_e(r.status)}">{_e(r.status.upper())}</td>'
            f'<td class="sev-{_e(c.severity)}">{_e(c.severity)}</td><td>{_e(c.step)}</td>'
            f"<td><b>{_e(c.title)}</b><br><code>{_e(c.id)}</code>"
            f"<details><summary>why, how to fix, {len(r.resources)} resource(s)</summary>"
            f"<p><b>Why:</b> {_e(c.rationale)}</p><p><b>Fix:</b> {_e(c.remediation)}</p>"
            f"<p><b>Checklist:</b> {_e(c.checklist)}</p>"
            f"<table>{resources}</table></details></td>"
            f"<td>{_e(r.evidence)}</td></tr>")
    review = ""
    if card.access_review is not None:
        ar = card.access_review
        head = "".join(f"<th>{_e(p)}</th>" for p in ar.matrix.prefixes)
        body = []
        verdicts = {row["principal"]: row["verdict"] for row in ar.rows()}
        for name in ar.matrix.principals:
            cells = []
            for prefix in ar.matrix.prefixes:
                allowed = [a for a in ar.matrix.actions
                           if ar.matrix.decision(name, prefix, a).allowed]
                cls = "allow" if allowed else "deny"
                cells.append(f'<td class="{cls} mono">{_e("".join(a[0] for a in allowed))}'
                             "</td>")
            body.append(f'<tr><td class="mono">{_e(name)}</td>{"".join(cells)}'
                        f"<td>{_e(verdicts.get(name, ''))}</td></tr>")
        notes = "".join(f"<li>{_e(n)}</li>" for n in ar.notes)
        review = (f"<h2>Access review: <code>{_e(ar.bucket)}</code></h2>"
                  "<p class=meta>Letters are the allowed actions (Get, Put, List, Delete) on each "
                  "contractor prefix; red cells are allowed.</p>"
                  f"<table><tr><th>principal</th>{head}<th>verdict</th></tr>"
                  f"{''.join(body)}</table>" + (f"<ul>{notes}</ul>" if notes else ""))
    notes = "".join(f"<li>{_e(n)}</li>" for n in card.config.notes)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class=meta>account {_e(card.account_id)} &middot; {_e(where)}"
        f" &middot; {_e(card.started.strftime('%Y-%m-%d %H:%M:%S UTC'))} &middot; "
        f"{card.seconds:.1f} s &middot; exit code (fail on high) {card.exit_code('high')}</p>"
        f"<p>{chips}</p>"
        "<table><tr><th>status</th><th>severity</th><th>step</th><th>check</th>"
        f"<th>evidence</th></tr>{''.join(rows)}</table>{review}"
        + (f"<h2>Discovery notes</h2><ul>{notes}</ul>" if notes else "")
        + "</body></html>\n")
