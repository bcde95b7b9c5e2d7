"""`lifecycle report` renders in a real headless browser (Debian's chromium) with no
script errors; the screenshot is kept in tests/artifacts/ (not versioned)."""

from __future__ import annotations

import base64
import csv
import io
import re
from pathlib import Path

from tests.browser import render
from tests.cli import lifecycle
from tests.test_catalog import catalog  # noqa: F401 - the fixture

ARTIFACTS = Path(__file__).parent / "artifacts"
TITLES = ("Stage funnel", "Stage flows", "Revenue and active customers, each month", "Churn and win-back, each month",
          "Time in stage", "Value pyramid", "Movement between value bands", "RFM grid", "Customers per stage, each day",
          "Cohort retention", "Chance still alive (BG/NBD or MBG/NBD)", "Value matrix", "Activity now",
          "Satisfaction and complaints")


def _section(dom: str, title: str) -> str:
    return dom.split(f"<h2>{title}</h2>")[1].split("</section>")[0]


def _csv(section: str, file_name: str) -> list[list[str]]:
    """The rows of the CSV a section's link with that file name holds."""
    data = re.search(rf'<a download="{re.escape(file_name)}" href="data:text/csv;charset=utf-8;base64,([^"]+)"',
                     section)
    assert data is not None, f"no {file_name} in the section"
    return list(csv.reader(io.StringIO(base64.b64decode(data.group(1)).decode())))


def test_the_report_renders_in_a_browser_without_script_errors(catalog, settings, tmp_path):  # noqa: F811
    page = tmp_path / "report.html"
    assert lifecycle(settings, "report", "--out", str(page)) == 0
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # opens with no network
    shown = render(page, ARTIFACTS / f"report-{'kafka' if settings.kafka else 'embedded'}.png")
    assert shown.console == []
    assert f'data-rendered="{len(TITLES)}"' in shown.dom
    for title in TITLES:
        assert f"<h2>{title}</h2>" in shown.dom
    assert "No value model fit yet" in shown.dom  # six customers: too few to fit
    # The funnel's table, as computed by hand in tests/test_catalog.py.
    assert "<td>first_time</td><td>2</td><td>4</td><td>80.0%</td>" in shown.dom
    funnel = _section(shown.dom, "Stage funnel")
    assert _csv(funnel, "stage-funnel.csv")[:2] == [
        ["stage", "customers now", "reached", "conversion from the rung below"], ["prospect", "1", "6", "-"]]
    # The customers behind the funnel, the most valuable first: a (300.00 EUR), b (50.00), d (40.00), c (10.00).
    behind = _csv(funnel, "stage-funnel-customers.csv")
    assert behind[0] == ["customer", "stage", "historical value (EUR)"]
    assert [row[0] for row in behind[1:]] == ["a", "b", "d", "c", "e", "f"] and behind[1][2] == "300.00"
    complaints = _csv(_section(shown.dom, "Satisfaction and complaints"), "satisfaction-and-complaints-customers.csv")
    assert complaints[1:] == [["d", "2025-01-15", "billing", "high"]], "the complaint still open"
    assert (ARTIFACTS / f"report-{'kafka' if settings.kafka else 'embedded'}.png").stat().st_size > 10_000


def test_the_report_escapes_what_it_shows(tmp_path):
    from projections.reading.charts import table as _table

    assert _table(("h",), [("<script>alert(1)</script>",)]) == (
        "<table><thead><tr><th>h</th></tr></thead><tbody><tr><td>&lt;script&gt;alert(1)&lt;/script&gt;</td></tr>"
        "</tbody></table>")


def test_the_demo_fits_the_value_models_and_writes_a_report_with_their_charts(settings, capsys):
    assert lifecycle(settings, "demo", "--customers", "300", "--days", "530") == 0  # ends mid-month
    err = capsys.readouterr().err
    assert f"the report, for people: {settings.home / 'report.html'}" in err and "fitted the value models" in err
    page = settings.home / "report.html"
    assert page.read_text().startswith("<!DOCTYPE html>")
    shown = render(page, ARTIFACTS / f"demo-report-{'kafka' if settings.kafka else 'embedded'}.png")
    assert shown.console == [] and f'data-rendered="{len(TITLES)}"' in shown.dom
    assert shown.overflowing == "", "every chart fits the page"
    for title in TITLES:
        section = _section(shown.dom, title)
        assert "<table>" in section and ".csv" in section, f"{title}: a table and its CSV"
    assert shown.smallest_text_px >= 9, shown.dom.split("data-smallest-text-is=")[1][:60]
    cohorts = _section(shown.dom, "Cohort retention")
    assert "*</text>" in cohorts and "not over yet" in cohorts, "the partial month is marked"
    pyramid = _section(shown.dom, "Value pyramid")
    assert "value (EUR)" in pyramid and re.search(r"<td>\d{1,3}(,\d{3})*\.\d\d</td>", pyramid), "money as people write it"
    assert "No value model fit yet" not in shown.dom
    # The P(alive) chart has one bar per tenth; the value matrix a cell per quadrant.
    alive = _section(shown.dom, "Chance still alive (BG/NBD or MBG/NBD)")
    assert alive.count("<rect") == 10 and "From the value model fitted as of" in alive
    matrix = _section(shown.dom, "Value matrix")
    assert matrix.count("<rect") == 4 and "most_valuable" in matrix


def test_the_report_refuses_a_range_that_ends_before_it_starts(catalog, settings, tmp_path, capsys):  # noqa: F811
    page = tmp_path / "report.html"
    assert lifecycle(settings, "report", "--out", str(page), "--since", "2026-06-01", "--until", "2026-01-01") == 2
    assert "--since 2026-06-01 is not before --until 2026-01-01" in capsys.readouterr().err
    assert not page.exists()


def test_stages_and_activities_keep_their_colours_and_activity_its_order():
    from projections.reading.charts import ACTIVITY
    from projections.reading.charts import bars as _bars
    from projections.reading.charts import lines as _lines

    bars = _bars([("churned", 3), ("active", 9)], {"active": "#111111", "churned": "#222222"})
    assert bars.index('fill="#222222"') < bars.index('fill="#111111"'), "each bar its own colour, in the order given"
    assert ACTIVITY == ("active", "drowsy", "half_asleep", "dormant", "churned")
    one = _lines({"qualified": [("2025-01-01", 1)]}, {"qualified": "#4bacc6", "loyal": "#5a9e5a"})
    two = _lines({"loyal": [("2025-01-01", 1)], "qualified": [("2025-01-01", 2)]},
                 {"qualified": "#4bacc6", "loyal": "#5a9e5a"})
    assert 'stroke="#4bacc6"' in one and 'stroke="#4bacc6"' in two, "a stage's colour does not depend on the others"
