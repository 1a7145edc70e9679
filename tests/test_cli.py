"""What a brand team sees at the terminal when a config or a query is wrong."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from listener.cli import main


def test_config_check_reports_each_problem_with_file_and_line_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "watch.yaml"
    bad.write_text(
        "brands:\n  - name: Acme\n    queries:\n      - 'acme AND'\n    alert:\n      min_count: -1\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["config", "check", str(bad)])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert any(line.startswith(f"{bad}:4: brands[0].queries[0]:") for line in lines)
    assert any(line.startswith(f"{bad}:6: brands[0].alert.min_count:") for line in lines)


def test_config_check_accepts_a_good_file(tmp_path: Path) -> None:
    good = tmp_path / "watch.yaml"
    good.write_text("brands:\n  - name: Acme\n    queries: ['acme OR #acme']\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["config", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert "ok (1 brands, 1 watch queries, 0 sources)" in result.output


def test_search_with_a_syntax_error_shows_the_caret_under_the_column(tmp_path: Path) -> None:
    good = tmp_path / "watch.yaml"
    good.write_text("brands:\n  - name: Acme\n    queries: [acme]\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["search", "-c", str(good), 'acme AND "unclosed'])
    assert result.exit_code == 2
    query_line, caret_line = [line for line in result.output.splitlines() if line.startswith("  ")][:2]
    assert query_line.strip() == 'acme AND "unclosed'
    assert caret_line.index("^") == query_line.index('"')
