"""Names: the strings that name settings in folders and tables, and their parsers.

A settings hash (``settings_hash``) names a set of settings; a ranking's name (``ranking_name``,
``parse_ranking``) names an estimator's ranking (``grad``, ``ig.sum``, ``grad.patch4``); a fraction's
(``fraction_name``) and a fill's (``fill_label``) name their folders; ``check_name`` guards an
experiment's name. The keys (roar.store.keys) build folders from these; nothing else spells them.
"""

import hashlib
import json
import re

from roar.errors import RoarError
from roar.utils.plain import to_plain


def settings_hash(settings: dict) -> str:
    """sha256 of a JSON-able dict, independent of key order: the identity of a set of settings."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def flat(d: dict, prefix: str = "") -> dict:
    """A nested dict as one level of dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``)."""
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def settings_changes(before: dict, after: dict, limit: int = 6) -> str:
    """What differs between two sets of settings, for a refusal: ``key: old -> new; ...`` (at most ``limit``)."""
    old, new = flat(before), flat(after)
    changed = [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
    ]
    return "; ".join(changed[:limit]) + (" ..." if len(changed) > limit else "")


def feature_label(reduce: str, patch: int | None = None) -> str:
    """What a ranking ranks, in one string (the report's ``reduce`` column): ``abs_sum``, ``sum.patch4``."""
    return str(reduce) if patch is None else f"{reduce}.patch{int(patch)}"


def split_feature(label: str):
    """(reduce, patch) of a ``feature_label``."""
    reduce, _, patch = str(label).partition(".patch")
    return reduce, (int(patch) if patch else None)


def ranking_name(estimator: str, reduce: str = "abs_sum", patch: int | None = None) -> str:
    """The folder name of an estimator's ranking: ``grad`` (abs_sum per pixel, the default),
    ``grad_x_input.sum`` (signed sum), ``grad.patch4`` (4x4 patches ranked by their mean).
    ``reduce`` may be a ``feature_label`` that carries the patch (``sum.patch4``)."""
    reduce, named = split_feature(reduce)
    patch = named if patch is None else patch
    name = estimator if reduce == "abs_sum" else f"{estimator}.{reduce}"
    return name if patch is None else f"{name}.patch{int(patch)}"


def parse_ranking(name: str):
    """(estimator, reduce, patch) of a ranking name, the inverse of ``ranking_name``: ``ig.sum`` ->
    (ig, sum, None), ``grad.patch4`` -> (grad, abs_sum, 4). A dot between two digits belongs to a number
    in the estimator's name (``mask-tv0.01.sum`` -> (mask-tv0.01, sum, None))."""
    estimator, *parts = re.split(r"(?<!\d)\.|\.(?!\d)", str(name))
    patch = None
    if parts and parts[-1].startswith("patch") and parts[-1][5:].isdigit():
        patch = int(parts.pop()[5:])
    if len(parts) > 1:
        raise RoarError(f"ranking {name!r}: write <estimator>[.<reduce>][.patch<size>], e.g. ig.sum or grad.patch4.")
    return estimator, (parts[0] if parts else "abs_sum"), patch


def fraction_name(fraction: float) -> str:
    """``0.1`` -> "0.1", ``0`` -> "0": the shortest exact decimal, so two fractions never share a folder."""
    return format(float(fraction), "g")


def fill_label(fill) -> str:
    """A fill's name in paths: its name alone when its config is only the name (``channel_mean``),
    else the name and a digest of the whole config (``constant-1f3a9c2e``), so ``fill.value=[0.2]``
    and ``fill.value=[0.8]`` never share a folder."""
    plain = dict(to_plain(fill))
    if set(plain) == {"name"}:
        return str(plain["name"])
    return f"{plain['name']}-{settings_hash(plain)[:8]}"


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(name) -> str:
    """An experiment name is one folder below the output root: letters, digits, '.', '_' and '-', not
    starting with '.' or '-' (so ``..``, an absolute path or an empty name never write elsewhere)."""
    name = "" if name is None else str(name)  # name=2024 reaches us as a number
    if not NAME.fullmatch(name):
        raise RoarError(
            f"name={name!r}: an experiment name is one folder name of letters, digits, '.', '_' and '-' "
            f"(starting with a letter or digit), e.g. name=roar_digits_try2. Choose where outputs go with "
            f"paths.output_root=... (or ROAR_OUTPUTS)."
        )
    return name
