"""AIPP emulation: camera-style NV12 of a colour chart reproduces the training preprocessing (RGB / 255)."""

import numpy as np
import pytest

from models.aipp import AippConfig
from models.darknet_cfg import parse_cfg
from models.spec import ModelSpec, Normalisation
from pipeline.devices.nv12 import align, empty_nv12, planes, rgb_to_nv12

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)

PATCH = 16


def colour_chart() -> np.ndarray:
    """8x6 patches of 16x16 pixels: primaries, secondaries, greys and skin/sky/foliage tones (RGB)."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
               (0, 0, 0), (255, 255, 255), (128, 128, 128), (64, 64, 64), (192, 192, 192), (115, 82, 68),
               (194, 150, 130), (98, 122, 157), (87, 108, 67), (133, 128, 177), (103, 189, 170), (214, 126, 44),
               (80, 91, 166), (193, 90, 99), (94, 60, 108), (157, 188, 64), (224, 163, 46), (56, 61, 150)]
    rng = np.random.default_rng(0)
    colours += [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(48 - len(colours))]
    chart = np.zeros((6 * PATCH, 8 * PATCH, 3), dtype=np.uint8)
    for i, colour in enumerate(colours):
        r, c = divmod(i, 8)
        chart[r * PATCH:(r + 1) * PATCH, c * PATCH:(c + 1) * PATCH] = colour
    return chart


def spec(colour="RGB", mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0)):
    return ModelSpec.from_cfg(parse_cfg("yolov4-tiny", classes=1), ["x"], normalisation=Normalisation(colour, mean, std))


def patch_interiors(image_chw: np.ndarray) -> np.ndarray:
    """Patch centres only: chroma subsampling blurs the one-pixel seams between patches, not the interiors."""
    inner = np.zeros(image_chw.shape[1:], dtype=bool)
    for r in range(6):
        for c in range(8):
            inner[r * PATCH + 2:(r + 1) * PATCH - 2, c * PATCH + 2:(c + 1) * PATCH - 2] = True
    return image_chw[:, inner]


def test_nv12_chart_reproduces_training_colours():
    chart = colour_chart()
    nv12 = rgb_to_nv12(chart)
    got = AippConfig.from_spec(spec()).apply_nv12(nv12, *chart.shape[:2])
    expected = chart.transpose(2, 0, 1).astype(np.float32) / 255.0
    error = np.abs(patch_interiors(got) - patch_interiors(expected))
    # Tolerance: limited range keeps 219 luma / 225 chroma levels of 256, so rounding Y, U and V to integers
    # moves RGB by up to ~0.6 + 0.8 + 1.0 levels in the worst channel, plus the 8-bit fixed-point matrix
    # (298/256 for 1.164). Measured: max 1.43/255, mean 0.40/255. 2.5/255 bounds it; the wrong matrix or range
    # is off by 20 (full range) to 40/255 (BT.709).
    assert error.max() <= 2.5 / 255, error.max() * 255
    assert error.mean() <= 0.6 / 255


def test_swapped_u_and_v_are_detected():
    chart = colour_chart()
    nv12 = rgb_to_nv12(chart)
    swapped = AippConfig.from_spec(spec())
    swapped = type(swapped)(**{**swapped.__dict__, "rbuv_swap": True})
    got = swapped.apply_nv12(nv12, *chart.shape[:2])
    expected = chart.transpose(2, 0, 1).astype(np.float32) / 255.0
    assert np.abs(patch_interiors(got) - patch_interiors(expected)).max() > 0.3


def test_full_range_matrix_on_limited_input_is_visibly_wrong():
    chart = colour_chart()
    got = AippConfig.from_spec(spec(), "bt601-full").apply_nv12(rgb_to_nv12(chart), *chart.shape[:2])
    expected = chart.transpose(2, 0, 1).astype(np.float32) / 255.0
    assert np.abs(patch_interiors(got) - patch_interiors(expected)).max() > 10 / 255


def test_bgr_and_mean_std_normalisation():
    chart = colour_chart()
    mean, std = (124.0, 117.0, 104.0), (58.4, 57.1, 57.4)
    got = AippConfig.from_spec(spec("BGR", mean, std)).apply_nv12(rgb_to_nv12(chart), *chart.shape[:2])
    bgr = chart[..., ::-1].transpose(2, 0, 1).astype(np.float32)
    expected = (bgr - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    assert np.abs(patch_interiors(got) - patch_interiors(expected)).max() <= 4 / 57.1


def test_dvpp_alignment():
    buffer = empty_nv12(1918, 1078)
    assert buffer.shape == (1078 * 3 // 2, 1920) and align(1080, 16) == 1088
    y, uv = planes(buffer, 1918, 1078)
    assert y.shape == (1078, 1918) and uv.shape == (539, 959, 2)


@pytest.mark.parametrize("matrix", ["bt601-limited", "bt709-limited", "bt601-full"])
def test_render_aipp_config(matrix):
    text = AippConfig.from_spec(spec(), matrix).render(416, 416)
    assert "input_format : YUV420SP_U8" in text and "rbuv_swap_switch : false" in text
    assert "var_reci_chn_0 : 0.003921569" in text
    assert text.count("matrix_r") == 9


def test_decoded_planes_copy_equals_ffmpeg_nv12_conversion(tmp_path):
    """The fast yuv420p path of frame_to_nv12 gives the same bytes as FFmpeg's own NV12 conversion, for a
    picture whose rows the decoder pads (line size above the width)."""
    import av

    from pipeline.devices.nv12 import frame_to_nv12, pack_nv12
    from tests.support.clips import encode_clip

    for width, height in ((640, 360), (334, 202)):  # 334: rows padded beyond the width in the decoder
        clip = encode_clip(tmp_path / f"c{width}.mp4", frames=3, width=width, height=height)
        with av.open(str(clip)) as container:
            frame = next(container.decode(video=0))
        assert frame.format.name == "yuv420p"
        buffer, w, h = frame_to_nv12(frame)
        packed = frame.reformat(format="nv12").to_ndarray()
        expected = pack_nv12(packed[:h, :w], packed[frame.height:frame.height + h // 2, :w].reshape(h // 2, w // 2, 2))
        assert (w, h) == (width // 2 * 2, height // 2 * 2)
        assert np.array_equal(buffer, expected)


def test_padding_is_what_dvpp_writes_for_the_graphs_rgbvalue():
    """mxpi_imageresize fills the padding from RGBValue (MxpiPluginsUtils.cpp SetImageBackground); without it
    DVPP leaves zeros, which AIPP turns into dark green. The rendered graph asks for the training letterbox's
    colour, and the mock writes the same bytes."""
    from pipeline.devices.nv12 import dvpp_background

    assert dvpp_background(0, 0, 0) == (0, 128, 128)
    assert dvpp_background(114, 114, 114) == (114, 128, 128)  # a grey keeps U = V = 128
    assert dvpp_background(255, 0, 0) == (76, 84, 255)


@pytest.mark.parametrize("colour, mean, std", [("RGB", (0.0, 0.0, 0.0), (255.0, 255.0, 255.0)),
                                               ("BGR", (124.0, 117.0, 104.0), (58.4, 57.1, 57.4))])
def test_normalisation_table_equals_the_float32_arithmetic(colour, mean, std):
    """The lookup table gives, for every 8-bit value after the colour conversion, exactly the float32
    `value * var_reci - (mean + min) * var_reci` the AIPP's normalisation stage computes; into a batch slot too."""
    aipp = AippConfig.from_spec(spec(colour, mean, std))
    rng = np.random.default_rng(1)
    height, width = 36, 52
    nv12 = empty_nv12(width, height)
    nv12[...] = rng.integers(0, 256, nv12.shape, dtype=np.uint8)
    got = aipp.apply_nv12(nv12, height, width)
    batch = np.full((2, 3, height, width), np.nan, np.float32)
    aipp.apply_nv12(nv12, height, width, out=batch[1])
    # The reference: the 8-bit RGB of the colour-conversion stage (checked against the charts above), then
    # the normalisation in float32, channel by channel, as the AIPP computes it.
    import cv2

    y, uv = planes(nv12, width, height)
    full_uv = uv.repeat(2, axis=0).repeat(2, axis=1)
    rgb = cv2.transform(np.dstack([y, full_uv]), aipp._csc)
    for c in range(3):
        scale = np.float32(aipp.var_reci_chn[c])
        offset = np.float32((aipp.mean_chn[c] + aipp.min_chn[c]) * aipp.var_reci_chn[c])
        expected = np.subtract(np.multiply(rgb[..., c], scale, dtype=np.float32), offset)
        assert np.array_equal(got[c], expected), c
    assert np.array_equal(batch[1], got) and np.isnan(batch[0]).all()
