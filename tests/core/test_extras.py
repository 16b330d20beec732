"""A command that needs an extra says which, instead of failing on an import."""

import sys

import pytest

from core.errors import ConfigError
from core.extras import TRAINING_PYTHON, require_extra
from inspector.cli import main

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def test_a_missing_module_names_the_extra():
    with pytest.raises(ConfigError, match=r"inspector train needs no_such_module_xyz, which is not installed: "
                                          r"pip install 'inspector\[train\]'"):
        require_extra("train", "train", ("json", "no_such_module_xyz"))
    require_extra("train", "train", ("json",))  # present: no error


def test_training_on_the_boxes_python_is_refused_clearly(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "version_info", (3, 9, 18, "final", 0))
    with pytest.raises(ConfigError, match="needs Python 3.10 or newer \\(this is 3.9\\)"):
        require_extra("export", "export", ("json",), TRAINING_PYTHON)
    assert main(["train", "--config", str(tmp_path / "t.yaml")]) == 1
    assert "inspector train needs Python 3.10 or newer" in capsys.readouterr().err
