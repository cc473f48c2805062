"""Policy versions: a required comment, and list / show / diff over the stored versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from credo.cli import app
from credo.domain.errors import NotFoundError, ValidationError
from credo.services.policies import activate_policy
from credo.services.policy_history import (
    activations,
    diff_versions,
    find_version,
    list_versions,
)
from credo.services.register import Register
from tests.factories import WORKED_POLICY, example_policy

STRICTER = WORKED_POLICY.replace('version = "1"', 'version = "2"').replace("min = 900", "min = 950")


@pytest.mark.parametrize("comment", ["", "   ", "\n"])
def test_activation_without_a_comment_is_refused_naming_the_field(
    register: Register, comment: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        activate_policy(register, WORKED_POLICY, actor="test", comment=comment)
    assert [p.location for p in caught.value.problems] == ["comment"]
    assert list_versions(register) == []


def test_versions_keep_their_text_author_and_comment(register: Register) -> None:
    activate_policy(register, WORKED_POLICY, actor="alice", comment="  first rules ")
    activate_policy(register, STRICTER, actor="bob", comment="C from 950")
    first, second = list_versions(register)
    assert (first.label, first.active, first.activated_by, first.comment) == (
        "worked@1",
        False,
        "alice",
        "first rules",
    )
    assert (second.label, second.active, second.comment) == ("worked@2", True, "C from 950")
    assert first.text == WORKED_POLICY
    assert find_version(register, "worked@2").id == second.id
    assert find_version(register, f"#{first.id}").label == "worked@1"
    with pytest.raises(NotFoundError):
        find_version(register, "worked@9")


def test_history_keeps_every_activation_including_reactivations(register: Register) -> None:
    second = WORKED_POLICY.replace('version = "1"', 'version = "2"')
    activate_policy(register, WORKED_POLICY, actor="ana", comment="first rules")
    activate_policy(register, second, actor="bo", comment="stricter")
    activate_policy(register, WORKED_POLICY, actor="cy", comment="back to the first")
    found = [(a.policy, a.previous, a.actor, a.comment) for a in activations(register)]
    assert found == [
        ("worked@1", None, "ana", "first rules"),
        ("worked@2", "worked@1", "bo", "stricter"),
        ("worked@1", "worked@2", "cy", "back to the first"),
    ]


def test_diff_of_two_stored_versions_names_the_changed_grade(
    register: Register, tmp_path: Path
) -> None:
    activate_policy(register, WORKED_POLICY, actor="t", comment="one")
    activate_policy(register, STRICTER, actor="t", comment="two")
    before, after, diff = diff_versions(register, "worked@1", "worked@2")
    assert (before.source, after.source) == ("version #1", "version #2")
    assert [(c.section, c.key) for c in diff.changes] == [("policy", ""), ("grades", "C")]
    [grade] = diff.section("grades")
    assert (grade.fields[0].old, grade.fields[0].new) == (900, 950)
    # a file on one side, a stored version on the other
    path = tmp_path / "stricter.toml"
    path.write_text(STRICTER, encoding="utf-8")
    _, file_side, same = diff_versions(register, "2", str(path))
    assert file_side.source == f"file {path}"
    assert same.identical


# ---------------------------------------------------------------------- command line


def run(home: Path, *args: str) -> Result:
    env = {"CREDO_HOME": str(home), "CREDO_TODAY": "2026-03-15", "CREDO_DATABASE_URL": None}
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def cli_home(tmp_path: Path) -> Path:
    """An embedded register with worked@1 then the example policy activated."""
    home = tmp_path / "home"
    worked = tmp_path / "worked.toml"
    worked.write_text(WORKED_POLICY, encoding="utf-8")
    example = tmp_path / "example.toml"
    example.write_text(example_policy(), encoding="utf-8")
    assert run(home, "policy", "activate", str(worked), "--comment", "first").exit_code == 0
    assert run(home, "policy", "activate", str(example), "--comment", "go live").exit_code == 0
    return home


def test_cli_activate_needs_a_comment(tmp_path: Path) -> None:
    path = tmp_path / "worked.toml"
    path.write_text(WORKED_POLICY, encoding="utf-8")
    missing = run(tmp_path / "home", "policy", "activate", str(path))
    assert missing.exit_code == 2
    assert "--comment" in missing.stderr
    blank = run(tmp_path / "home", "policy", "activate", str(path), "--comment", " ")
    assert blank.exit_code == 1
    assert "comment: must not be empty" in blank.stderr


def test_cli_list_marks_the_active_version(cli_home: Path) -> None:
    result = run(cli_home, "policy", "list")
    assert result.exit_code == 0
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["#", "policy", "active", "activated", "at", "by", "comment"]
    assert first.split()[:2] == ["1", "worked@1"] and first.endswith("first")
    assert second.split()[:3] == ["2", "example-city@2026.1", "*"]
    assert second.endswith("go live")
    rows = [
        json.loads(line)
        for line in run(cli_home, "policy", "list", "--json").stdout.split("\n")
        if line
    ]
    assert [(r["id"], r["policy"], r["active"], r["comment"]) for r in rows] == [
        (1, "worked@1", False, "first"),
        (2, "example-city@2026.1", True, "go live"),
    ]


def test_cli_show_prints_the_stored_text_or_a_summary(cli_home: Path) -> None:
    text = run(cli_home, "policy", "show", "1")
    assert text.exit_code == 0
    assert text.stdout == WORKED_POLICY
    summary = run(cli_home, "policy", "show", "example-city@2026.1", "--summary")
    assert summary.exit_code == 0
    assert summary.stdout.splitlines()[1] == "policy example-city@2026.1: OK"
    assert "version #2 (active)" in summary.stdout
    missing = run(cli_home, "policy", "show", "7")
    assert missing.exit_code == 1
    assert "no stored policy version '7'" in missing.stderr


def test_cli_diff_text_and_json(cli_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "stricter.toml"
    path.write_text(STRICTER, encoding="utf-8")
    result = run(cli_home, "policy", "diff", "1", str(path))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "--- version #1",
        f"+++ file {path}",
        "policy worked@1 -> worked@2",
        "[policy]",
        "  ~ version: 1 -> 2",
        "[grades]",
        "  ~ C",
        "      min: 900 -> 950",
    ]
    data = json.loads(run(cli_home, "policy", "diff", "1", "2", "--json").stdout)
    assert data["old"] == "worked@1" and data["new"] == "example-city@2026.1"
    removed = [m["key"] for m in data["sections"]["measures"] if m["change"] == "removed"]
    assert removed == ["tax.strict"]
    bad = run(cli_home, "policy", "diff", "1", "no-such-thing")
    assert bad.exit_code == 1
    assert "'no-such-thing' is neither a file nor a stored policy version" in bad.stderr
