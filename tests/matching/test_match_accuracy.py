"""The same-person decision measured on the labelled set: the accuracy goal and the set itself.

Failure messages carry aggregate figures and case kinds only, never a name.
"""

from __future__ import annotations

from collections import Counter

REQUIRED_POSITIVE_KINDS = {
    "nfd",
    "old_new_tone",
    "dj_lookalike",
    "ascii_only",
    "i_y_variant",
    "upper",
    "spaces",
    "missing_middle",
    "typo",
    "mojibake",
    "registry_year_only",
}
REQUIRED_NEGATIVE_KINDS = {
    "neg_diff_given",
    "neg_twins",
    "neg_diacritic_given",
    "neg_swapped_given_middle",
}


def test_labelled_set_is_large_deterministic_and_covers_the_hard_cases(lp, pairs):
    assert len(pairs) >= 300
    again = lp.build_pairs()
    assert [(p.kind, p.same_person, p.name, p.birth_date) for p in again] == [
        (p.kind, p.same_person, p.name, p.birth_date) for p in pairs
    ]
    kinds = Counter((p.kind, p.same_person) for p in pairs)
    positive = {k for k, same in kinds if same}
    negative = {k for k, same in kinds if not same}
    assert REQUIRED_POSITIVE_KINDS <= positive
    assert REQUIRED_NEGATIVE_KINDS <= negative
    assert sum(1 for p in pairs if not p.same_person) >= 100
    assert "Nguy" not in repr(pairs[0])


def test_labelled_variants_really_differ_from_the_registry(pairs):
    """Positive kinds other than ``exact`` must not be the registry's spelling verbatim."""
    for p in pairs:
        if p.same_person and p.kind not in ("exact", "registry_year_only", "dossier_year_only"):
            assert p.name != p.registry.full_name, p.kind


def test_accuracy_goal(bench):
    total, by_kind = bench.measure()
    summary = (
        f"precision={total.precision:.4f} recall={total.recall:.4f} TP={total.tp} FN={total.fn} FP={total.fp}"
    )
    assert total.precision >= bench.GOAL_PRECISION, summary
    assert total.recall >= bench.GOAL_RECALL, summary
    # no hard negative kind may leak a false match
    leaking = {kind: c.fp for kind, c in by_kind.items() if c.fp}
    assert not leaking, f"false matches per kind: {leaking}"


def test_bench_prints_aggregates_only(bench, pairs, capsys):
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "recall" in out
    tokens = {t for p in pairs for t in p.registry.full_name.split()}
    assert not any(t in out.split() for t in tokens if len(t) > 1)
