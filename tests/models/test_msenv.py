"""models.msenv warns exactly when MindSpore was loaded before it could set ONEDNN_MAX_CPU_ISA."""

from models.msenv import late_import_warning


def test_warns_only_when_mindspore_came_first_without_the_variable():
    assert "ONEDNN_MAX_CPU_ISA" in late_import_warning(None, mindspore_loaded=True)
    assert late_import_warning(None, mindspore_loaded=False) is None  # set in time
    assert late_import_warning("AVX2", mindspore_loaded=True) is None  # the user set it before
    assert late_import_warning("AVX512_CORE", mindspore_loaded=True) is None  # the user's own choice, kept
