"""`lifecycle report` renders in a real headless browser (Debian's chromium) with no
script errors; the screenshot is kept in tests/artifacts/ (not versioned)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.browser import render
from tests.cli import lifecycle
from tests.test_catalog import catalog  # noqa: F401 - the fixture

ARTIFACTS = Path(__file__).parent / "artifacts"
TITLES = ("Stage funnel", "Stage flows", "Value pyramid", "RFM grid", "Customers per stage, each day",
          "Cohort retention", "Chance still alive (BG/NBD or MBG/NBD)", "Value matrix", "Activity now",
          "Satisfaction and complaints")


def test_the_report_renders_in_a_browser_without_script_errors(catalog, settings, tmp_path):  # noqa: F811
    page = tmp_path / "report.html"
    assert lifecycle(settings, "report", "--out", str(page)) == 0
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # opens with no network
    shown = render(page, ARTIFACTS / f"report-{'kafka' if settings.kafka else 'embedded'}.png")
    assert shown.console == []
    assert 'data-rendered="10"' in shown.dom
    for title in TITLES:
        assert f"<h2>{title}</h2>" in shown.dom
    assert "No value model fit yet" in shown.dom  # six customers: too few to fit
    # The funnel's table, as computed by hand in tests/test_catalog.py.
    assert "<td>first_time</td><td>2</td><td>4</td><td>80.0%</td>" in shown.dom
    assert (ARTIFACTS / f"report-{'kafka' if settings.kafka else 'embedded'}.png").stat().st_size > 10_000


def test_the_report_escapes_what_it_shows(tmp_path):
    from projections.reading.report import _table

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
    assert shown.console == [] and 'data-rendered="10"' in shown.dom
    assert shown.overflowing == "", "every chart fits the page"
    assert shown.smallest_text_px >= 9, shown.dom.split("data-smallest-text-is=")[1][:60]
    cohorts = shown.dom.split("<h2>Cohort retention</h2>")[1].split("</section>")[0]
    assert "*</text>" in cohorts and "not over yet" in cohorts, "the partial month is marked"
    pyramid = shown.dom.split("<h2>Value pyramid</h2>")[1].split("</section>")[0]
    assert "value (EUR)" in pyramid and re.search(r"<td>\d{1,3}(,\d{3})*\.\d\d</td>", pyramid), "money as people write it"
    assert "No value model fit yet" not in shown.dom
    # The P(alive) chart has one bar per tenth; the value matrix a cell per quadrant.
    alive = shown.dom.split("<h2>Chance still alive (BG/NBD or MBG/NBD)</h2>")[1].split("</section>")[0]
    assert alive.count("<rect") == 10 and "From the value model fitted as of" in alive
    matrix = shown.dom.split("<h2>Value matrix</h2>")[1].split("</section>")[0]
    assert matrix.count("<rect") == 4 and "most_valuable" in matrix


def test_the_report_refuses_a_range_that_ends_before_it_starts(catalog, settings, tmp_path, capsys):  # noqa: F811
    page = tmp_path / "report.html"
    assert lifecycle(settings, "report", "--out", str(page), "--since", "2026-06-01", "--until", "2026-01-01") == 2
    assert "--since 2026-06-01 is not before --until 2026-01-01" in capsys.readouterr().err
    assert not page.exists()


def test_stages_and_activities_keep_their_colours_and_activity_its_order():
    from projections.reading.report import ACTIVITY, _bars, _lines

    bars = _bars([("churned", 3), ("active", 9)], {"active": "#111111", "churned": "#222222"})
    assert bars.index('fill="#222222"') < bars.index('fill="#111111"'), "each bar its own colour, in the order given"
    assert ACTIVITY == ("active", "drowsy", "half_asleep", "dormant", "churned")
    one = _lines({"qualified": [("2025-01-01", 1)]}, {"qualified": "#4bacc6", "loyal": "#5a9e5a"})
    two = _lines({"loyal": [("2025-01-01", 1)], "qualified": [("2025-01-01", 2)]},
                 {"qualified": "#4bacc6", "loyal": "#5a9e5a"})
    assert 'stroke="#4bacc6"' in one and 'stroke="#4bacc6"' in two, "a stage's colour does not depend on the others"
