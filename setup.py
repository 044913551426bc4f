"""The C kernels of the clock model (everything else is in pyproject.toml).

``-ffp-contract=off``: no fused multiply-adds, so the kernels give the bits of the Python code
they replace (sensorium_desktop/core/_kernels.c). ``optional``: without a C compiler the
package installs and runs the Python code (slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sensorium_desktop.core._kernels",
            ["sensorium_desktop/core/_kernels.c"],
            extra_compile_args=["-O2", "-ffp-contract=off", "-fno-fast-math"],
            optional=True,
        )
    ]
)
