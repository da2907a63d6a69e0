"""Record types and their Parquet schemas: one definition each, the rest derived."""
from cmtp.schemas.pair import PAIR_SCHEMA, Pair, pair_id
from cmtp.schemas.reject import REJECT_SCHEMA, Reject

__all__ = ["PAIR_SCHEMA", "Pair", "pair_id", "REJECT_SCHEMA", "Reject"]
