"""--align faces: the FFHQ square from five landmarks, the alignment that levels and centres the
eyes, the detector's choices (largest confident face; none is a one-line error), and the detector
weights' offline error. (YuNet itself needs its downloaded model, which tests do not have.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ganforge.editing.common import EditError
from ganforge.editing.faces import align, detect_landmarks, ffhq_quad
from ganforge.errors import GanforgeError


def test_ffhq_square_of_a_level_face():
    quad = ffhq_quad([40, 50], [60, 50], [42, 75], [58, 75])
    # eye distance 20, eye-to-mouth 25: side = 2 x max(2 x 20, 1.8 x 25) = 90, centre 10 % of the way to the mouth
    assert np.allclose(quad, [[5, 7.5], [5, 97.5], [95, 97.5], [95, 7.5]])


def _face(angle_deg: float, size: int = 200):
    """A photo with five coloured landmark dots of a face rotated by ``angle_deg``, and the dots."""
    lm = np.array([[85, 90], [115, 90], [100, 105], [88, 125], [112, 125]], float)
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    lm = (lm - 100) @ rot.T + 100
    img = Image.new("RGB", (size, size), (128, 128, 128))
    draw = ImageDraw.Draw(img)
    colours = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 0), (0, 255, 255)]
    for (x, y), c in zip(lm, colours):
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=c)
    return img, lm


def _centre(arr: np.ndarray, colour) -> np.ndarray:
    mask = (np.abs(arr.astype(int) - np.array(colour)).sum(-1) < 60)
    ys, xs = np.nonzero(mask)
    assert len(xs), colour
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("angle", [0.0, 25.0, -40.0])
def test_alignment_levels_and_centres_the_eyes(angle):
    img, lm = _face(angle)
    out = np.asarray(align(img, lm, 128))
    left, right = _centre(out, (255, 0, 0)), _centre(out, (0, 0, 255))
    assert abs(left[1] - right[1]) < 1.5  # eyes level whatever the head's roll
    assert abs((left[0] + right[0]) / 2 - 64) < 1.5  # centred
    assert left[0] < right[0]
    assert abs((right[0] - left[0]) - 128 * 30 / 126) < 2  # eye distance: 30 px of a 2 x 1.8 x 35 = 126-px square
    mouth = (_centre(out, (255, 255, 0)) + _centre(out, (0, 255, 255))) / 2
    assert mouth[1] > left[1] + 10  # the mouth below the eyes


class FakeDetector:
    def __init__(self, faces):
        self.faces = faces

    def detect(self, bgr):
        return (0 if self.faces is None else len(self.faces)), self.faces


def test_detector_picks_the_largest_confident_face_and_a_photo_without_one_is_one_line():
    small = [10, 10, 20, 20] + [1] * 10 + [0.99]
    large = [50, 50, 80, 80] + list(range(10)) + [0.95]
    unsure = [0, 0, 150, 150] + [7] * 10 + [0.3]
    img = Image.new("RGB", (160, 160))
    got = detect_landmarks(img, detector=FakeDetector(np.array([small, large, unsure], np.float32)))
    assert np.array_equal(got, np.arange(10, dtype=float).reshape(5, 2))
    for faces in (None, np.array([unsure], np.float32)):
        with pytest.raises(EditError) as info:
            detect_landmarks(img, "beach.jpg", detector=FakeDetector(faces))
        assert "no face found in beach.jpg" in str(info.value) and "\n" not in str(info.value)


def test_missing_detector_weights_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(tmp_path / "none"))
    with pytest.raises(GanforgeError) as info:
        detect_landmarks(Image.new("RGB", (64, 64)))
    assert "opencv-yunet" in str(info.value) and "\n" not in str(info.value)
