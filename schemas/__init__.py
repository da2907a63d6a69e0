"""Record types and their Parquet schemas: one definition each, the rest derived."""
from cmtp.schemas.labeled import LABELED_SCHEMA, LabeledRecord, record_id
from cmtp.schemas.pair import PAIR_SCHEMA, Pair, pair_id
from cmtp.schemas.reject import REJECT_SCHEMA, Reject

__all__ = ["LABELED_SCHEMA", "LabeledRecord", "record_id", "PAIR_SCHEMA", "Pair", "pair_id", "REJECT_SCHEMA", "Reject"]
