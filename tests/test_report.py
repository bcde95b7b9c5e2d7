"""`lifecycle report` renders in a real headless browser (Debian's chromium) with no
script errors; the screenshot is kept in tests/artifacts/ (not versioned)."""

from __future__ import annotations

from pathlib import Path

from tests.browser import render
from tests.cli import lifecycle
from tests.test_catalog import catalog  # noqa: F401 - the fixture

ARTIFACTS = Path(__file__).parent / "artifacts"
TITLES = ("Stage funnel", "Stage flows", "Value pyramid", "RFM grid", "Customers per stage, each day",
          "Cohort retention", "Chance still alive (BG/NBD)", "Value matrix", "Activity now",
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
    assert lifecycle(settings, "demo", "--customers", "300", "--days", "365") == 0
    err = capsys.readouterr().err
    assert f"the report, for people: {settings.home / 'report.html'}" in err and "fitted the value models" in err
    page = settings.home / "report.html"
    assert page.read_text().startswith("<!DOCTYPE html>")
    shown = render(page, ARTIFACTS / f"demo-report-{'kafka' if settings.kafka else 'embedded'}.png")
    assert shown.console == [] and 'data-rendered="10"' in shown.dom
    assert "No value model fit yet" not in shown.dom
    # The P(alive) chart has one bar per tenth; the value matrix a cell per quadrant.
    alive = shown.dom.split("<h2>Chance still alive (BG/NBD)</h2>")[1].split("</section>")[0]
    assert alive.count("<rect") == 10 and "From the value model fitted as of" in alive
    matrix = shown.dom.split("<h2>Value matrix</h2>")[1].split("</section>")[0]
    assert matrix.count("<rect") == 4 and "most_valuable" in matrix
