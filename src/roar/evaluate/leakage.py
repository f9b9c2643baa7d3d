"""How much a masked image gives its mask away: the leakage audit beside every verdict.

- **Mask recoverability** (ROAD, Rong et al. 2022, section 4: a fill leaks when the filled pixels can
  be told from real ones). A small per-pixel classifier (three 3x3 convolutions, 16 channels) is
  trained for a fixed budget on a shard set's train split to predict which features were filled
  from the filled image alone, and scored on its test split by balanced accuracy, (TPR + TNR) / 2:
  0.5 means the mask cannot be recovered, 1.0 that it can be read off the image. Seeded: the same
  set gives the same number. Written as ``audit.json`` beside the set's manifest, tied to its
  settings hash (a rewritten set is audited again).
- **Mask-only accuracy** and **MoRF/LeRF consistency** come from retrain runs (``fill=mask_only``)
  and roar-eval's curves; the report joins them (roar.report.analysis).
"""

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import default_collate

from roar.data.masked_shards import MaskedShards
from roar.masking.at_load import LoadMasker
from roar.store.io import atomic_write_json, read_json
from roar.store.keys import AUDIT
from roar.store.manifest import read_manifest
from roar.utils.log import get_logger
from roar.utils.progress import progress

log = get_logger(__name__)

CONFOUNDED = 0.75  # balanced accuracy above which a verdict is marked "confounded by leakage" (halfway to 1.0)


def read_split(folder: Path, manifest: dict, split: str, limit: int):
    """(filled images, removed masks) of up to ``limit`` samples of a shard set's split, in shard order
    (a uint8 set's images filled as its retrain runs see them: roar.masking.at_load)."""
    shards = MaskedShards(folder, split, manifest, shuffle_buffer=0)
    taken = []
    for sample in shards.samples_with_masks():
        taken.append(sample)
        if len(taken) >= limit:
            break
    batch = default_collate(taken)
    if shards.masked_at_load:
        batch["image"] = LoadMasker(manifest, None)({**batch})["image"]
    return batch["image"], batch["removed"]


def mask_recoverability(folder, steps: int = 200, batch_size: int = 64, seed: int = 0, limit: int = 2000):
    """The recoverability of one shard set's masks (its train split trains, its test split scores)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    x, m = read_split(folder, manifest, "train", limit)
    xt, mt = read_split(folder, manifest, "test", limit)
    return recoverability(x, m, xt, mt, steps, batch_size, seed)


def recoverability(x, m, xt, mt, steps: int = 200, batch_size: int = 64, seed: int = 0):  # noqa: PLR0913 (train and test arrays and the probe's settings)
    """{balanced_accuracy, tpr, tnr, ...} of a per-pixel classifier trained on filled images ``x`` to
    predict their removed masks ``m``, scored on (``xt``, ``mt``); None where there is nothing to tell
    apart (no feature masked, or all)."""
    if not m.any() or m.all() or not mt.any() or mt.all():
        return None
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        c, k = x.shape[1], m.shape[1]
        net = nn.Sequential(
            nn.Conv2d(c, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, k, 3, padding=1),
        )
    share = m.float().mean()
    pos_weight = (1 - share) / share  # both classes weigh the same: balanced accuracy is the goal
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(int(steps)):
        idx = torch.randint(len(x), (min(int(batch_size), len(x)),), generator=g)
        loss = F.binary_cross_entropy_with_logits(net(x[idx]), m[idx].float(), pos_weight=pos_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = torch.cat([net(chunk) > 0 for chunk in xt.split(256)])
    tpr = float((pred & mt).sum() / mt.sum())
    tnr = float((~pred & ~mt).sum() / (~mt).sum())
    return {
        "balanced_accuracy": (tpr + tnr) / 2,
        "tpr": tpr,
        "tnr": tnr,
        "steps": int(steps),
        "n_train": len(x),
        "n_test": len(xt),
        "seed": int(seed),
    }


def audit_sets(sets: dict, steps: int, seed: int) -> list:
    """Audit every complete shard set of ``sets`` ({folder: manifest or None}) that masks something
    and holds both splits (roar-mask and roar-pipeline, after writing; ``steps`` 0: none); one progress
    bar, one printed line per ranking, mode and fill; the records returned."""
    todo = [
        (f, m)
        for f, m in sets.items()
        if m and float(m.get("fraction", 0)) > 0 and {"train", "test"} <= set(m["counts"])
    ]
    if not steps or not todo:
        return []
    audits = []
    with progress(len(todo), "audit", "set") as bar:
        for f, m in todo:
            audits.append(audit_set(f, m, steps, seed))
            bar.update(1)
    print_audits(audits)
    return audits


def print_audits(audits: list) -> None:
    rows = {}
    for a in audits:
        if a["recoverability"]:
            rows.setdefault((a["estimator"], a["mode"], a["fill"]), []).append(
                (a["fraction"], a["recoverability"]["balanced_accuracy"])
            )
    log.info(
        f"[roar-mask] mask recoverability (balanced accuracy; 0.5: the mask cannot be told from the image, "
        f"above {CONFOUNDED}: verdicts confounded):"
    )
    for (est, mode, fill), points in sorted(rows.items()):
        log.info(f"  {est:16s} {mode:6s} {fill:16s} " + "  ".join(f"t={t:g}: {b:.3f}" for t, b in sorted(points)))


def audit_set(folder, manifest: dict, steps: int, seed: int):
    """The set's audit, read back when it was made from this manifest with these settings, else computed and written."""
    folder = Path(folder)
    wanted = {"settings_hash": manifest["settings_hash"], "steps": int(steps), "seed": int(seed)}
    done = read_json(folder / AUDIT)
    if isinstance(done, dict) and all(done.get(k) == v for k, v in wanted.items()):
        return done
    s = manifest  # a manifest holds its settings at the top level
    result = mask_recoverability(folder, steps=steps, seed=seed)
    record = {
        **wanted,
        **{k: s.get(k) for k in ("estimator", "reduce", "patch", "mode", "fraction")},
        "fill": s.get("fill_label"),
        "recoverability": result,
    }
    atomic_write_json(folder / AUDIT, record)
    return record
