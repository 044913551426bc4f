"""The C kernels of core (everything else is in pyproject.toml).

``-ffp-contract=off``: no fused multiply-adds, so the kernels give the bits of the Python code
they replace (sensorium_desktop/core/_kernels.c). Optional: without a C compiler the package
installs and runs the Python code (slower) — unless ``SENSORIUM_REQUIRE_KERNELS=1`` (set by
scripts/setup.sh, which installs a compiler): then a failed build fails the install, instead
of leaving the Python code, or an older build in a checkout, in use without a word.
"""

import os

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sensorium_desktop.core._kernels",
            ["sensorium_desktop/core/_kernels.c"],
            extra_compile_args=["-O2", "-ffp-contract=off", "-fno-fast-math"],
            optional=os.environ.get("SENSORIUM_REQUIRE_KERNELS") != "1",
        )
    ]
)
