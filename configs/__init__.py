"""Run configs, and the files the code reads (lexicons, runner profiles, query-generation prompts), installed with
the package as `cmtp.configs`."""
from pathlib import Path

LEXICONS = Path(__file__).resolve().parent / "lexicons"
PROFILES = Path(__file__).resolve().parent / "profiles"
PROMPTS = Path(__file__).resolve().parent / "prompts"
FLINK_CONF = Path(__file__).resolve().parent / "flink"
