"""Environment MindSpore needs before its first import on these CPUs.

On AVX-512 machines MindSpore's default oneDNN path runs convolutions about 100x slower than with AVX2 kernels
(../shared/reference/README.md, "This machine"). oneDNN reads the variable once, when the library loads, so it
must be set before `import mindspore`. Every module that imports MindSpore imports this one first; a value the
user set is kept.
"""

import os
import sys

_ISA_BEFORE = os.environ.get("ONEDNN_MAX_CPU_ISA")  # what oneDNN saw if MindSpore was already imported
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
# Graph-mode compile failures write analysis files into the working directory; keep them out of the way.
os.environ.setdefault("MS_COMPILER_CACHE_ENABLE", "0")


def late_import_warning(isa_before, mindspore_loaded: bool):
    """The warning to give when MindSpore was loaded before this module could set the variable, else None."""
    if mindspore_loaded and isa_before is None:
        return ("mindspore was imported before models.msenv, without ONEDNN_MAX_CPU_ISA: convolutions may run "
                "~100x slower on AVX-512 CPUs (set ONEDNN_MAX_CPU_ISA=AVX2 in the environment)")
    return None


_WARNING = late_import_warning(_ISA_BEFORE, "mindspore" in sys.modules)
if _WARNING:
    import warnings

    warnings.warn(_WARNING, stacklevel=2)
