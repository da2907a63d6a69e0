"""Run configs and the lexicons filter rules read, installed with the package as `cmtp.configs`."""
from pathlib import Path

LEXICONS = Path(__file__).resolve().parent / "lexicons"
