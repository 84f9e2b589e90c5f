"""Faces cropped and aligned the way FFHQ was, so a user's photo can be projected into an FFHQ
generator (``ganforge project PHOTO --model stylegan2-ffhq --align faces``).

Detection: OpenCV's YuNet face detector (``cv2.FaceDetectorYN``, in the opencv wheel ganforge
already depends on) with its ONNX model from the OpenCV model zoo, downloaded once through
ganforge's weights store and checked against the sha256 the zoo's git-LFS pointer publishes
(``ganforge weights fetch opencv-yunet``; offline: put the file in ``GANFORGE_WEIGHTS_DIR``).
YuNet gives five landmarks per face (both eyes, the nose tip, both mouth corners): what the FFHQ
alignment uses (it averages dlib's 68 points into exactly these).

Alignment (Karras et al., FFHQ): from the eye centres and mouth corners, an oriented square
centred a little below the eyes, its side the larger of 4× the eye distance and 3.6× the
eye-to-mouth distance, rotated so the eyes are level; resampled to the model's size (bicubic,
reflected borders where the square leaves the photo).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..weights.store import resolve
from .common import EditError

YUNET = "opencv-yunet"  # its entry: weights/catalog.py
MIN_SCORE = 0.8


def ffhq_quad(eye_left: np.ndarray, eye_right: np.ndarray, mouth_left: np.ndarray,
              mouth_right: np.ndarray) -> np.ndarray:
    """The FFHQ crop as four corners (top-left, bottom-left, bottom-right, top-right) in the
    photo's pixel coordinates; ``eye_left`` is the eye on the image's left."""
    eye_left, eye_right = np.asarray(eye_left, float), np.asarray(eye_right, float)
    mouth_left, mouth_right = np.asarray(mouth_left, float), np.asarray(mouth_right, float)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (mouth_left + mouth_right) * 0.5 - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]  # the square's horizontal axis
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def align(image: Image.Image, landmarks: np.ndarray, size: int) -> Image.Image:
    """``image`` cropped to the FFHQ square of ``landmarks`` (5×2: image-left eye, image-right eye,
    nose, image-left and image-right mouth corner) and resampled to ``size``²."""
    import cv2

    lm = np.asarray(landmarks, float).reshape(5, 2)
    quad = ffhq_quad(lm[0], lm[1], lm[3], lm[4])
    src = quad[[0, 1, 3]].astype(np.float32)  # top-left, bottom-left, top-right
    dst = np.float32([[0, 0], [0, size], [size, 0]])
    matrix = cv2.getAffineTransform(src, dst)
    arr = np.asarray(image.convert("RGB"))
    out = cv2.warpAffine(arr, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return Image.fromarray(out)


def detect_landmarks(image: Image.Image, what: str = "the image", detector=None) -> np.ndarray:
    """The five landmarks (5×2, image-left eye first) of the largest confident face in ``image``;
    a one-line :class:`EditError` when there is none. ``detector``: anything with
    ``detect(bgr) -> (n, faces)`` like ``cv2.FaceDetectorYN`` (default: YuNet from the store)."""
    import cv2

    arr = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()  # BGR
    if detector is None:
        detector = cv2.FaceDetectorYN.create(str(resolve(YUNET)), "", (arr.shape[1], arr.shape[0]),
                                             MIN_SCORE)
    else:
        set_size = getattr(detector, "setInputSize", None)
        if set_size is not None:
            set_size((arr.shape[1], arr.shape[0]))
    _, faces = detector.detect(arr)
    if faces is None or len(faces) == 0:
        raise EditError(f"no face found in {what} (--align faces needs a photo with a visible face)")
    faces = np.asarray(faces, float)
    faces = faces[faces[:, 14] >= MIN_SCORE] if faces.shape[1] > 14 else faces
    if len(faces) == 0:
        raise EditError(f"no face found in {what} (--align faces needs a photo with a visible face)")
    best = faces[np.argmax(faces[:, 2] * faces[:, 3])]  # the largest face
    lm = best[4:14].reshape(5, 2)
    # YuNet: the subject's right eye (image left) first, then left eye, nose, right and left mouth corners
    return lm


def align_face(image: Image.Image, size: int, what: str = "the image", detector=None) -> Image.Image:
    """``image``'s largest face, FFHQ-aligned at ``size``²."""
    return align(image, detect_landmarks(image, what, detector), size)
