"""The documentation's examples run as written, and the docs cover the CLI and speak to users."""

import argparse
import os
import re
import shlex

import pytest

from distlda.cli import build_parser, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def code_blocks(text, language):
    """The bodies of the ``.. code-block:: LANGUAGE`` directives of a reST text, dedented."""
    blocks = []
    for m in re.finditer(rf"^( *)\.\. code-block:: {language}\n\n((?:\1 +.*\n|\n)+)", text, re.M):
        lines = m.group(2).rstrip("\n").splitlines()
        indent = min(len(l) - len(l.lstrip()) for l in lines if l.strip())
        blocks.append("\n".join(l[indent:] for l in lines) + "\n")
    return blocks


def test_readme_api_example_runs_as_written(tmp_path, monkeypatch):
    blocks = code_blocks(read("README.rst"), "python")
    assert len(blocks) == 1 and "load_sample()" in blocks[0]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(blocks[0], "README.rst", "exec"), namespace)
    lda = namespace["lda"]
    assert lda.num_docs == 3300 and lda.num_topics == 20
    assert (tmp_path / "model.npz").exists()


def test_readme_starts_with_the_contract_commands():
    text = read("README.rst")
    setup = text.index("Install, run, test")
    assert text.index("make demo", setup) < text.index("make test", setup) < text.index("Python API")


def test_quickstart_runs_as_written(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    text = read("docs", "quickstart.rst")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for i, block in enumerate(code_blocks(text, "python")):
        exec(compile(block, f"quickstart.rst block {i}", "exec"), namespace)
    assert (tmp_path / "convergence.png").exists()
    assert {"privé", "straßenverkehr".casefold(), "экономика"} <= set(
        namespace["notes"].dictionary.token2id)
    for block in code_blocks(text, "console"):
        for line in block.splitlines():
            assert line.startswith("$ distlda ")
            argv = shlex.split(line[len("$ distlda "):])
            assert main(argv + ["-q", "--distributed", "no"] if argv[0] == "train" else argv) == 0
    assert (tmp_path / "keys.tsv").exists() and (tmp_path / "notes_topics.tsv").exists()


def test_interop_recipes_are_the_files_tests_run():
    # every recipe of interop.rst is a docs/examples file that tests/test_interop.py runs
    text = read("docs", "interop.rst")
    included = re.findall(r"^\.\. literalinclude:: examples/(\w+)\.py$", text, re.M)
    files = {f[:-3] for f in os.listdir(os.path.join(ROOT, "docs", "examples")) if f.endswith(".py")}
    assert len(included) >= 4 and set(included) == files
    tests = read("tests", "test_interop.py")
    for name in included:
        assert f'run_recipe("{name}"' in tests, name
    assert not code_blocks(text, "python")  # no untested code in the page


def test_cli_page_lists_every_option():
    page = read("docs", "cli.rst")
    commands = build_parser()._subparsers._group_actions[0].choices
    for name, parser in commands.items():
        assert f"distlda {name}" in page
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or "-h" in action.option_strings:
                continue
            for option in action.option_strings:
                assert re.search(rf"(?:``|, ){re.escape(option)}\b", page), (name, option)


def test_docs_speak_to_users():
    pages = [read("README.rst")] + [read("docs", f) for f in os.listdir(os.path.join(ROOT, "docs"))
                                    if f.endswith(".rst")]
    for text in pages:
        for internal in ("shared/", "benchmarks/results", "this project's", "development VM",
                         "/work/"):
            assert internal not in text
    assert os.path.exists(os.path.join(ROOT, "docs", "conf.py"))
