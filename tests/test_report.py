"""The report's ledgers: balanced when every record and pair is accounted for, and not otherwise."""
from __future__ import annotations

from cmtp.transforms.report import assemble


def counts(kept: int) -> list:
    return [
        (("records_read", "csl", "", ""), 10),
        (("reject", "csl", "read", "wrong_column_count"), 1),
        (("records_parsed", "csl", "", ""), 9),
        (("reject", "csl", "extract", "empty_title"), 1),
        (("records_with_pairs", "csl", "", ""), 8),
        (("pairs_made", "csl", "", ""), 8),
        (("pairs_extracted", "csl", "", ""), 8),
        (("reject", "csl", "filter", "query_too_short"), 2),
        (("reject", "csl", "semantic", "below_threshold"), 1),
        (("pairs_kept", "csl", "", ""), kept),
        (("score", "csl", "0.35", ""), kept),
    ]


def test_balanced_run_reports_each_stage_and_reason():
    report = assemble(counts(kept=5), {"pipeline": "unlabeled"})
    assert report["balanced"] and all(report["checks"].values())
    assert report["totals"]["pairs_dropped"] == 3 and report["totals"]["pairs_kept"] == 5
    assert report["dropped"] == {"extract": {"empty_title": 1}, "filter": {"query_too_short": 2},
                                 "read": {"wrong_column_count": 1}, "semantic": {"below_threshold": 1}}
    assert report["sources"]["csl"]["score_histogram"] == {"0.35": 5}


def test_a_lost_pair_unbalances_the_report():
    report = assemble(counts(kept=4), {})
    assert not report["balanced"]
    assert not report["checks"]["pairs_extracted == pairs_kept + pairs_dropped"]
