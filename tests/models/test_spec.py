import json

import pytest

from models.darknet_cfg import parse_cfg
from models.errors import SpecError
from models.spec import ModelSpec, Normalisation, read_class_names

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def make_spec():
    return ModelSpec.from_cfg(parse_cfg("yolov4-tiny", classes=2, height=416, width=416), ["insulator", "defect"])


def test_manifest_round_trip(tmp_path):
    spec = make_spec()
    spec.save(tmp_path)
    again = ModelSpec.load(tmp_path)
    assert again == spec
    assert again.num_candidates == 13 * 13 * 3 + 26 * 26 * 3
    assert again.normalisation == Normalisation("RGB", (0.0, 0.0, 0.0), (255.0, 255.0, 255.0))


def test_class_names_must_match_the_network():
    with pytest.raises(SpecError, match="2 classes, 3 names"):
        ModelSpec.from_cfg(parse_cfg("yolov4-tiny", classes=2), ["a", "b", "c"])


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(extra=1), "unknown keys \\['extra'\\]"),
    (lambda d: d.update(schema_version=9), "schema_version 9"),
    (lambda d: d.pop("anchors"), "missing keys \\['anchors'\\]"),
    (lambda d: d.update(batch_gears=[4, 2]), "batch_gears"),
    (lambda d: d.update(batch_gears=[]), "batch_gears: \\[\\] must be increasing positive integers"),
    (lambda d: d.update(heads=[{}]), "malformed value"),
    (lambda d: d["normalisation"].update(colour="YUV"), "normalisation.colour"),
    (lambda d: d.update(class_names=["a", "a"]), "duplicates"),
])
def test_bad_manifest_names_file_and_key(tmp_path, edit, message):
    data = make_spec().to_dict()
    edit(data)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError, match=message) as info:
        ModelSpec.load(path)
    assert str(path) in str(info.value)


def test_class_names_from_file_or_list(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("# power line\ninsulator\n\ndefect  # broken disc\n")
    assert read_class_names(str(path)) == ["insulator", "defect"]
    assert read_class_names("insulator,defect") == ["insulator", "defect"]
    with pytest.raises(SpecError):
        read_class_names("no such file.txt")


def test_a_second_stage_records_where_it_looks(tmp_path):
    from models.crops import CropSettings

    crops = {"parents": ["insulator"], "margin": 0.3, "max_aspect": 1.5, "overlap": 0.25, "min_side": 32}
    spec = ModelSpec.from_cfg(parse_cfg("yolov4-tiny", classes=1), ["defect"], crops=crops)
    spec.save(tmp_path)
    again = ModelSpec.load(tmp_path)
    assert again.crops == crops and again.crop_settings == CropSettings(0.3, 1.5, 0.25, 32)
    assert make_spec().crop_settings is None


@pytest.mark.parametrize("crops, message", [
    ({"parents": [], "margin": 0.3}, "crops.parents: expected a non-empty list"),
    ({"parents": ["insulator"], "margin": -1}, "crops: margin -1"),
    ({"parents": ["insulator"], "tiles": 3}, "crops: unknown keys \\['tiles'\\]"),
    ("insulator", "crops: expected an object"),
])
def test_bad_crop_settings_name_the_manifest_and_key(tmp_path, crops, message):
    data = make_spec().to_dict() | {"crops": crops}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(SpecError, match=f"manifest.json: {message}"):
        ModelSpec.load(tmp_path)
