"""One reader + extractor per dataset, registered by the name configs use."""
from cmtp.transforms.sources import cmrc2018, csl, wudao  # noqa: F401  (registration)
from cmtp.transforms.sources.base import REGISTRY, ExtractError, Source, SourceRecord

__all__ = ["REGISTRY", "ExtractError", "Source", "SourceRecord"]
