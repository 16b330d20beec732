"""Validation errors name the file and the key, show the value (its password masked), and nothing that is not
the key's value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.configfile import Strict, format_validation_errors

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


class Camera(Strict):
    id: str
    url: str
    rate_fps: float
    port: int = 554


def errors(data: dict) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Camera(**data)
    return format_validation_errors("cams.yaml", caught.value).splitlines()


def test_a_wrong_value_is_shown_with_its_password_masked():
    assert errors({"id": "a", "url": "rtsp://host/s", "rate_fps": "fast"}) == [
        "cams.yaml: rate_fps: Input should be a valid number (value: 'fast')"]
    assert errors({"id": "a", "url": "rtsp://host/s", "rate_fps": 1, "port": "rtsp://u:pw-1234@host/s"}) == [
        "cams.yaml: port: Input should be a valid integer (value: 'rtsp://u:***@host/s')"]
    assert errors({"id": "a", "url": 5, "rate_fps": 1}) == [
        "cams.yaml: url: Input should be a valid string (value: 5)"]


def test_a_missing_key_shows_no_value():
    # pydantic's input for a missing key is the mapping around it: not the key's value, so not shown.
    assert errors({"id": "a", "url": "rtsp://host/s"}) == ["cams.yaml: rate_fps: Field required"]


def test_an_unknown_key_is_named():
    assert errors({"id": "a", "url": "x", "rate_fps": 1, "rate": 2}) == [
        "cams.yaml: rate: Extra inputs are not permitted (value: 2)"]
