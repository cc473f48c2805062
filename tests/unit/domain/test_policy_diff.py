"""The policy diff: items matched by id, each added, removed or changed with old -> new."""

from __future__ import annotations

from credo.domain.policy import Policy
from credo.domain.policy_diff import ChangeKind, FieldChange, diff_policies, render
from credo.domain.policy_load import load_policy

BASE = """
[policy]
id = "town"
version = "1"
base_score = 1000
score_max = 2000

[[grades]]
name = "A"
min = 1000
[[grades]]
name = "D"
min = 0

[[authorities]]
id = "court"
name = "Court"
may_file = ["judicial"]

[[categories]]
id = "court.defiance"
name = "Defied a court order"
context = "judicial"
points = -100
valid_for = "P2Y"
cap = -200

[[categories]]
id = "tax.arrears"
name = "Tax arrears"
context = "tax"
points = -60
valid_for = "P1Y"

[[lists]]
id = "dishonest"
kind = "black"
name = "Dishonest"
when = [ { any_of = ["court.defiance"] } ]

[[measures]]
id = "hr.block"
authority = "court"
kind = "sanction"
trigger = { list = "dishonest" }
contexts = ["judicial"]
text = "Blocked"

[[purposes]]
id = "review"
authorities = ["court"]
sees = ["grade"]
legal_basis = "Law art. 1"
"""


def policy(text: str) -> Policy:
    return load_policy(text, "test")


def changed(text: str, *pairs: tuple[str, str]) -> Policy:
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return policy(text)


def test_a_policy_does_not_differ_from_itself() -> None:
    diff = diff_policies(policy(BASE), policy(BASE))
    assert diff.identical
    assert diff.lines() == ["policy town@1 -> town@1", "  no differences"]
    assert all(items == [] for items in diff.to_json()["sections"].values())


def test_changed_points_validity_and_cap_show_old_and_new_values() -> None:
    new = changed(
        BASE,
        ('version = "1"', 'version = "2"'),
        ('points = -100\nvalid_for = "P2Y"\ncap = -200', 'points = -150\nvalid_for = "P3Y"'),
    )
    diff = diff_policies(policy(BASE), new)
    [header] = diff.section("policy")
    assert header.fields == (FieldChange("version", "1", "2"),)
    [category] = diff.section("categories")
    assert category.key == "court.defiance"
    assert category.kind is ChangeKind.CHANGED
    assert category.fields == (
        FieldChange("points", -100, -150),
        FieldChange("valid_for", "P2Y", "P3Y"),
        FieldChange("cap", -200, None),
    )
    assert diff.lines() == [
        "policy town@1 -> town@2",
        "[policy]",
        "  ~ version: 1 -> 2",
        "[categories]",
        "  ~ court.defiance",
        "      points: -100 -> -150",
        "      valid_for: P2Y -> P3Y",
        "      cap: -200 -> -",
    ]


def test_added_and_removed_items_are_named_in_their_sections() -> None:
    new = changed(
        BASE,
        (
            '[[categories]]\nid = "tax.arrears"\nname = "Tax arrears"\ncontext = "tax"\n'
            'points = -60\nvalid_for = "P1Y"\n',
            '[[categories]]\nid = "civic.volunteering"\nname = "Volunteering"\n'
            'context = "civic"\npoints = 20\nvalid_for = "P1Y"\n',
        ),
        ('[[grades]]\nname = "D"', '[[grades]]\nname = "C"\nmin = 900\n[[grades]]\nname = "D"'),
    )
    diff = diff_policies(policy(BASE), new)
    cats = {c.key: c for c in diff.section("categories")}
    assert cats["tax.arrears"].kind is ChangeKind.REMOVED
    assert cats["civic.volunteering"].kind is ChangeKind.ADDED
    added = {f.field: f.new for f in cats["civic.volunteering"].fields}
    assert added["points"] == 20 and added["valid_for"] == "P1Y" and added["context"] == "civic"
    assert "cap" not in added  # absent values are not listed for a new item
    [grade] = diff.section("grades")
    assert (grade.key, grade.kind, grade.fields) == (
        "C",
        ChangeKind.ADDED,
        (FieldChange("min", None, 900),),
    )
    lines = diff.lines()
    assert "  - tax.arrears" in lines
    assert "  + C (min 900)" in lines
    assert lines.index("[categories]") < lines.index("[grades]")


def test_list_measure_and_purpose_rules_are_compared_field_by_field() -> None:
    new = changed(
        BASE,
        (
            'when = [ { any_of = ["court.defiance"] } ]',
            'when = [ { any_of = ["court.defiance"] }, { grade_in = ["D"] } ]',
        ),
        ('trigger = { list = "dishonest" }', 'trigger = { grade_in = ["D"] }'),
        ('contexts = ["judicial"]', 'contexts = ["judicial", "tax"]'),
        ('sees = ["grade"]', 'sees = ["grade", "lists"]'),
    )
    data = diff_policies(policy(BASE), new).to_json()["sections"]
    assert data["lists"] == [
        {
            "key": "dishonest",
            "change": "changed",
            "fields": {
                "when": {
                    "old": [{"any_of": ["court.defiance"]}],
                    "new": [{"any_of": ["court.defiance"]}, {"grade_in": ["D"]}],
                }
            },
        }
    ]
    assert data["measures"][0]["fields"] == {
        "trigger": {"old": {"list": "dishonest"}, "new": {"grade_in": ["D"]}},
        "contexts": {"old": ["judicial"], "new": ["judicial", "tax"]},
    }
    assert data["purposes"][0]["fields"] == {"sees": {"old": ["grade"], "new": ["grade", "lists"]}}
    assert data["categories"] == [] and data["grades"] == []


def test_a_promotion_table_added_is_reported_with_its_weights() -> None:
    new = policy(
        BASE + "\n[promotion]\nweights = { performance = 0.6, integrity = 0.4 }\n"
        'contexts = ["judicial"]\n'
    )
    [promotion] = diff_policies(policy(BASE), new).section("promotion")
    assert promotion.kind is ChangeKind.ADDED
    assert promotion.fields == (
        FieldChange("weights", None, {"performance": 0.6, "integrity": 0.4}),
        FieldChange("contexts", None, ["judicial"]),
    )


def test_values_render_as_a_policy_author_writes_them() -> None:
    assert render(None) == "-"
    assert render(True) == "true"
    assert render(["a", "b"]) == "[a, b]"
    assert render({"list": "dishonest"}) == "{list = dishonest}"
    assert render(-100) == "-100"
