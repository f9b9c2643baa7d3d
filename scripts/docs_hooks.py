"""mkdocs hooks: the reference pages generated from roar's own configs, registries and help texts when the site is
built (``make docs``), so they cannot drift from what the commands accept.

``<!-- roar:cli -->`` becomes every command's help text; ``<!-- roar:config -->`` every config group's options (the
YAML files and the options made from the registries) and every section's keys with their comments;
``<!-- roar:experiments -->`` every experiment with its bill (roar-plan without the data).
"""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
STAGES = ("train", "attribute", "mask", "eval", "report", "plan")
GROUPS = ("data", "model", "augment", "recipe", "trainer", "logger", "paths", "debug", "experiment")


def cli_reference() -> str:
    from roar.stages.pipeline import HELP

    parts = []
    for stage in STAGES:
        template = yaml.safe_load((CONF / f"{stage}.yaml").read_text())["hydra"]["help"]["template"]
        text = template.replace("$APP_CONFIG_GROUPS", "(the groups and their options: Configuration)").rstrip()
        parts += [f"## roar-{stage}", "", "```text", text, "```", ""]
    parts += ["## roar-pipeline", "", "```text", HELP.rstrip(), "```", ""]
    return "\n".join(parts)


def first_comment(path: Path) -> str:
    """The first comment line of a YAML file (its description), without the '#'."""
    for line in path.read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @package"):
            return line.lstrip("#").strip().replace("|", "\\|")
    return ""


def group_table(group: str, registered: dict) -> list:
    folder = CONF / group
    rows = {p.stem: first_comment(p) for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}
    for name, note in registered.items():
        rows.setdefault(name, note)
    return (
        [f"### `{group}=`", "", "| option | what it is |", "|---|---|"]
        + [f"| `{name}` | {note} |" for name, note in sorted(rows.items())]
        + [""]
    )


def config_reference() -> str:
    from roar.data.registry import DATASETS
    from roar.estimators import available
    from roar.masking.fills import FILLS
    from roar.models.registry import MODELS

    parts = [
        "## Config groups",
        "",
        "`group=option` on any command; options without a YAML file are made from roar's",
        "registries (and from registered plug-ins).",
        "",
    ]
    registered = {"model": {n: "registered model" for n in MODELS}, "data": {n: "registered dataset" for n in DATASETS}}
    for group in GROUPS:
        parts += group_table(group, registered.get(group, {}))
    parts += group_table("fill", {n: (FILLS[n].fn.__doc__ or "").strip().split("\n")[0] for n in FILLS})
    parts += [
        "### `estimator=` (and `attribute.estimators=[...]`)",
        "",
        ", ".join(f"`{n}`" for n in available()),
        "",
        "Besides these: `captum-<any Captum attribution class>`, `cam-<any pytorch-grad-cam class>`, "
        "`imported-<name>` (maps imported with `roar-attribute import=`), `mask-tv<lambda>` for any lambda.",
        "",
    ]
    for hydra_group in ("launcher", "sweeper"):
        parts += group_table(f"hydra/{hydra_group}", {})
    parts += ["## Keys", "", "The shared root (`conf/roar.yaml`) and each stage's section, as the files have them:", ""]
    for path in [CONF / "roar.yaml", *sorted((CONF / "sections").glob("*.yaml"))]:
        parts += [f"### `{path.relative_to(CONF)}`", "", "```yaml", path.read_text().rstrip(), "```", ""]
    return "\n".join(parts)


RUN_HERE = {  # experiments run in full on embedded data here, with the results page that shows them
    "roar_digits": "roar-digits",
    "kar_digits": "roar-digits",
    "roar_toy": "roar-toy",
    "fpa_digits": "fpa-digits",
    "roar_shapes": "oracle-shapes",
    "missingness_shapes": "missingness",
    "missingness_vit_shapes": "token-drop",
    "overinterp_shapes": "overinterpretation",
    "overinterp_shortcut_shapes": "overinterpretation",
    "masks_shapes": "learned-masks",
}


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return ""


def experiments_table() -> str:
    """Every experiment of conf/experiment/ with what it reproduces (its first comment line) and its bill from
    roar-plan, without its data: trainings, training steps, attribution passes, bytes in the mask format it uses."""
    import tempfile

    from roar.config import compose_config
    from roar.plan.estimate import h100_hours
    from roar.plan.run import make_plan

    rows = [
        "| experiment | what it is | trainings | training steps | attribution passes | bytes | H100-hours (est.) "
        "| run here |"
    ]
    rows.append("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as out:
        for path in sorted((CONF / "experiment").glob("*.yaml")):
            cfg = compose_config("pipeline", [f"experiment={path.stem}", f"paths.output_root={out}"])
            plan = make_plan(cfg)
            page = RUN_HERE.get(path.stem)
            here = f"in full on embedded data ([results](../results/{page}.md))" if page else "dry run"
            rows.append(
                f"| `{path.stem}` | {first_comment(path)} | {plan['trainings']['total']} | "
                f"{plan['training_steps']:.3g} | {plan['attribution']['passes']:.3g} | "
                f"{size(plan['disk_bytes']['total'])} ({plan['mask_format']}) | {h100_hours(cfg, plan):.3g} | {here} |"
            )
    return "\n".join(rows)


MARKERS = {
    "<!-- roar:cli -->": cli_reference,
    "<!-- roar:config -->": config_reference,
    "<!-- roar:experiments -->": experiments_table,
}


def on_page_markdown(markdown, page, config, files):
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
