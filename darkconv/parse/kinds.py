"""The vocabulary of the registry: options, layer kinds and dialects (data classes only).

A :class:`Dialect` is one Darknet's parser as data: the sections it knows (with their options and
defaults) and the facts where the two Darknets compute differently (batch-norm formula, weights
header, activations its CPU code cannot compute...).  ``registry`` holds pjreddie's table and
``registry_alexeyab`` AlexeyAB's; a network picks one when it is parsed (``Network.dialect``).
No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "USED",
    "TRAIN",
    "UNSUPPORTED",
    "UNBUILT",
    "Opt",
    "Kind",
    "Dialect",
    "opt",
    "train",
]

# USED: changes what the network computes or how its weights are laid out.
# TRAIN: read by Darknet but only matters for training (reported as unused, like "Unused field").
# UNSUPPORTED: a meaning darkconv does not implement: a positioned error when the cfg is parsed.
# UNBUILT: shapes, parameters and the weights layout are exact (build --json, weights conversion
#   work), but darkconv has no forward pass for it: building a torch model is a positioned error.
USED, TRAIN, UNSUPPORTED, UNBUILT = "used", "train", "unsupported", "unbuilt"


@dataclass(frozen=True)
class Opt:
    """One option: its value type (int, float, str, ints, floats, act) and Darknet's default.
    An ``UNBUILT`` option only stops a model from being built when its value is not the default."""

    name: str
    type: str
    default: Any = None
    cls: str = USED
    positive: bool = False  # zero or negative is an error (sizes, filters, strides)


@dataclass(frozen=True)
class Kind:
    """One section type.  ``impl`` names the formula the torch side runs (default: ``name``):
    the same section computes differently in the two Darknets only where ``impl`` differs."""

    name: str
    options: tuple[Opt, ...]
    aliases: tuple[str, ...] = ()
    unsupported_reason: str | None = None  # the whole section is refused at parse time
    unbuilt_reason: str | None = None  # parsed and sized, but no torch forward
    impl: str = ""
    _index: Mapping[str, Opt] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", MappingProxyType({o.name: o for o in self.options}))
        if not self.impl:
            object.__setattr__(self, "impl", self.name)

    def option(self, name: str) -> Opt | None:
        return self._index.get(name)


def opt(name: str, type_: str, default: Any = None, cls: str = USED, positive: bool = False) -> Opt:
    return Opt(name, type_, default, cls, positive)


def train(*names: str, type_: str = "float") -> tuple[Opt, ...]:
    return tuple(Opt(n, type_, None, TRAIN) for n in names)


@dataclass(frozen=True)
class Dialect:
    """One Darknet as data.  Every field is a fact a module looks up instead of testing the name.

    * ``bn_formula``/``bn_eps``: inference batch norm, ``"sqrt_var_then_eps"`` is
      ``(x - mean) / (sqrt(var) + eps)`` (pjreddie's ``normalize_cpu``), ``"sqrt_var_plus_eps"`` is
      ``(x - mean) / sqrt(var + eps)`` (AlexeyAB's ``normalize_cpu`` and ``fuse_conv_batchnorm``).
    * ``fuse_at_load``: the apps fold batch norm into the convolutions when the weights load.
    * ``activation_math``: ``"double"`` or ``"float"``, the precision activations.c computes in.
    * ``cpu_zero_activations``: names ``activate()`` has no case for: it returns 0 for them.
    * ``self_activations``: per kind, the names its forward computes itself (not via activate()).
    * ``header``: (major, minor, revision) ``save_weights`` writes; ``seen64_needs_below_1000``:
      the 64-bit ``seen`` test also requires major and minor below 1000; ``seen32_signed``: a
      32-bit ``seen`` is read into an ``int`` (sign-extended) rather than a ``uint32_t``.
    * ``conv_raw_1x1``: when a 1x1 convolution skips im2col and reads its input as a matrix:
      ``"size1"`` (pjreddie: any stride) or ``"size1_stride_x1_dilation1"`` (AlexeyAB:
      convolutional_layer.c:1365; a stride_y != 1 then misreads the input).
    * ``letterbox_default``: whether ``detector test`` letterboxes without ``[net] letter_box=1``.
    * ``needs_2d_layer``: the parser divides by the number of layers with w > 1 and h > 1.
    * ``shortcut_same_hw``: ``[shortcut]`` asserts its from layers have the same w, h.
    * ``extra_anchors_ignored``: heads whose parser stops reading anchors at 2*num (others
      overflow their buffer: an error here).
    * ``bflops_total``: ``"double"`` or ``"float32"`` (parse_network_cfg_custom sums into a float).
    """

    name: str
    kinds: tuple[Kind, ...]
    activations: tuple[str, ...]
    bn_formula: str
    bn_eps: float
    fuse_at_load: bool
    activation_math: str
    cpu_zero_activations: frozenset[str]
    self_activations: Mapping[str, frozenset[str]]
    header: tuple[int, int, int]
    seen64_needs_below_1000: bool
    seen32_signed: bool
    batchnorm_bias_stored: bool
    conv_raw_1x1: str
    letterbox_default: bool
    needs_2d_layer: bool
    shortcut_same_hw: bool
    extra_anchors_ignored: frozenset[str]
    bflops_total: str
    source: str  # where the behaviour comes from (repository and commit)
    _by_name: Mapping[str, Kind] = field(init=False, compare=False, repr=False)
    _aliases: Mapping[str, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        by_name = {k.name: k for k in self.kinds}
        aliases = {a: k.name for k in self.kinds for a in (k.name, *k.aliases)}
        if len(by_name) != len(self.kinds) or len(aliases) != sum(
            1 + len(k.aliases) for k in self.kinds
        ):
            raise ValueError(f"dialect {self.name}: duplicate section name or alias")
        object.__setattr__(self, "_by_name", MappingProxyType(by_name))
        object.__setattr__(self, "_aliases", MappingProxyType(aliases))

    @property
    def by_name(self) -> Mapping[str, Kind]:
        return self._by_name

    @property
    def aliases(self) -> Mapping[str, str]:
        return self._aliases

    @property
    def darknet(self) -> str:
        """``"AlexeyAB's Darknet"``: for messages."""
        return f"{self.source.split('/')[0]}'s Darknet"

    def kind_for(self, section_name: str) -> Kind | None:
        """The kind for a section name as written (``conv`` -> convolutional), or None."""
        name = self._aliases.get(section_name)
        return self._by_name[name] if name else None

    def cpu_outputs_zero(self, kind: str, activation: str) -> bool:
        """True when this Darknet's CPU forward of a ``kind`` layer outputs 0 for ``activation``
        (``activate()`` in activations.c falls through its switch and returns 0)."""
        if activation not in self.cpu_zero_activations:
            return False
        return activation not in self.self_activations.get(kind, frozenset())
