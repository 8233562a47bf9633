"""Build of the compiled BGZF/BAM kernels (``carmscope.bam._native``, one C file).

Everything else about the package is in ``pyproject.toml``. The extension needs only a C
compiler and the Python headers: libdeflate is found at run time in the pinned ``deflate``
package (see ``src/carmscope/bam/_native.c``), so no library headers are assumed.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "carmscope.bam._native",
            sources=["src/carmscope/bam/_native.c"],
            extra_compile_args=["-O3", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"],
            extra_link_args=["-pthread"],
        )
    ]
)
