"""The training config: one data set (`path`) or several (`sources`), each error naming its key."""

from __future__ import annotations

import pytest
import yaml

from core.errors import ConfigError
from train.config import load_train_config

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def write(tmp_path, data: dict):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"cfg": "yolov4-tiny", "data": data}))
    return path


@pytest.mark.parametrize("data, message", [
    ({"classes": ["a"]}, "give either path (one data set) or sources (several)"),
    ({"classes": ["a"], "path": "x", "sources": [{"name": "s", "path": "y"}]}, "not both or neither"),
    ({"classes": ["a"], "sources": [{"name": "s", "path": "y"}, {"name": "s", "path": "z"}]},
     "sources: names must differ"),
    ({"classes": ["a"], "sources": [{"name": "s", "path": "y", "class_map": {"defect": "missing-cap"}}]},
     "sources.s.class_map: ['missing-cap'] are not in data.classes"),
    ({"classes": ["a"], "sources": [{"name": "s", "path": "y"}], "val_path": "v"},
     "val_path: with sources, give each source its own val_path"),
    ({"classes": ["a"], "sources": [{"name": "bad name", "path": "y"}]}, "data.sources.0.name"),
])
def test_data_sources_are_checked(tmp_path, data, message):
    with pytest.raises(ConfigError) as refused:
        load_train_config(write(tmp_path, data))
    assert message in str(refused.value) and str(tmp_path / "train.yaml") in str(refused.value)


def test_source_paths_are_relative_to_the_config(tmp_path):
    config = load_train_config(write(tmp_path, {"classes": ["a"], "sources": [
        {"name": "idd", "path": "../shared/idd", "format": "coco", "val_path": "held"}]}))
    source = config.data.source_list()[0]
    assert source.path == str((tmp_path / "../shared/idd").resolve()) and source.val_path == str(tmp_path / "held")
    single = load_train_config(write(tmp_path, {"classes": ["a"], "path": "voc", "val_path": "v"})).data
    assert [(s.name, s.path, s.format, s.val_path) for s in single.source_list()] == \
        [("data", str(tmp_path / "voc"), "voc", str(tmp_path / "v"))]
