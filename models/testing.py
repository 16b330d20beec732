"""Deterministic fakes for tests and for `inspector model verify` without downloads.

`random_state` gives every layer parameter values with the statistics of a trained network (unit-scale
activations all the way down, a spread of objectness scores), so comparisons against another implementation
exercise real numbers rather than saturated sigmoids.
"""

from __future__ import annotations

import numpy as np

from models.darknet_cfg import DarknetCfg
from models.weights import darknet_layout


def random_state(cfg: DarknetCfg, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    state = {}
    heads = set(cfg.class_dependent_convs)
    for index, tensors in darknet_layout(cfg):
        for name, shape in tensors:
            if name.endswith("conv.weight"):
                fan_in = int(np.prod(shape[1:]))
                gain = 0.5 if index in heads else 1.0
                value = rng.normal(0.0, gain * np.sqrt(1.0 / fan_in), shape)
            elif name.endswith("bn.gamma"):
                value = rng.uniform(0.6, 1.2, shape)
            elif name.endswith("bn.moving_variance"):
                value = rng.uniform(0.5, 1.5, shape)
            elif name.endswith("conv.bias"):
                value = rng.normal(-1.0, 1.0, shape)  # head bias: objectness spread around sigmoid(-1)
            else:  # beta, moving_mean
                value = rng.normal(0.0, 0.1, shape)
            state[name] = value.astype(np.float32)
    return state


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A BGR uint8 picture with structure (gradients, shapes, noise), not a flat field."""
    rng = np.random.default_rng(seed)
    import cv2

    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                      (x + y) * 255 // max(width + height - 2, 1)], axis=-1).astype(np.uint8)
    for _ in range(12):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.circle(image, centre, int(rng.integers(8, max(9, width // 6))), colour, -1)
        else:
            size = (int(rng.integers(8, max(9, width // 4))), int(rng.integers(8, max(9, height // 4))))
            cv2.rectangle(image, centre, (centre[0] + size[0], centre[1] + size[1]), colour, -1)
    noise = rng.integers(-12, 13, image.shape)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
