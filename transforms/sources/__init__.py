"""One reader + extractor per dataset, registered by the name configs use."""
from cmtp.transforms.sources import (  # noqa: F401  (registration)
    amazon_reviews,
    baike,
    cmedqa2,
    cmrc2018,
    csl,
    dureader,
    dureader_retrieval,
    mmarco,
    multi_cpr,
    news,
    nli,
    nli_zh,
    querygen,
    t2ranking,
    wiki_atomic_edits,
    wudao,
    xlsum,
    zhidao,
    zhihu,
)
from cmtp.transforms.sources.base import REGISTRY, ExtractError, Source, SourceRecord, SourceSettings

__all__ = ["REGISTRY", "ExtractError", "Source", "SourceRecord", "SourceSettings"]
