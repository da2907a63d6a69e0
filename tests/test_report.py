"""The report's ledgers: balanced when every record and pair is accounted for, and not otherwise."""
from __future__ import annotations

from cmtp.transforms.report import assemble, assemble_labeled


def counts(kept: int, written: int = 5, rejects_written: int = 5, repeated: int = 0) -> list:
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
        (("rows_written", "", "", ""), written),
        (("reject_rows_written", "", "", ""), rejects_written),
        (("repeated_ids", "", "", ""), repeated),
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


def test_fewer_rows_in_the_shards_than_the_ledger_kept_unbalance_the_report():
    report = assemble(counts(kept=5, written=4), {})
    assert not report["balanced"]
    assert [check for check, ok in report["checks"].items() if not ok] == ["rows_written == pairs_kept"]
    assert report["counters"]["rows_written"] == 4


def test_fewer_reject_rows_in_the_shards_than_the_ledger_dropped_unbalance_the_report():
    report = assemble(counts(kept=5, rejects_written=4), {})
    assert [check for check, ok in report["checks"].items() if not ok] == [
        "reject_rows_written == read_rejects + extract_rejects + pairs_dropped"]


def test_a_repeated_id_unbalances_the_report():
    report = assemble(counts(kept=5, repeated=1), {})
    assert [check for check, ok in report["checks"].items() if not ok] == ["no id repeated in the written data"]


def test_a_report_without_the_write_counts_is_not_balanced():
    """A pipeline that never read its shards back cannot claim them."""
    report = assemble([c for c in counts(kept=5) if c[0][0] not in ("rows_written", "reject_rows_written")], {})
    assert not report["balanced"] and report["counters"]["rows_written"] == 0


def labeled_counts(records_written: int, repeated: int = 0) -> list:
    return [
        (("records_read", "t2", "", ""), 3),
        (("records_parsed", "t2", "", ""), 3),
        (("rows_with_judgments", "t2", "", ""), 3),
        (("judgments_made", "t2", "", ""), 3),
        (("judgments_extracted", "t2", "", ""), 3),
        (("judgments_kept", "t2", "", ""), 2),
        (("reject", "t2", "dedup", "exact_duplicate"), 1),
        (("records_kept", "t2", "", ""), 2),
        (("rows_written", "", "", ""), records_written),
        (("reject_rows_written", "", "", ""), 1),
        (("repeated_ids", "", "", ""), repeated),
    ]


def test_labeled_report_checks_the_written_records_and_their_ids():
    assert assemble_labeled(labeled_counts(2), {})["balanced"]
    short = assemble_labeled(labeled_counts(1), {})
    assert [check for check, ok in short["checks"].items() if not ok] == ["rows_written == records_kept"]
    repeated = assemble_labeled(labeled_counts(2, repeated=1), {})
    assert [check for check, ok in repeated["checks"].items() if not ok] == ["no id repeated in the written data"]
