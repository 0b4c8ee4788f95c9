"""Quant names: one reading of a file name, a file type and a user's wanted quant, whichever module asks."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from r1desk.converters.quantize import default_output
from r1desk.engine.errors import ModelNotFound
from r1desk.engine.gguf import quants, splits
from r1desk.engine.gguf.header import GGUFInfo
from r1desk.engine.models import catalog, download, library

# (file name as uploaders publish it, the quant it is, the name without the quant)
NAMES = [
    # bartowski
    ("DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf", "Q4_K_M", "DeepSeek-R1-Distill-Qwen-7B"),
    ("DeepSeek-R1-Distill-Qwen-7B-Q6_K_L.gguf", "Q6_K_L", "DeepSeek-R1-Distill-Qwen-7B"),
    ("DeepSeek-R1-Distill-Qwen-7B-Q3_K_XL.gguf", "Q3_K_XL", "DeepSeek-R1-Distill-Qwen-7B"),
    ("DeepSeek-R1-Distill-Qwen-7B-IQ4_XS.gguf", "IQ4_XS", "DeepSeek-R1-Distill-Qwen-7B"),
    ("DeepSeek-R1-Distill-Qwen-7B-f16.gguf", "F16", "DeepSeek-R1-Distill-Qwen-7B"),
    ("Llama-3.2-1B-Instruct-IQ3_XXS.gguf", "IQ3_XXS", "Llama-3.2-1B-Instruct"),
    ("Llama-3.2-1B-Instruct-Q4_K_L.gguf", "Q4_K_L", "Llama-3.2-1B-Instruct"),
    ("Meta-Llama-3.1-8B-Instruct-Q4_0_4_4.gguf", "Q4_0_4_4", "Meta-Llama-3.1-8B-Instruct"),  # an ARM repack, not Q4_0
    ("openai_gpt-oss-20b-MXFP4.gguf", "MXFP4", "openai_gpt-oss-20b"),
    ("Meta-Llama-3.1-70B-Instruct-Q8_0/Meta-Llama-3.1-70B-Instruct-Q8_0-00001-of-00002.gguf", "Q8_0",
     "Meta-Llama-3.1-70B-Instruct"),
    # unsloth: "UD-" dynamic mixes, _XL variants, ternary TQ1_0
    ("DeepSeek-R1-Distill-Qwen-7B-UD-Q4_K_XL.gguf", "Q4_K_XL", "DeepSeek-R1-Distill-Qwen-7B"),
    ("DeepSeek-R1-Distill-Qwen-7B-F16.gguf", "F16", "DeepSeek-R1-Distill-Qwen-7B"),
    ("Qwen3-30B-A3B-UD-IQ2_M.gguf", "IQ2_M", "Qwen3-30B-A3B"),
    ("Qwen3-30B-A3B-UD-Q8_K_XL.gguf", "Q8_K_XL", "Qwen3-30B-A3B"),
    ("DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf", "IQ1_S", "DeepSeek-R1"),
    ("Qwen3-235B-A22B-Instruct-2507-UD-TQ1_0.gguf", "TQ1_0", "Qwen3-235B-A22B-Instruct-2507"),
    ("gpt-oss-20b-MXFP4.gguf", "MXFP4", "gpt-oss-20b"),
    ("gpt-oss-20b-UD-Q4_K_XL.gguf", "Q4_K_XL", "gpt-oss-20b"),
    # ggml-org, lmstudio-community
    ("gpt-oss-20b-mxfp4.gguf", "MXFP4", "gpt-oss-20b"),
    ("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "Q4_K_M", "Meta-Llama-3.1-8B-Instruct"),
    ("Qwen2.5-7B-Instruct-Q8_0.gguf", "Q8_0", "Qwen2.5-7B-Instruct"),
    # Qwen: lower case, "fp16", split parts
    ("qwen2.5-7b-instruct-q4_k_m.gguf", "Q4_K_M", "qwen2.5-7b-instruct"),
    ("qwen2.5-7b-instruct-fp16-00001-of-00004.gguf", "F16", "qwen2.5-7b-instruct"),
    ("qwen2.5-7b-instruct-q5_k_m-00001-of-00002.gguf", "Q5_K_M", "qwen2.5-7b-instruct"),
    ("Qwen3-8B-Q4_K_M.gguf", "Q4_K_M", "Qwen3-8B"),
    # TheBloke, mradermacher: a dot before the quant
    ("llama-2-7b-chat.Q4_K_M.gguf", "Q4_K_M", "llama-2-7b-chat"),
    ("DeepSeek-R1-Distill-Qwen-7B.i1-Q4_K_M.gguf", "Q4_K_M", "DeepSeek-R1-Distill-Qwen-7B.i1"),
    # anyone
    ("model-BF16.gguf", "BF16", "model"),
    ("model-F32.gguf", "F32", "model"),
    ("Q4_0 in a directory name/model.gguf", None, "model"),  # a folder's name says nothing of its files
    ("tiny-r1.gguf", None, "tiny-r1"),
]


def _listing(names: list[str]) -> download.RepoListing:
    files = [download.RemoteFile(n, 10, "0" * 64) for n in names]
    return download.RepoListing("o/r", "main", "c" * 40, files, "https://huggingface.co")


@pytest.mark.parametrize(("name", "quant", "stem"), NAMES, ids=[n for n, _, _ in NAMES])
def test_every_module_reads_the_same_quant_from_a_file_name(
    name: str, quant: str | None, stem: str, r1desk_home: Path,
) -> None:
    files = splits.part_names(name) or [name]

    assert quants.from_filename(name) == quant
    assert all(quants.from_filename(f) == quant for f in files), "every part names the same quant"

    # The library, for a file whose header has no general.file_type.
    header = GGUFInfo(source=name, version=3, metadata={}, tensors=[], data_offset=0, file_size=0)
    assert library.Inspection(header, [Path(name)], 0, 0).fields()["quant"] == quant

    # Downloads: what a repo has, and which file(s) a wanted quant takes.
    listing = _listing(files)
    assert listing.quants() == ([quant] if quant else [])
    if quant:
        assert [f.name for f in download.choose_files(listing, quant=quant)] == files
        assert [f.name for f in download.choose_files(listing, quant=quant.lower())] == files
    else:
        with pytest.raises(ModelNotFound):
            download.choose_files(listing, quant="Q4_0")

    # The catalog offers the quants whose size and fit it can work out.
    offered = catalog.group_files([(f, 10) for f in files])
    assert [q.quant for q in offered] == ([quant] if quant in quants.QUANTS else [])
    assert [q.names for q in offered] == ([files] if quant in quants.QUANTS else [])

    # Re-quantising names the new file after the old one, less its quant.
    assert default_output(Path(name), "Q8_0").name == f"{stem}-Q8_0.gguf"


@pytest.mark.parametrize(("wanted", "name", "expected"), [
    ("Q4_K_M", "m-Q4_K_M.gguf", True),
    ("q4_k_m", "m-Q4_K_M.gguf", True),
    (" Q4_K_M ", "qwen2.5-7b-instruct-q4_k_m.gguf", True),
    ("Q4_K_M", "m-Q4_K_S.gguf", False),
    ("Q4_K", "m-Q4_K_M.gguf", False),
    ("Q4", "m-Q4_K_M.gguf", False),
    ("F16", "m-fp16.gguf", True),
    ("FP16", "m-F16.gguf", True),
    ("f16", "m-BF16.gguf", False),
    ("BF16", "m-F16.gguf", False),
    ("Q4_0", "m-Q4_0_4_4.gguf", False),
    ("Q4_0", "Q4_0/model.gguf", False),
    ("Q8_0", "m-Q8_0/m-Q8_0-00002-of-00003.gguf", True),
    ("UD-Q4_K_XL", "m-UD-Q4_K_XL.gguf", True),
    ("ud-q4_k_xl", "m-UD-Q4_K_XL.gguf", True),
    ("Q4_K_XL", "m-UD-Q4_K_XL.gguf", True),
    ("UD-Q4_K_XL", "m-Q4_K_XL.gguf", False),
    ("MXFP4", "gpt-oss-20b-mxfp4.gguf", True),
    ("MXFP4_MOE", "gpt-oss-20b-MXFP4.gguf", True),  # llama-quantize's name for it
    ("TQ1_0", "m-UD-TQ1_0.gguf", True),
    ("imatrix", "m-Q4_K_M-imatrix.gguf", False),
])
def test_wanted_quant_matches_a_file_name(wanted: str, name: str, expected: bool) -> None:
    assert quants.matches(wanted, name) is expected


def test_a_plain_quant_is_preferred_to_unsloths_dynamic_one_of_the_same_name() -> None:
    both = _listing(["M-IQ2_XXS.gguf", "M-UD-IQ2_XXS.gguf", "M-UD-Q4_K_XL.gguf", "M-fp16.gguf"])
    assert [f.name for f in download.choose_files(both, quant="IQ2_XXS")] == ["M-IQ2_XXS.gguf"]
    assert [f.name for f in download.choose_files(both, quant="UD-IQ2_XXS")] == ["M-UD-IQ2_XXS.gguf"]
    assert [f.name for f in download.choose_files(both, quant="Q4_K_XL")] == ["M-UD-Q4_K_XL.gguf"]
    assert [f.name for f in download.choose_files(both, quant="F16")] == ["M-fp16.gguf"]
    assert both.quants() == ["IQ2_XXS", "Q4_K_XL", "F16"]


def test_file_types_are_named_as_files_are() -> None:
    for q in quants.QUANTS.values():
        if q.file_type is not None:
            assert quants.from_file_type(q.file_type) == q.name
    # Every type llama.cpp writes: named, and named the way a file of it would be.
    for member in gguf.LlamaFileType:
        if member.name == "GUESSED":
            continue
        name = quants.from_file_type(int(member))
        assert name is not None, member
        assert quants.from_filename(f"model-{name}.gguf") == name
    assert quants.from_file_type(38) == "MXFP4"  # LLAMA_FTYPE_MOSTLY_MXFP4_MOE: gpt-oss's -MXFP4.gguf files
    assert quants.from_file_type(33) == "Q4_0_4_4"  # gone from llama.cpp, still in old files
    assert quants.from_file_type(None) is None
    assert quants.from_file_type(1024) is None  # LLAMA_FTYPE_GUESSED: never a file's own
    assert quants.from_file_type(9999) is None


def test_the_catalog_finds_a_quant_the_way_it_is_asked_for() -> None:
    model = catalog.load(catalog.CATALOG_PATH).get("deepseek-r1-distill-qwen-7b")
    assert model.quant("q4_k_m") is model.quant("Q4_K_M") is not None
    assert model.quant("fp16") is model.quant("F16")
