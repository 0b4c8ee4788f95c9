"""Quantisation types in one place: their names, their quality order, their size, and the rule of thumb.

Names are read here and nowhere else: from a file name, from a header's ``general.file_type``,
and from what a user asks for (``from_filename``, ``from_file_type``, ``matches``).

The rule of thumb r1desk follows when it picks a file for a machine:

- Q8_0 is practically lossless; F16/BF16 add nothing visible for chat at twice the size, so
  they are never recommended (they are a source for quantising, not a file to chat with).
- Q6_K and Q5_K_M are close to Q8_0; take them when memory allows.
- Q4_K_M is the usual floor for quality: the best size/quality trade for most machines.
- Below Q4_K_M only for a tight fit. There, IQ quants (IQ4_XS, IQ3_M...) keep more quality per
  byte than K-quants of the same size, but their kernels are slower on CPUs, so a CPU-only
  machine prefers K-quants. 3-bit quants only for models of 7B and more, 2-bit only for 30B
  and more: small models lose the most from aggressive quantisation.
- A bigger model at Q4 beats a smaller one at Q8 (the ranking below encodes this): quality is
  compared as log2(parameters) minus a penalty that grows with each quant's measured loss.

The loss figures are perplexity increases over F16, rounded from llama.cpp's published
quantisation tables (LLaMA-3-8B, wikitext); they order the quants and size their penalties,
they are not a promise about any one model.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# GGML tensor type ids (ggml.h) used by the quantisation recipes below.
F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 = 0, 1, 2, 3, 6, 7, 8
Q2_K, Q3_K, Q4_K, Q5_K, Q6_K = 10, 11, 12, 13, 14
IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ4_NL, IQ3_S, IQ2_S, IQ4_XS, IQ1_M = 16, 17, 18, 19, 20, 21, 22, 23, 29
BF16 = 30


@dataclass(frozen=True)
class Quant:
    """A file-level quantisation ("Q4_K_M"): what llama.cpp's ``general.file_type`` names."""

    name: str
    file_type: int | None  # llama.h LLAMA_FTYPE_*; None for uploader variants (Q4_K_L...)
    loss: float  # relative perplexity increase over F16 (0.028 = +2.8 %)
    base: str | None = None  # for "_L"/"_XL" variants: the llama.cpp mix they start from
    iq: bool = False  # an i-quant: better per byte, slower CPU kernels

    @property
    def penalty(self) -> float:
        """Quality lost, in the units of log2(parameters): 1.0 = as bad as halving the model."""
        return LOSS_WEIGHT * self.loss

    @property
    def bits_floor(self) -> int:
        """Roughly how many bits a weight keeps (2, 3, 4, 5, 6, 8, 16)."""
        m = re.match(r"I?Q(\d)", self.name)
        if m:
            return int(m.group(1))
        return 16 if self.name in ("F16", "BF16") else 32


# Penalty scale: Q2_K (loss ~0.35) costs about as much as halving the model's size.
LOSS_WEIGHT = 3.0

# Best first. "_L"/"_XL" are bartowski's variants: the base mix with Q8_0 embeddings and output.
QUANTS: dict[str, Quant] = {q.name: q for q in [
    Quant("F32", 0, 0.0),
    Quant("BF16", 32, 0.0),
    Quant("F16", 1, 0.0),
    Quant("Q8_0", 7, 0.0002),
    Quant("Q6_K_L", None, 0.003, base="Q6_K"),
    Quant("Q6_K", 18, 0.004),
    Quant("Q5_K_L", None, 0.009, base="Q5_K_M"),
    Quant("Q5_K_M", 17, 0.010),
    Quant("Q5_K_S", 16, 0.013),
    Quant("Q5_1", 9, 0.016),
    Quant("Q5_0", 8, 0.018),
    Quant("Q4_K_L", None, 0.026, base="Q4_K_M"),
    Quant("Q4_K_M", 15, 0.028),
    Quant("IQ4_NL", 25, 0.035, iq=True),
    Quant("IQ4_XS", 30, 0.037, iq=True),
    Quant("Q4_K_S", 14, 0.040),
    Quant("Q4_1", 3, 0.050),
    Quant("Q4_0", 2, 0.060),
    Quant("Q3_K_XL", None, 0.065, base="Q3_K_L"),
    Quant("Q3_K_L", 13, 0.070),
    Quant("IQ3_M", 27, 0.090, iq=True),
    Quant("Q3_K_M", 12, 0.100),
    Quant("IQ3_S", 26, 0.120, iq=True),
    Quant("IQ3_XS", 22, 0.140, iq=True),
    Quant("IQ3_XXS", 23, 0.170, iq=True),
    Quant("Q3_K_S", 11, 0.200),
    Quant("Q2_K_L", None, 0.300, base="Q2_K"),
    Quant("IQ2_M", 29, 0.300, iq=True),
    Quant("Q2_K", 10, 0.350),
    Quant("IQ2_S", 28, 0.400, iq=True),
    Quant("Q2_K_S", 21, 0.420),
    Quant("IQ2_XS", 20, 0.500, iq=True),
    Quant("IQ2_XXS", 19, 0.750, iq=True),
    Quant("IQ1_M", 31, 1.200, iq=True),
    Quant("IQ1_S", 24, 2.000, iq=True),
]}

ORDER: list[str] = list(QUANTS)  # best first
FLOOR = "Q4_K_M"  # the usual floor for quality
NEVER_RECOMMENDED = frozenset({"F32", "BF16", "F16"})

# Names ------------------------------------------------------------------------------------
# A file's quant is what its own name says (the folder it sits in is not read: a local folder
# called "Q4_0 tests" says nothing about the files in it). Uploaders write llama.cpp's type
# names in any case, "fp16" for F16, Unsloth puts "UD-" (its dynamic mixes) in front, and
# bartowski/Unsloth add "_L"/"_XL" variants; the name is kept as written, so a variant not in
# QUANTS (Q4_K_XL, Q4_0_4_4, TQ1_0, MXFP4) is named, just not ranked or recommended.
_TOKEN = (
    r"(?P<ud>UD[-_])?"
    r"(?P<quant>I?Q\d_[A-Z0-9]{1,3}(?:_[A-Z0-9]{1,3})*|TQ\d_\d|MXFP4(?:_MOE)?|NVFP4|BF16|FP16|F16|FP32|F32)"
)
_IN_NAME_RE = re.compile(rf"(?<![A-Za-z0-9]){_TOKEN}(?![A-Za-z0-9])", re.IGNORECASE)
_WANTED_RE = re.compile(_TOKEN, re.IGNORECASE)
_SPELLINGS = {"FP16": "F16", "FP32": "F32", "MXFP4_MOE": "MXFP4"}

# llama.h LLAMA_FTYPE_* beyond the ranked ones (33-35 were ARM repacks llama.cpp no longer loads).
_BY_FILE_TYPE = {q.file_type: q.name for q in QUANTS.values() if q.file_type is not None} | {
    33: "Q4_0_4_4", 34: "Q4_0_4_8", 35: "Q4_0_8_8", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4", 39: "NVFP4", 40: "Q1_0",
}


def get(name: str) -> Quant:
    try:
        return QUANTS[name.upper()]
    except KeyError:
        raise KeyError(f"unknown quantisation {name!r}") from None


def rank(name: str) -> int:
    """0 for the best; unknown names sort last."""
    try:
        return ORDER.index(name.upper())
    except ValueError:
        return len(ORDER)


def _normal(quant: str) -> str:
    quant = quant.upper()
    return _SPELLINGS.get(quant, quant)


def from_file_type(file_type: int | None) -> str | None:
    """``general.file_type`` -> "Q4_K_M", named as files are (38 -> "MXFP4"); None when absent or unknown."""
    if file_type is None:
        return None
    try:
        file_type = int(file_type)
    except (TypeError, ValueError):
        return None
    name = _BY_FILE_TYPE.get(file_type)
    if name is None:  # a type newer than this table: the gguf package may know its name
        try:
            import gguf

            name = gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except (ImportError, ValueError):
            return None
        name = None if name == "GUESSED" else _normal(name)
    return name


def _last_in_name(filename: str) -> re.Match[str] | None:
    leaf = filename.replace("\\", "/").rsplit("/", 1)[-1]
    found = None
    for found in _IN_NAME_RE.finditer(leaf):
        pass
    return found


def from_filename(filename: str) -> str | None:
    """The quant a file's name declares ("m-UD-Q4_K_XL.gguf" -> "Q4_K_XL", "m-fp16-00001-of-00002.gguf" -> "F16").

    The last quant-looking word of the file name (not its folders) wins; None when it has none.
    """
    m = _last_in_name(filename)
    return _normal(m["quant"]) if m else None


def matches(wanted: str, filename: str, *, exact: bool = False) -> bool:
    """Whether ``filename`` is of the quant a user asked for ("q4_k_m", "FP16", "UD-Q4_K_XL", "mxfp4").

    Asking for "UD-Q4_K_XL" takes Unsloth's dynamic file only; asking for "Q4_K_XL" takes either,
    unless ``exact`` (then the "UD-" must be as asked too: to choose between the two).
    """
    want = _WANTED_RE.fullmatch(wanted.strip())
    got = _last_in_name(filename)
    if want is None or got is None or _normal(want["quant"]) != _normal(got["quant"]):
        return False
    if want["ud"]:
        return bool(got["ud"])
    return not (exact and got["ud"])


def without_quant(name: str) -> str:
    """``name`` with the quant it declares (and a separator next to it) taken out: "m-UD-Q4_K_XL" -> "m"."""
    leaf_at = max(name.rfind("/"), name.rfind("\\")) + 1
    m = _last_in_name(name)
    if m is None:
        return name
    start, end = leaf_at + m.start(), leaf_at + m.end()
    if start > leaf_at and name[start - 1] in "-._ ":
        start -= 1
    elif end < len(name) and name[end] in "-._ ":
        end += 1
    return name[:start] + name[end:]


def allowed_for(name: str, n_params: float, *, cpu_only: bool = False) -> bool:
    """Whether the rule of thumb lets this quant be recommended for a model of ``n_params``."""
    q = get(name)
    if q.name in NEVER_RECOMMENDED:
        return False
    if q.bits_floor <= 1:
        return False
    if q.bits_floor == 2 and n_params < 30e9:
        return False
    if q.bits_floor == 3 and n_params < 7e9:
        return False
    if cpu_only and q.iq and q.bits_floor <= 3:
        return False
    return True


def quality(name: str, n_params: float) -> float:
    """The score choices are ranked by: log2(parameters in billions) minus the quant's penalty."""
    return math.log2(max(n_params, 1e6) / 1e9) - get(name).penalty


def below_floor(name: str) -> bool:
    return rank(name) > rank(FLOOR)


# Recipes: which tensor type llama.cpp's quantiser (src/llama-quant.cpp, llama_tensor_get_type)
# gives each tensor, so a file's size can be computed from a model's shape before it exists.
_DEFAULT_TYPE = {
    "F32": F32, "F16": F16, "BF16": BF16, "Q8_0": Q8_0, "Q4_0": Q4_0, "Q4_1": Q4_1, "Q5_0": Q5_0,
    "Q5_1": Q5_1, "Q2_K": Q2_K, "Q2_K_S": Q2_K, "Q3_K_S": Q3_K, "Q3_K_M": Q3_K, "Q3_K_L": Q3_K,
    "Q4_K_S": Q4_K, "Q4_K_M": Q4_K, "Q5_K_S": Q5_K, "Q5_K_M": Q5_K, "Q6_K": Q6_K,
    "IQ2_XXS": IQ2_XXS, "IQ2_XS": IQ2_XS, "IQ2_S": IQ2_XS, "IQ2_M": IQ2_S, "IQ3_XXS": IQ3_XXS,
    "IQ3_XS": IQ3_S, "IQ3_S": IQ3_S, "IQ3_M": IQ3_S, "IQ1_S": IQ1_S, "IQ1_M": IQ1_M,
    "IQ4_NL": IQ4_NL, "IQ4_XS": IQ4_XS,
}
_FALLBACK = {  # when a row length is not a multiple of the K-quant block (256)
    IQ2_XXS: IQ4_NL, IQ2_XS: IQ4_NL, IQ2_S: IQ4_NL, IQ3_XXS: IQ4_NL, IQ3_S: IQ4_NL, IQ1_S: IQ4_NL,
    IQ1_M: IQ4_NL, Q2_K: IQ4_NL, Q3_K: IQ4_NL, IQ4_XS: IQ4_NL, Q4_K: Q5_0, Q5_K: Q5_1, Q6_K: Q8_0,
}


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_type(
    quant: str, name: str, shape: tuple[int, ...], *, layer: int | None, n_layer: int,
    n_gqa: int, has_output: bool, imatrix: bool = True, is_70b: bool = False,
) -> int:
    """The GGML type a tensor gets in a ``quant`` file, following llama.cpp's quantiser.

    ``imatrix``: quantised with an importance matrix (hub uploaders such as bartowski do).
    Covers dense (non-MoE) models, which is what the catalog holds.
    """
    q = get(quant)
    if q.base is not None:  # "_L"/"_XL": the base recipe with Q8_0 embeddings and output
        if name in ("token_embd.weight", "output.weight"):
            return Q8_0
        return tensor_type(q.base, name, shape, layer=layer, n_layer=n_layer, n_gqa=n_gqa,
                           has_output=has_output, imatrix=imatrix, is_70b=is_70b)
    quant = q.name
    # Only 2-D weights are quantised; norms, biases and rope factors stay F32.
    if len(shape) < 2 or not name.endswith("weight") or "_norm.weight" in name:
        return F32
    if quant in ("F32", "F16", "BF16"):
        return _DEFAULT_TYPE[quant]
    new = _DEFAULT_TYPE[quant]
    i = layer if layer is not None else 0
    n = n_layer
    ftype = quant
    if name == "output.weight" or (not has_output and name == "token_embd.weight"):
        if shape[0] % 256:
            new = Q8_0
        elif ftype in ("IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"):
            new = Q5_K
        elif new != Q8_0:
            new = Q6_K
    elif name == "token_embd.weight":
        if ftype in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
            new = Q2_K
        elif ftype in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
            new = IQ3_S
    elif ftype in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"):
        if "attn_v.weight" in name:
            new = Q4_K if n_gqa >= 4 else (IQ3_S if ftype in ("IQ2_S", "IQ2_M") else Q2_K)
        elif "ffn_down" in name:
            if i < n // 8:
                new = IQ3_S if ftype in ("IQ2_S", "IQ2_M") else Q2_K
        elif "attn_output.weight" in name:
            if ftype in ("IQ1_S", "IQ1_M"):
                new = IQ2_XXS
            elif ftype in ("IQ2_S", "IQ2_M"):
                new = IQ3_S
    elif "attn_v.weight" in name:
        if ftype == "Q2_K":
            new = Q4_K if n_gqa >= 4 else Q3_K
        elif ftype == "Q2_K_S" and n_gqa >= 4:
            new = Q4_K
        elif ftype == "IQ3_XXS":
            new = Q4_K if n_gqa >= 4 else (IQ3_XXS if imatrix else IQ3_S)
        elif ftype in ("IQ3_XS", "IQ3_S") and n_gqa >= 4:
            new = Q4_K
        elif ftype == "IQ3_M":
            new = Q4_K
        elif ftype == "Q3_K_M":
            new = Q5_K if i < 2 else Q4_K
        elif ftype == "Q3_K_L":
            new = Q5_K
        elif ftype in ("IQ4_NL", "IQ4_XS") and n_gqa >= 4:
            new = Q5_K
        elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
            new = Q6_K
        elif ftype == "Q4_K_S" and i < 4:
            new = Q5_K
        if is_70b and new in (Q3_K, Q4_K):
            new = Q5_K
    elif "attn_k.weight" in name:
        if ftype == "IQ3_XS":
            new = IQ3_XXS
        elif ftype == "IQ3_XXS":
            new = IQ2_S
    elif "attn_q.weight" in name:
        if ftype == "IQ3_XS":
            new = IQ3_XXS
        elif ftype == "IQ3_XXS":
            new = IQ2_S
    elif "ffn_down" in name:
        if ftype == "Q2_K":
            new = Q3_K
        elif ftype == "Q2_K_S":
            if i < n // 8:
                new = Q4_K
        elif ftype == "IQ3_XXS" and not imatrix:
            new = Q4_K if i < n // 8 else Q3_K
        elif ftype == "Q3_K_M":
            new = Q5_K if i < n // 16 else Q4_K
        elif ftype == "IQ3_M" and i < n // 8:
            new = Q4_K
        elif ftype == "Q3_K_L":
            new = Q5_K
        elif ftype == "Q4_K_M":
            if _use_more_bits(i, n):
                new = Q6_K
        elif i < n // 8 and ftype in ("IQ4_NL", "IQ4_XS") and not imatrix:
            new = Q5_K
        elif ftype == "Q5_K_M" and _use_more_bits(i, n):
            new = Q6_K
        elif ftype == "Q4_K_S" and i < n // 8:
            new = Q5_K
        elif ftype in ("Q4_0", "Q5_0") and imatrix and i < n // 8:
            new = Q4_1 if ftype == "Q4_0" else Q5_1
    elif "attn_output.weight" in name:
        if ftype == "Q2_K":
            new = Q3_K
        elif ftype == "IQ3_XXS":
            new = IQ3_S
        elif ftype in ("Q3_K_M", "IQ3_M"):
            new = Q4_K
        elif ftype == "Q3_K_L":
            new = Q5_K
    elif "ffn_gate" in name or "ffn_up" in name:
        if ftype == "IQ3_XS" and n // 8 <= i < 7 * n // 8:
            new = IQ3_XXS
    block = _block_size(new)
    if shape[0] % block:
        new = _FALLBACK.get(new, new)
        if shape[0] % _block_size(new):
            new = F16
    return new


def _block_size(type_id: int) -> int:
    from r1desk.engine.gguf.header import ggml_type_sizes

    return ggml_type_sizes()[type_id][0]
