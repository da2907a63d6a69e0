"""Near dedup's batched parts against the per-item versions they replace: signatures of a batch equal datasketch's
MinHash of each text, band keys meet exactly where bands are equal, shard lists lose nothing, a finished star leaves
the component rounds, and Parquet row groups built a column at a time hold what was written."""
from __future__ import annotations

import json
import zlib

import numpy as np
import opencc
import pyarrow.parquet as pq
from datasketch import MinHash

from beam_helpers import run_transform
from cmtp.schemas import PAIR_SCHEMA, Pair, pair_id
from cmtp.transforms.components import _LargeStar
from cmtp.transforms.near_dedup import MinHasher, band_hashes, shingles
from cmtp.transforms.parquet_shards import WriteParquetShards
from cmtp.transforms.shards import ShardLists, shard_count


def real_texts(shared_data, n: int = 300) -> list[str]:
    """CSL abstracts and titles, CMRC contexts and DuReader paragraphs (with their page furniture), as found."""
    texts = []
    for line in (shared_data / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines()[:n]:
        texts += line.split("\t")[1:3]
    squad = json.loads((shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    texts += [p["context"] for a in squad["data"][:40] for p in a["paragraphs"]]
    for line in (shared_data / "dureader" / "search.dev.json").read_text("utf-8").splitlines()[:20]:
        texts += [paragraph for doc in json.loads(line)["documents"] for paragraph in doc["paragraphs"]]
    return texts


def datasketch_signature(text: str, ngram: int, unit: str = "char") -> np.ndarray:
    """What the stage computed one text at a time before: datasketch's MinHash of the CRC-32 of each shingle."""
    minhash = MinHash(num_perm=128, seed=1, hashfunc=zlib.crc32)
    minhash.update_batch([s.encode("utf-8") for s in shingles(opencc.OpenCC("t2s").convert(text), ngram, unit)])
    return minhash.hashvalues


def test_a_batch_of_real_texts_gets_datasketchs_signatures(shared_data):
    texts = real_texts(shared_data)
    # Traditional, Latin, emoji, a one-character text, an empty one, one that lower() lengthens, exactly n long
    texts += [opencc.OpenCC("s2t").convert(texts[0]), "Near-duplicate DETECTION, at scale!", "😀😀😀😀😀😀x", "短", "",
              "İstanbul İİİ", "abcde"]
    hasher = MinHasher(5, 128, 0.7, 1)
    batch = hasher.signatures(texts)
    assert batch.shape == (len(texts), 128) and batch.dtype == np.uint32
    for text, signature in zip(texts, batch):
        assert np.array_equal(signature, datasketch_signature(text, 5)), text[:40]
    words = MinHasher(2, 128, 0.7, 1, unit="word")
    english = ["the quick brown fox jumps", "over the lazy dog", "dog"]
    for text, signature in zip(english, words.signatures(english)):
        assert np.array_equal(signature, datasketch_signature(text, 2, "word"))


def test_band_keys_are_equal_exactly_where_bands_are(shared_data):
    hasher = MinHasher(5, 128, 0.7, 1)
    texts = real_texts(shared_data, 100)
    near = [text[:-3] + "。。。" if len(text) > 60 else text for text in texts]  # a few shingles changed
    signatures = hasher.signatures(texts + near)
    keys = band_hashes(signatures, hasher.bands, hasher.rows, np.zeros(len(signatures), dtype=np.uint64))
    bytes_keys = [hasher.band_keys(signature) for signature in signatures]
    n = len(texts)
    shared_bands = 0
    for i in range(n):
        for band in range(hasher.bands):
            equal = bytes_keys[i][band] == bytes_keys[n + i][band]
            assert equal == (keys[i, band] == keys[n + i, band])
            shared_bands += equal
    assert shared_bands > n  # the near copies do share bands, so the equality above was tested both ways
    assert len(set(keys[:n].ravel().tolist())) == len({b for row in bytes_keys[:n] for b in row})
    by_source = band_hashes(signatures[:1].repeat(2, axis=0), hasher.bands, hasher.rows,
                            np.array([zlib.crc32(b"a"), zlib.crc32(b"b")], dtype=np.uint64))
    assert not set(by_source[0]) & set(by_source[1])  # dedup within sources: another source's band never meets


def test_shard_lists_give_every_value_once_and_bound_a_list():
    lists = ShardLists(limit=3)
    early = [out for i in range(10) for out in lists.add(i % 2, i)]
    assert early == [(0, [0, 2, 4]), (1, [1, 3, 5])]
    late = [out.value for out in lists.drain()]
    assert sorted(late) == [(0, [6, 8]), (1, [7, 9])]
    assert shard_count(2) == 1 and shard_count(1 << 30) == 1024 and shard_count(1 << 60) == 4096


def test_a_finished_star_gives_its_labels_and_no_edges():
    star = _LargeStar(3, shards=4)
    star.start_bundle()
    out = list(star.process((0, [[(1, 5, True), (1, 7, True)]])))  # node 1, both neighbours leaves of it alone
    assert [o.value for o in out if getattr(o, "tag", None) == "labels"] == [(5, 1), (7, 1)]
    assert not list(star.finish_bundle())
    star.start_bundle()
    out = list(star.process((0, [[(1, 5, True), (1, 7, False)]])))  # 7 may have other neighbours: not finished
    assert not [o for o in out if getattr(o, "tag", None) == "labels"]
    assert sorted(v for _, values in (o.value for o in star.finish_bundle()) for v in values) == [
        (5, 1, False), (7, 1, False)]


def test_parquet_row_groups_hold_the_rows_in_order(tmp_path, shared_data):
    texts = real_texts(shared_data, 200)
    pairs = [Pair(pair_id("csl", "k", f"q{i}", text), f"q{i}", text, "csl", "k", "f.tsv", f"line {i}", score=i / 7,
                  flags=None if i % 3 else "a;b") for i, text in enumerate(texts)]
    run_transform(WriteParquetShards(str(tmp_path / "data"), PAIR_SCHEMA, row_group_bytes=20_000), pairs,
                  outputs=())
    (path,) = (tmp_path / "data").iterdir()
    written = pq.ParquetFile(path)
    assert written.metadata.num_row_groups > 3  # ~20k characters of text a row group
    assert written.read().to_pylist() == [pair._asdict() for pair in pairs]


def test_ranks_travel_as_numbers_for_pair_ids_and_as_tuples_otherwise_with_the_same_clusters(shared_data):
    from cmtp.pipelines.config import NearDedupConfig
    from cmtp.transforms.near_dedup import NearDedup, _rank_columns
    from cmtp.transforms.survivor import SurvivorOrder

    texts = real_texts(shared_data, 60)
    texts += [text[:-4] + "，如上。" for text in texts if len(text) > 80]  # near copies of the longer ones
    pairs = [Pair(pair_id("csl", "k", f"q{i}", text), f"q{i}", text, "csl", "k", "f.tsv", f"line {i}")
             for i, text in enumerate(texts)]
    order = SurvivorOrder({"csl": 2})
    assert _rank_columns([order.rank(pair) for pair in pairs]) is not None
    renamed = [pair._replace(id="id-" + pair.id) for pair in pairs]  # not pair ids: the tuples travel
    assert _rank_columns([order.rank(pair) for pair in renamed]) is None

    def clusters(rows):
        out = run_transform(NearDedup(NearDedupConfig(ngram=5, threshold=0.7), order, max_nodes=10_000), rows)
        return sorted((reject.id.removeprefix("id-"), reject.survivor.removeprefix("id-")) for reject in out["rejects"])

    numeric = clusters(pairs)
    assert len(numeric) > 20  # the near copies were found
    assert numeric == clusters(renamed)


def test_group_in_shards_groups_as_beams_own_group_by_key_does(shared_data):
    import apache_beam as beam

    from cmtp.transforms.shards import GroupInShards

    texts = real_texts(shared_data, 300)
    keyed = [(text[:1], i) for i, text in enumerate(texts)] + [(b"\x00bytes", -1), ((1, "t"), -2)]  # str, bytes, tuple

    class Both(beam.PTransform):
        def expand(self, pairs):
            odd = pairs | "Odd" >> beam.Filter(lambda kv: kv[1] % 2)
            return {"theirs": pairs | beam.GroupByKey() | "Sorted" >> beam.MapTuple(lambda k, v: (k, sorted(v))),
                    "ours": pairs | GroupInShards(7) | "SortedOurs" >> beam.MapTuple(lambda k, v: (k, sorted(v))),
                    "co": {"all": pairs, "odd": odd} | "Co" >> GroupInShards(3)
                    | beam.MapTuple(lambda k, g: (k, sorted(g["all"]), sorted(g["odd"])))}

    out = run_transform(Both(), keyed, outputs=("theirs", "ours", "co"))
    assert sorted(out["ours"], key=repr) == sorted(out["theirs"], key=repr) and len(out["ours"]) > 50
    assert sorted(out["co"], key=repr) == sorted(((k, v, [i for i in v if i % 2]) for k, v in out["theirs"]), key=repr)


def test_group_in_shards_gives_back_rows_of_their_own_class(shared_data):
    """Pair rows travel as plain tuples with their class once a list, compressed or not; they come back as Pairs,
    equal to what went in, and a list of mixed values is left as it is."""
    import apache_beam as beam

    from cmtp.transforms.shards import GroupInShards

    class Grouped(beam.PTransform):
        def __init__(self, shards, compress=False):
            super().__init__()
            self._shards, self._compress = shards, compress

        def expand(self, rows):
            return {"rows": rows | GroupInShards(self._shards, self._compress)}

    texts = real_texts(shared_data, 300)
    pairs = [Pair(pair_id("csl", "k", f"q{i}", text), f"q{i}", text, "csl", "k", "f.tsv", f"line {i}", score=i / 7)
             for i, text in enumerate(texts)]
    keyed = [(pair.passage[:1], pair) for pair in pairs]
    for compress in (False, True):
        grouped = run_transform(Grouped(3, compress), keyed, outputs=("rows",))["rows"]
        assert sorted(pair for _, group in grouped for pair in group) == sorted(pairs)
        assert {type(pair) for _, group in grouped for pair in group} == {Pair}
    mixed = keyed[:5] + [("x", ("a", 1)), ("x", 2)]
    grouped = run_transform(Grouped(1), mixed, outputs=("rows",))["rows"]
    assert sorted(((k, v) for k, group in grouped for v in group), key=repr) == sorted(mixed, key=repr)


def test_flatten_rows_gives_every_row_of_every_input_once(shared_data):
    """More rows than one pickled list holds, an empty input, a list as input (which Beam would take for values to
    Create) and one input alone: the rows that come out are the inputs' rows, as Beam's Flatten gives them."""
    import apache_beam as beam

    from cmtp.transforms.flatten_rows import PACK, FlattenRows

    texts = real_texts(shared_data, 1500)
    pairs = [Pair(pair_id("csl", "k", f"q{i}", text), f"q{i}", text, "csl", "k", "f.tsv", f"line {i}")
             for i, text in enumerate(texts)]
    assert len(pairs) > PACK + 100

    class Both(beam.PTransform):
        def expand(self, rows):
            short = rows | "Short" >> beam.Filter(lambda pair: len(pair.passage) < 100)
            empty = rows | "None" >> beam.Filter(lambda pair: False)
            return {"theirs": (rows, short, empty) | "Theirs" >> beam.Flatten(),
                    "ours": [rows, short, empty] | "Ours" >> FlattenRows(),
                    "alone": (rows,) | "Alone" >> FlattenRows(),
                    "nothing": () | "Nothing" >> FlattenRows(rows.pipeline)}

    out = run_transform(Both(), pairs, outputs=("theirs", "ours", "alone", "nothing"))
    assert len(out["theirs"]) > len(pairs)  # some passages are short
    assert sorted(out["ours"]) == sorted(out["theirs"])
    assert sorted(out["alone"]) == sorted(pairs) and out["nothing"] == []


def test_rank_numbers_travel_in_the_narrowest_integers_that_hold_them_and_come_back_equal():
    from cmtp.transforms.near_dedup import _EntryRanks, _rank_columns

    ids = [f"{i:016x}" for i in (1, 2**63 + 5, 2**64 - 1)]
    for numbers, dtype in (((-3, -2048, -40), "int16"), ((0, -70_000, -5), "int32"), ((-1, -2**40, 0), "int64")):
        ranks = [(numbers[0], numbers[1] - i, numbers[2], pair_id) for i, pair_id in enumerate(ids)]
        columns = _rank_columns(ranks)
        assert columns[0].dtype == dtype
        entries = _EntryRanks()
        entries.add(len(ranks), (columns[0].dtype.str, columns[0].tobytes(), columns[1].tobytes()))
        assert [entries[i] for i in range(len(ranks))] == ranks
