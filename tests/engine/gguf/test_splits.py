"""Split GGUF names: parsed, listed and grouped one way for the library, the catalog and downloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1desk.engine.errors import CorruptModel, DownloadError
from r1desk.engine.gguf import splits
from r1desk.engine.models import catalog, download, library


@pytest.mark.parametrize(("name", "expected"), [
    ("m-Q8_0-00002-of-00003.gguf", ("m-Q8_0", 2, 3)),
    ("qwen2.5-7b-instruct-fp16-00001-of-00004.gguf", ("qwen2.5-7b-instruct-fp16", 1, 4)),
    ("DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00003-of-00003.gguf", ("DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S", 3, 3)),
    ("M-00001-OF-00002.GGUF", ("M", 1, 2)),
    ("m-Q8_0.gguf", None),
    ("m-0001-of-0002.gguf", None),  # llama.cpp always writes five digits
    ("m-00001-of-00002.gguf.part", None),
    ("-00001-of-00002.gguf", None),  # no model name before the part number
])
def test_parse(name: str, expected: tuple[str, int, int] | None) -> None:
    assert splits.parse(name) == expected


def test_part_names() -> None:
    assert splits.part_names("d/m-00002-of-00003.gguf") == [
        "d/m-00001-of-00003.gguf", "d/m-00002-of-00003.gguf", "d/m-00003-of-00003.gguf"]
    assert splits.part_names("m-00001-of-00003.gguf", count=2) == ["m-00001-of-00002.gguf", "m-00002-of-00002.gguf"]
    assert splits.part_names("m.gguf") is None
    assert splits.part_name("m", 7, 12) == "m-00007-of-00012.gguf"


def test_group_a_repo_listing() -> None:
    got = splits.group([
        "M-Q4_K_M.gguf",
        "M-Q8_0/M-Q8_0-00002-of-00002.gguf",  # out of order
        "M-Q8_0/M-Q8_0-00001-of-00002.gguf",
        "M-Q6_K-00002-of-00003.gguf",  # an incomplete upload, first part missing
        "M-Q6_K-00003-of-00003.gguf",
        "M-Q2_K-00000-of-00002.gguf",  # numbered outside its set: no part of anything
    ])
    assert got == {
        "M-Q4_K_M.gguf": ["M-Q4_K_M.gguf"],
        "M-Q8_0/M-Q8_0-00001-of-00002.gguf": ["M-Q8_0/M-Q8_0-00001-of-00002.gguf", "M-Q8_0/M-Q8_0-00002-of-00002.gguf"],
        "M-Q6_K-00001-of-00003.gguf": [None, "M-Q6_K-00002-of-00003.gguf", "M-Q6_K-00003-of-00003.gguf"],
    }


def test_every_module_splits_names_the_same_way(tmp_path: Path) -> None:
    names = splits.part_names("Q4_K_M/m-Q4_K_M-00001-of-00003.gguf")
    assert names is not None

    # The library finds the other parts next to the first.
    first = tmp_path / Path(names[0]).name
    assert library.split_parts(first, 3) == [tmp_path / Path(n).name for n in names]
    assert library.default_name(first) == "m-Q4_K_M"
    with pytest.raises(CorruptModel, match="-00001-of-0000N.gguf"):
        library.split_parts(tmp_path / "m-Q4_K_M.gguf", 3)

    # Downloads fetch the whole set, whichever part is named, and refuse half of one.
    listing = download.RepoListing("o/r", "main", "c" * 40, [download.RemoteFile(n, 10) for n in names],
                                   "https://huggingface.co")
    assert [f.name for f in download.choose_files(listing, quant="Q4_K_M")] == names
    assert [f.name for f in download.choose_files(listing, filename=names[2])] == names
    half = download.RepoListing("o/r", "main", "c" * 40, [download.RemoteFile(n, 10) for n in names[:2]],
                                "https://huggingface.co")
    with pytest.raises(DownloadError, match="part 3 of 3 is missing"):
        download.choose_files(half, quant="Q4_K_M")

    # The catalog groups a hub listing into the same set, and names the parts it estimates the same way.
    [grouped] = catalog.group_files([(n, 10) for n in reversed(names)])
    assert grouped.names == names
    seventy = catalog.load(catalog.CATALOG_PATH).get("deepseek-r1-distill-llama-70b")
    estimated = catalog.estimated_files(seventy, "Q8_0").names
    assert len(estimated) > 1
    assert splits.part_names(estimated[0]) == estimated
