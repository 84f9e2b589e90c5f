"""``POST /v1/edit`` and the ``POST /v1/project`` job on a served StyleGAN2 run: edits move the
image and are reproducible, a projection reconstructs an uploaded image better than the average
latent does and leaves the shared model untouched, and bad requests are one-line 4xx answers."""

from __future__ import annotations

import io
import json
import time
import zipfile

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

import ganforge  # noqa: E402
from ganforge.provenance import read_provenance  # noqa: E402
from ganforge.server import ServerConfig, create_app  # noqa: E402
from server_fixtures import make_gan_run  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit-server")
    ganforge.train_gan(ganforge.GanConfig(data="digits", max_images=64, resolution=16, width=8, z_dim=16,
                                          batch_size=16, steps=2, pl_weight=0.0, sample_every=0, progress=False,
                                          tensorboard=False, arch="stylegan2"), out=root / "runs" / "sg2")
    make_gan_run(root / "runs", "dcgan")
    with TestClient(create_app(ServerConfig(runs=[root / "runs"]))) as c:
        yield c


def _pixels(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(float)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / max(((a - b) ** 2).mean(), 1e-9)))


def test_edit_moves_the_sample_reproducibly(client, tmp_path):
    def edit(strength: float, direction: str = "sefa-0") -> bytes:
        r = client.post("/v1/edit", json={"run": "sg2", "seed": 3, "direction": direction, "strength": strength})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        return r.content

    base, again = edit(0.0), edit(0.0)
    assert np.array_equal(_pixels(base), _pixels(again))  # same request, same image
    moved = [np.abs(_pixels(edit(s)) - _pixels(base)).mean() for s in (1.0, 3.0)]
    assert 0 < moved[0] < moved[1]  # further along the direction, further from the sample
    assert np.abs(_pixels(edit(3.0, "pca-1")) - _pixels(base)).mean() > 0
    (tmp_path / "e.png").write_bytes(base)
    meta = read_provenance(tmp_path / "e.png")
    assert meta["ai_generated"] and meta["method"] == "edit" and meta["params"]["direction"] == "sefa-0"


@pytest.mark.parametrize("body, status, words", [
    ({"run": "dcgan", "direction": "sefa-0", "strength": 1}, 422, "stylegan2"),
    ({"run": "sg2", "direction": "sideways", "strength": 1}, 422, "unknown direction"),
    ({"run": "sg2", "direction": "sefa-0", "strength": 50}, 422, "strength"),
    ({"run": "sg2", "direction": "sefa-0", "strength": True}, 422, "bool"),
    ({"run": "nope", "direction": "sefa-0"}, 404, "unknown run"),
])
def test_edit_errors_are_one_line(client, body, status, words):
    r = client.post("/v1/edit", json=body)
    assert r.status_code == status, r.text
    text = json.dumps(r.json())
    assert words in text.lower() or words in text, text
    assert "Traceback" not in text and "/tmp" not in text


def _wait(client, job_id: str, limit_s: float = 120) -> dict:
    end = time.time() + limit_s
    while time.time() < end:
        state = client.get(f"/v1/jobs/{job_id}").json()
        if state["status"] in ("done", "failed", "cancelled"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_project_job_reconstructs_the_upload_and_leaves_the_model_alone(client):
    sample = client.post("/v1/generate", json={"run": "sg2", "n": 1, "seed": 7}).content
    from sklearn.datasets import load_digits

    digit = (load_digits().images[4] / 16.0 * 255).astype(np.uint8)  # a real image, not the model's
    target = Image.fromarray(digit).resize((16, 16), Image.BILINEAR).convert("RGB")
    average = _pixels(client.post("/v1/edit", json={"run": "sg2", "seed": 11, "truncation": 1e-6}).content)
    buf = io.BytesIO()
    target.save(buf, "PNG")
    r = client.post("/v1/project", data={"run": "sg2", "steps": "60", "space": "w+"},
                    files={"image": ("t.png", buf.getvalue(), "image/png")})
    assert r.status_code == 202, r.text
    state = _wait(client, r.json()["id"])
    assert state["status"] == "done", state
    result = client.get(f"/v1/jobs/{state['id']}/result")
    with zipfile.ZipFile(io.BytesIO(result.content)) as zf:
        assert set(zf.namelist()) == {"reconstruction.png", "latent.safetensors", "latent.npz", "summary.json"}
        summary = json.loads(zf.read("summary.json"))
        recon = _pixels(zf.read("reconstruction.png"))
    truth = np.asarray(target).astype(float)
    assert summary["steps"] == 60 and summary["space"] == "w+"
    assert _psnr(recon, truth) > _psnr(average, truth) + 3  # much closer than the average latent's image
    after = client.post("/v1/generate", json={"run": "sg2", "n": 1, "seed": 7}).content
    assert np.array_equal(_pixels(sample), _pixels(after))  # the served model did not change


def test_project_errors_are_one_line(client):
    png = io.BytesIO()
    Image.new("RGB", (20, 20), (9, 9, 9)).save(png, "PNG")
    cases = [({"run": "dcgan", "steps": "5"}, True, None, "stylegan2"),
             ({"run": "sg2", "steps": "5000"}, True, 422, "steps"),
             ({"run": "sg2", "space": "z"}, True, 422, "space"),
             ({"run": "sg2"}, False, 422, "image")]
    for data, with_image, status, words in cases:
        files = {"image": ("x.png", png.getvalue(), "image/png")} if with_image else None
        r = client.post("/v1/project", data=data, files=files)
        if status is None:  # accepted as a job; it fails with the one-line reason
            assert r.status_code == 202, r.text
            state = _wait(client, r.json()["id"])
            assert state["status"] == "failed" and words in json.dumps(state), state
        else:
            assert r.status_code == status and words in r.text, r.text


def test_models_say_which_runs_can_be_edited_and_the_page_has_the_sliders(client):
    runs = {r["name"]: r for r in client.get("/v1/models").json()["runs"]}
    assert runs["sg2"]["w_space"] is True and runs["dcgan"]["w_space"] is False
    page = client.get("/").text
    assert 'id="edit-direction"' in page and 'id="edit-strength"' in page
    script = client.get("/static/app.js").text
    assert '"/v1/edit"' in script
