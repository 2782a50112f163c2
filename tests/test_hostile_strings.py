"""Strings a sweep's user or their code controls, shown where tuner shows them: choice
values, an exception's text and reported metric names with HTML, Rich markup and
terminal escape sequences in them, through the real `tuner` command. In a terminal they
are text, never instructions; in report.html, opened by a real headless browser, they
are text, never markup or script."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from tests.conftest import run_cli
from tuner.tracking.progress import shown

pytestmark = pytest.mark.e2e

# What a terminal would obey: OSC 0 retitles the window, CSI 2J clears the screen.
RETITLE, CLEAR = "\x1b]0;pwned\x07", "\x1b[2J"
MARKUP = "[bold red]RED[/bold red][link=http://evil.example]x[/link]"
# Each marks the page if a browser runs it: an attribute on <body>, read back from its DOM.
IMG = "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
SCRIPT = "</script><script>document.body.setAttribute('data-pwned','script')</script>"
BEST = f"{IMG}{SCRIPT}{MARKUP}{RETITLE}{CLEAR}"
FAILS = f"fails{RETITLE}"
ERROR = f"boom <b>bold</b> {SCRIPT} {MARKUP} {RETITLE}{CLEAR}"
CODE = f"""
from ray import tune

def fit(config):
    if config["kind"] == {FAILS!r}:
        raise ValueError({ERROR!r})
    for epoch in range(2):
        # Names MLflow refuses: a path out of the run's folder, an escape sequence.
        tune.report({{"score": 1.0 + epoch, "epoch": epoch + 1, "../../escaped": 1.0,
                     {CLEAR!r}: 2.0}})
"""
SWEEP = {
    "name": "hostile",
    "trainable": "user_train:fit",
    "metric": "score",
    "mode": "max",
    "num_samples": 1,
    "searcher": {"kind": "grid"},
    "scheduler": {"kind": "fifo"},
    "max_concurrent_trials": 1,
    "params": {"kind": {"type": "grid", "values": [BEST, FAILS]}},
    "config": {"note": SCRIPT},
}


def hostile_sweep(folder: Path) -> Path:
    (folder / "user_train.py").write_text(CODE)
    (folder / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    return folder


def assert_inert(output: str) -> None:
    """Nothing of the user's reaches the terminal as a sequence or as markup."""
    assert RETITLE[:-1] not in output and CLEAR not in output, repr(output)
    assert "\\x1b]0;pwned" in output and "\\x1b[2J" in output
    assert "]8;" not in output  # no hyperlink made of [link=...]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = hostile_sweep(tmp_path_factory.mktemp("hostile"))
    done = run_cli("run", "sweep.yaml", cwd=folder)
    assert done.returncode == 0, done.stderr
    (folder / "run.out").write_text(done.stdout)
    return folder


def test_trial_lines_and_summary_show_user_strings_as_text(swept: Path) -> None:
    out = (swept / "run.out").read_text()
    assert "\x1b" not in out, repr(out)  # not a terminal: tuner itself writes no escapes
    assert_inert(out)
    [finished] = [line for line in out.splitlines() if " finished at epoch" in line]
    assert MARKUP in finished and IMG in finished  # shown as written, markup and all
    [failed] = [line for line in out.splitlines() if "failed before its first result" in line]
    assert f"ValueError: boom <b>bold</b> {SCRIPT} {MARKUP} \\x1b]0;pwned" in failed
    assert "  kind = <img" in out and MARKUP in out  # the summary's best params
    assert not (swept.parent / "escaped").exists()


def test_best_shows_the_choice_as_text(swept: Path) -> None:
    done = run_cli("best", "hostile", cwd=swept)
    assert done.returncode == 0, done.stderr
    assert_inert(done.stdout)
    assert f"  kind = {IMG}{SCRIPT}{MARKUP}\\x1b]0;pwned" in done.stdout


def test_the_live_table_shows_user_strings_as_text(tmp_path: Path) -> None:
    # TTY_COMPATIBLE=1: Rich takes the pipe for a terminal, so the live table is drawn.
    # COLUMNS: wide enough that no cell wraps.
    env = {"TTY_COMPATIBLE": "1", "COLUMNS": "500"}
    done = run_cli("run", "sweep.yaml", cwd=hostile_sweep(tmp_path), env=env)
    assert done.returncode == 0, done.stderr
    assert_inert(done.stdout)
    assert f"{IMG}{SCRIPT}{MARKUP}\\x1b]0;pwned" in done.stdout


def test_a_cell_is_text_not_markup() -> None:
    console = Console(force_terminal=True, width=500)
    with console.capture() as captured:
        console.print(shown(BEST))
    assert_inert(captured.get())
    assert MARKUP in captured.get()


def test_a_sweep_whose_trials_all_fail_ends_on_an_escaped_line(tmp_path: Path) -> None:
    (tmp_path / "user_train.py").write_text(f"def fit(config):\n    raise ValueError({ERROR!r})\n")
    sweep = {**SWEEP, "num_samples": 3, "searcher": {"kind": "random"}}
    sweep["params"] = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    done = run_cli("run", "sweep.yaml", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    [line] = [x for x in done.stderr.splitlines() if x.startswith("error: ")]
    assert_inert(line)
    assert line.endswith(
        f"all failed with ValueError: boom <b>bold</b> {SCRIPT} {MARKUP} \\x1b]0;pwned\\x07\\x1b[2J"
    )


class Page(HTMLParser):
    """What a page shows as text, and every attribute on its <body>."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.body: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.body = dict(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def browser_dom(page: Path, profile: Path) -> Page:
    """The page's DOM after a real headless Chromium loaded it and ran what it runs."""
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    if browser is None:
        pytest.skip("no Chromium on this machine to open the report in")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}"]
    done = subprocess.run(
        [browser, *flags, "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    parsed = Page()
    parsed.feed(done.stdout)
    return parsed


def test_the_report_shows_user_strings_as_text_in_a_browser(swept: Path) -> None:
    # The probe itself: a page that does not escape them is marked.
    control = swept / "control.html"
    control.write_text(f"<!doctype html><html><body><p>{IMG}</p></body></html>")
    assert browser_dom(control, swept / "profile").body.get("data-pwned") == "img"
    done = run_cli("report", "hostile", "--out", "out", cwd=swept)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    page = browser_dom(swept / "out" / "report.html", swept / "profile")
    assert "data-pwned" not in page.body
    assert f"{IMG}{SCRIPT}{MARKUP}" in "".join(page.text)


TEX_CODE = """
from ray import tune

def fit(config):
    for epoch in range(2):
        tune.report({"score": config["x"] + epoch, "epoch": epoch + 1})
"""


def test_choices_written_as_tex_are_drawn_as_written(tmp_path: Path) -> None:
    # matplotlib reads "$...$" in a label as TeX: this choice once cost the two plots
    # that label the params with it ("not drawn: ValueError: Unknown symbol").
    (tmp_path / "user_train.py").write_text(TEX_CODE)
    sweep = {
        **SWEEP,
        "name": "tex",
        "num_samples": 6,
        "searcher": {"kind": "optuna", "sampler": "random", "seed": 0},
        "params": {
            "kind": {"type": "categorical", "choices": ["$\\undefinedcmd$", "$x^2$"]},
            "x": {"type": "float", "low": 0.0, "high": 1.0},
        },
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    done = run_cli("run", "sweep.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = run_cli("report", "tex", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "not drawn" not in done.stdout + done.stderr
    assert "(5 plots)" in done.stdout
