"""Where a second stage looks: one crop for a compact box, square tiles along a long one, DVPP-aligned, inside."""

import numpy as np
import pytest

from models.crops import CropSettings, boxes_in_crop, crop_regions

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def assert_valid(crops, width, height):
    assert crops.dtype == np.int64 and crops.shape[1] == 4 and len(crops)
    assert (crops[:, :2] >= 0).all() and (crops[:, 2] <= width).all() and (crops[:, 3] <= height).all()
    assert (crops % 2 == 0).all()  # even corners, so even widths and heights: DVPP's 4:2:0 crop alignment
    assert ((crops[:, 2] > crops[:, 0]) & (crops[:, 3] > crops[:, 1])).all()


def test_a_compact_box_is_one_crop_with_its_margin():
    crops = crop_regions((100, 100, 140, 130), 640, 480, CropSettings(margin=0.25))
    assert_valid(crops, 640, 480)
    # 0.25 of the short side (30 px) = 7.5 px on every side, rounded outwards to even coordinates.
    assert crops.tolist() == [[92, 92, 148, 138]]


@pytest.mark.parametrize("vertical", [False, True])
def test_a_long_box_is_cut_into_overlapping_square_tiles_that_cover_it(vertical):
    box = (100, 50, 400, 100) if not vertical else (50, 100, 100, 400)  # 300 x 50
    settings = CropSettings(margin=0.2, overlap=0.25)
    crops = crop_regions(box, 640, 640, settings)
    assert_valid(crops, 640, 640)
    sides = np.stack([crops[:, 2] - crops[:, 0], crops[:, 3] - crops[:, 1]], axis=1)
    assert (np.abs(sides - 70) <= 2).all()  # short side 50 + 2 x 10 margin, square
    along = crops[:, [0, 2]] if not vertical else crops[:, [1, 3]]
    along = along[np.argsort(along[:, 0])]
    # From the margin before the box to the margin after it, no gap, neighbours overlapping >= a quarter.
    assert along[0, 0] <= 90 and along[-1, 1] >= 410
    assert (along[1:, 0] <= along[:-1, 1] - 0.25 * 70 + 2).all()
    assert len(crops) == 6  # ceil((320 - 70) / 52.5) = 5 steps, evenly spread: not one tile more than needed


def test_a_diagonal_string_is_covered_by_a_grid_of_tiles_no_larger_than_max_side():
    box = (100, 100, 400, 300)  # a string hanging diagonally: its box is wide in both directions
    crops = crop_regions(box, 640, 480, CropSettings(margin=0.1, max_side=0.25))  # tiles <= 120 px
    assert_valid(crops, 640, 480)
    sides = np.concatenate([crops[:, 2] - crops[:, 0], crops[:, 3] - crops[:, 1]])
    assert sides.max() <= 122 and sides.min() >= 118  # corners rounded outwards to even: up to 2 px more
    xs, ys = sorted(set(crops[:, 0].tolist())), sorted(set(crops[:, 1].tolist()))
    assert len(crops) == len(xs) * len(ys) and len(xs) > 2 and len(ys) > 1  # a grid
    # The whole expanded box is covered: every pixel of it lies in some tile.
    covered = np.zeros((480, 640), bool)
    for x1, y1, x2, y2 in crops:
        covered[y1:y2, x1:x2] = True
    assert covered[80:320, 80:420].all()
    # Without the limit, the same box would be one tile as large as its short side: a defect would shrink.
    assert (crop_regions(box, 640, 480, CropSettings(margin=0.1))[:, 2:] -
            crop_regions(box, 640, 480, CropSettings(margin=0.1))[:, :2]).min() >= 240


def test_crops_at_the_picture_edge_stay_inside_and_keep_their_size():
    crops = crop_regions((0, 0, 20, 200), 101, 151, CropSettings(margin=0.5))
    assert_valid(crops, 100, 150)  # an odd picture: its even part
    assert ((crops[:, 2] - crops[:, 0]) == 40).all()  # shifted inside rather than cut short
    assert crops[:, 1].min() == 0 and crops[:, 3].max() == 150


def test_a_tiny_box_is_grown_to_the_smallest_side():
    crops = crop_regions((50, 50, 53, 54), 200, 200, CropSettings(min_side=32))
    assert_valid(crops, 200, 200)
    assert (crops[:, 2] - crops[:, 0]).min() >= 32 and (crops[:, 3] - crops[:, 1]).min() >= 32


def test_children_half_inside_are_targets_the_rest_are_not():
    children = np.asarray([[10, 10, 20, 20], [45, 10, 55, 20], [48, 10, 58, 20], [70, 70, 80, 80]], np.float32)
    kept, local = boxes_in_crop(children, (0, 0, 50, 50), min_visible=0.5)
    assert kept.tolist() == [True, True, False, False]
    assert local.tolist() == [[10, 10, 20, 20], [45, 10, 50, 20]]  # clipped to the crop, in its pixels


@pytest.mark.parametrize("bad", [dict(margin=-0.1), dict(max_aspect=0.5), dict(overlap=1.0), dict(min_side=1),
                                 dict(max_side=0.0), dict(max_side=1.5)])
def test_settings_are_checked(bad):
    with pytest.raises(ValueError):
        CropSettings(**bad)


def test_a_pictures_crops_are_each_cut_once_for_the_first_parent_asking():
    from models.crops import picture_crops

    box = (100, 150, 400, 200)
    single = crop_regions(box, 640, 360, CropSettings())
    crops = picture_crops([box, box, (500, 20, 540, 60)], 640, 360, CropSettings())
    assert [rect for rect, parent in crops if parent == 0] == [tuple(r) for r in single.tolist()]
    assert {parent for _, parent in crops} == {0, 2}  # the duplicate parent adds nothing
