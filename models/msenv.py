"""Environment MindSpore needs before its first import on these CPUs.

On AVX-512 machines MindSpore's default oneDNN path runs convolutions about 100x slower than with AVX2 kernels
(../shared/reference/README.md, "This machine"). oneDNN reads the variable once, when the library loads, so it
must be set before `import mindspore`. Every module that imports MindSpore imports this one first; a value the
user set is kept.
"""

import os
import sys

os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
# Graph-mode compile failures write analysis files into the working directory; keep them out of the way.
os.environ.setdefault("MS_COMPILER_CACHE_ENABLE", "0")

if "mindspore" in sys.modules and os.environ.get("ONEDNN_MAX_CPU_ISA") != "AVX2":  # pragma: no cover
    import warnings

    warnings.warn("mindspore was imported before models.msenv: convolutions may run ~100x slower", stacklevel=2)
