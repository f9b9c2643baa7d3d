"""The results pages' figures and numbers, regenerated from the studies' own runs: each study's commands run as its
page gives them (through scripts/readme_numbers.py's sections; finished work is skipped), then the figures its report
drew are copied to ``docs/results/img/<study>/`` and, with the numbers the commands printed and the machine they ran
on, written on its page between ``<!-- figures -->`` and ``<!-- /figures -->``. Nothing is hand-copied: rerun it
after a change that moves a number.

    .venv/bin/python scripts/docs_figures.py [--outputs outputs] [--only roar-digits,roar-toy,...]

Studies and their cost from nothing on 2 CPU cores: roar-digits (make demo, about 6 min), roar-toy (seconds),
fpa-digits (a few minutes), token-drop (minutes), oracle-shapes and linear-fill (20 to 50 min each).
"""

import argparse
import contextlib
import io
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import readme_numbers  # noqa: E402  (the studies' commands, run as written)

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "results"
# study page -> (readme_numbers' sections that run it, the experiment folders whose reports hold its figures)
STUDIES = {
    "roar-digits": (["demo", "demo_one_thread"], ["roar_digits"]),
    "roar-toy": (["toy"], ["roar_toy"]),
    "fpa-digits": (["fpa"], ["fpa_digits"]),
    "token-drop": (["vit"], ["missingness_vit_shapes"]),
    "oracle-shapes": (["shapes"], ["roar_shapes"]),
    "linear-fill": (["linear", "linear_shapes"], ["roar_digits", "roar_shapes"]),
}
START, END = "<!-- figures -->", "<!-- /figures -->"


def caption(png: Path) -> str:
    """A figure's caption from its file name (``roar_curves`` -> "roar curves")."""
    return png.stem.replace("_", " ").replace("-", " ")


def place(study: str, folders: list, outputs: Path) -> list:
    """Copy every figure of the studies' reports into docs/results/img/<study>/; the names copied."""
    target = RESULTS / "img" / study
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    copied = []
    for folder in folders:
        for png in sorted((outputs / folder / "report").glob("*.png")):
            name = png.name if len(folders) == 1 else f"{folder}-{png.name}"
            shutil.copy(png, target / name)
            copied.append(name)
    if not copied:
        sys.exit(f"{study}: no figures under {', '.join(str(outputs / f / 'report') for f in folders)}")
    return copied


def machine() -> str:
    """The CPU the numbers were measured on and torch's thread count there (training's float sums follow both)."""
    import torch

    name = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
            break
    return f"{name}, {torch.get_num_threads()} threads"


def list_on_page(study: str, copied: list, printed: str) -> None:
    """Write the figures and the printed numbers between the page's markers (appended when it has none)."""
    page = RESULTS / f"{study}.md"
    text = page.read_text()
    figures = "\n\n".join(f"![{caption(Path(n))}](img/{study}/{n})" for n in copied)
    when = f"{time.strftime('%Y-%m-%d')}, {machine()}"
    block = (
        f"{START}\n## Figures and numbers, regenerated\n\n`scripts/docs_figures.py --only {study}` ({when}). The text "
        f"above was written from an earlier run of the same commands; numbers of a training run may differ in their "
        f"last digits between CPUs and between thread counts (their floating-point sums differ; where a page shows "
        f"a run with OMP_NUM_THREADS=1 beside the default, that is the size of the difference).\n\n{figures}\n\n"
        f"```text\n{printed.strip()}\n```\n{END}"
    )
    if START in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    page.write_text(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outputs", default="outputs", help="the output root the studies' commands write into")
    parser.add_argument("--only", default=",".join(STUDIES), help="comma-separated studies: " + ", ".join(STUDIES))
    args = parser.parse_args()
    outputs = Path(args.outputs).resolve()
    for study in args.only.split(","):
        sections, folders = STUDIES[study]
        printed = io.StringIO()
        for section in sections:
            print(f"\n## {study}: {section}\n", flush=True)
            with contextlib.redirect_stdout(printed):
                readme_numbers.SECTIONS[section](outputs)
            print(printed.getvalue())
        for folder in folders:  # a section that stops before the report (token drop): the report draws the figures
            if not (outputs / folder / "report").is_dir():
                readme_numbers.roar("roar-report", f"experiment={folder}", outputs=outputs)
        copied = place(study, folders, outputs)
        list_on_page(study, copied, printed.getvalue())
        print(f"{study}: {len(copied)} figures -> {RESULTS / 'img' / study}")


if __name__ == "__main__":
    main()
