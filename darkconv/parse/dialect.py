"""Which Darknet a cfg was written for: the evidence only AlexeyAB's parser knows, and the choice.

:func:`detect` lists every section, option, activation or value form in a cfg that AlexeyAB's
parser reads and pjreddie's does not (``registry.PJREDDIE`` and ``registry.ALEXEYAB`` are compared,
nothing is listed by hand except the two exclusions below); :func:`choose_dialect` turns that
into ``Network.dialect`` and the reason ``darkconv build`` prints.  No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from darkconv.errors import CfgError, Span
from darkconv.parse import registry
from darkconv.parse.cfg import CfgDocument, Section
from darkconv.parse.kinds import TRAIN, UNSUPPORTED, Dialect

__all__ = ["Evidence", "detect", "choose_dialect"]

# Keys pjreddie's parse_network_cfg reads for every section (onlyforward, stopbackward, ...):
# AlexeyAB's table lists them too, so they are no evidence of AlexeyAB.
_PJREDDIE_GENERIC = frozenset(
    ("onlyforward", "stopbackward", "dontsave", "dontload", "numload", "dontloadscales",
     "learning_rate", "smooth")
)  # fmt: skip
# AlexeyAB-only keys that pjreddie's own cfgs carry (pjreddie ignores them): rnn.cfg has hidden=.
_NOT_EVIDENCE = frozenset({("rnn", "hidden")})


@dataclass(frozen=True)
class Evidence:
    """Something only AlexeyAB's parser knows, where the cfg uses it."""

    what: str  # "[route] groups", "[scale_channels]", "activation=mish in [convolutional]"
    line: int
    used: bool  # it changes inference (not just a training option)

    def __str__(self) -> str:
        return f"{self.what} at line {self.line}"


def detect(sections: Sequence[Section]) -> list[Evidence]:
    """Every AlexeyAB-only section, option, activation or value form in ``sections`` (after
    [net] too), in file order.  ``sections``: ``cfg.Section`` objects."""
    found: list[Evidence] = []
    for index, section in enumerate(sections):
        ab = registry.ALEXEYAB.kind_for(section.name)
        pj = registry.PJREDDIE.kind_for(section.name)
        if ab is None:
            continue
        if pj is None or (index == 0) != (pj.name == "net"):
            found.append(Evidence(f"[{section.name}]", section.span.line, True))
            continue
        for option in section.options:
            spec = ab.option(option.key)
            if spec is None:
                continue
            where = f"[{section.name}] {option.key}"
            mine = pj.option(option.key)
            if mine is None or (mine.cls == UNSUPPORTED and spec.cls != UNSUPPORTED):
                if option.key in _PJREDDIE_GENERIC or (pj.name, option.key) in _NOT_EVIDENCE:
                    continue
                found.append(Evidence(where, option.span.line, spec.cls != TRAIN))
            elif spec.type == "act" and option.value in registry.ALEXEYAB.activations:
                if option.value not in registry.PJREDDIE.activations:
                    found.append(
                        Evidence(
                            f"activation={option.value} in [{section.name}]",
                            option.span.line,
                            True,
                        )
                    )
            elif spec.type == "ints" and mine.type == "int" and "," in option.value.rstrip(","):
                found.append(Evidence(f"{where} with several layers", option.span.line, True))
    return found


def choose_dialect(
    doc: CfgDocument, dialect: str | None = None, default: str | None = None
) -> tuple[Dialect, str]:
    """The dialect to read ``doc`` with, and why: ``dialect`` if given; else AlexeyAB when the cfg
    uses anything only AlexeyAB's parser knows (the first such thing that changes inference is
    named, else the first); else ``default`` (a shipped cfg set's dialect), else pjreddie."""
    if dialect is not None:
        facts = registry.DIALECTS.get(dialect)
        if facts is None:
            raise CfgError(
                f"unknown dialect {dialect!r}: choose one of {', '.join(registry.DIALECTS)}",
                Span(doc.path),
            )
        return facts, f"{dialect}: chosen explicitly (--dialect / dialect=)"
    evidence = detect(doc.sections)
    if evidence:
        first = next((e for e in evidence if e.used), evidence[0])
        return registry.ALEXEYAB, f"alexeyab: {first}"
    if default is not None and default != registry.DEFAULT_DIALECT:
        return registry.DIALECTS[default], f"{default}: a cfg of {default}'s shipped set"
    return registry.PJREDDIE, "pjreddie: no AlexeyAB-only section, option or activation"
