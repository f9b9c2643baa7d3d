"""The one thing pyproject.toml cannot say: the Hydra configs live in the top-level ``conf/`` (where a researcher
looks for them and edits experiments) and an installed roar, editable or a wheel, carries them as ``roar.conf``."""

from setuptools import find_namespace_packages, setup

CONF = ["roar.conf", *(f"roar.conf.{name}" for name in find_namespace_packages("conf"))]

setup(
    # namespaces: hydra_plugins.roar_sweeper (Hydra takes sweepers only from that namespace)
    packages=[*find_namespace_packages("src", include=["roar*", "hydra_plugins*"]), *CONF],
    package_dir={"": "src", "roar.conf": "conf"},
    package_data={"roar": ["py.typed"], **{name: ["*.yaml"] for name in CONF}},
)
