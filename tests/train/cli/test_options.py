"""The command modules' shared options: library defaults shown in --help, given options, deprecated spellings."""
from __future__ import annotations

import dataclasses

import click
import pytest
from click.testing import CliRunner

from relaxomap.train.cli._options import LibraryDefault, deprecated_spelling, given, library_default, user_errors


@dataclasses.dataclass
class _Settings:
    steps: int = 7
    names: tuple = dataclasses.field(default_factory=lambda: ("a", "b"))


def _run(steps: int = 11, *, device: str = "auto") -> None:
    """A library function with defaults."""


def test_library_default_reads_dataclass_fields_and_function_parameters() -> None:
    here = "tests.train.cli.test_options"
    assert library_default(f"{here}:_Settings", "steps") == 7
    assert library_default(f"{here}:_Settings", "names") == ("a", "b")  # a default_factory's value
    assert library_default(f"{here}:_run", "device") == "auto"
    assert library_default("relaxomap.train.config:TrainConfig", "steps") == 20000
    with pytest.raises(ValueError, match=r"_run has no default for 'nope'"):
        library_default(f"{here}:_run", "nope")
    with pytest.raises(ValueError, match=r"TrainConfig has no default for 'store'"):
        library_default("relaxomap.train.config:TrainConfig", "store")


def test_help_shows_the_library_default_and_the_value_stays_none() -> None:
    seen = {}

    @click.command()
    @click.option("--steps", type=int, cls=LibraryDefault, default_from=("tests.train.cli.test_options:_run", "steps"),
                  help="Steps.")
    @click.option("--device", cls=LibraryDefault, default_from=("tests.train.cli.test_options:_run", "device"),
                  show_as=lambda v: f"{v} (CUDA > MPS > CPU)")
    def cmd(steps: int | None, device: str | None) -> None:
        seen.update(steps=steps, device=device)

    text = CliRunner().invoke(cmd, ["--help"]).output
    assert "Steps.  [default: 11]" in text and "[default: auto (CUDA > MPS > CPU)]" in text
    assert CliRunner().invoke(cmd, []).exit_code == 0 and seen == {"steps": None, "device": None}
    with pytest.raises(TypeError, match=r"option --steps must not set a default of its own \(it falls through "
                                        r"to m:f 'steps'\)"):
        click.option("--steps", cls=LibraryDefault, default=3, default_from=("m:f", "steps"))(lambda steps: None)


def test_given_drops_options_not_given() -> None:
    assert given(a=None, b=0, c="", d=None) == {"b": 0, "c": ""}


def test_deprecated_spelling_warns_and_refuses_both() -> None:
    @click.command()
    @click.option("--new", default=None)
    @click.option("--old", default=None)
    def cmd(new: str | None, old: str | None) -> None:
        click.echo(deprecated_spelling(new, old, new="--new", old="--old", command="cmd"))

    res = CliRunner().invoke(cmd, ["--old", "x"])
    assert res.stdout == "x\n"
    assert res.stderr == ("warning: --old is deprecated for `relaxomap cmd`; use --new (the old spelling will be "
                          "removed in the next release)\n")
    res = CliRunner().invoke(cmd, ["--new", "y"])
    assert (res.stdout, res.stderr) == ("y\n", "")
    res = CliRunner().invoke(cmd, ["--new", "y", "--old", "x"])
    assert res.exit_code == 2 and "--old is the deprecated spelling of --new; give --new only" in res.output
    assert deprecated_spelling(("a",), (), new="--n", old="--o", command="c") == ("a",)  # empty multiple = not given


def test_user_errors_become_one_line() -> None:
    @click.command()
    @user_errors
    def cmd() -> None:
        raise FileNotFoundError("input /x.nii.gz not found")

    res = CliRunner().invoke(cmd, [])
    assert res.exit_code == 1 and res.output == "Error: input /x.nii.gz not found\n"
