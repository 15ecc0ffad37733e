"""The ONNX engine slot, with small embedding models this file builds with `onnx.helper`
(no download): loading and refusing models, the descriptor computed as documented,
selection by configuration, and recognition that never compares two engines' embeddings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import dlib
import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.attendance.conftest import API, enrol, needs_corpus, person, photo
from tests.conftest import Tenant
from touchstone.attendance import vision
from touchstone.attendance.engines import OnnxFaceEngine, face_engine
from touchstone.attendance.engines.dlib_engine import dlib_engine
from touchstone.attendance.engines.onnx_engine import landmarks_shape
from touchstone.attendance.exceptions import InvalidFaceModel
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.main import create_app

SIDE = 32
ENROLLED, OTHER = "deepface_person_02", "deepface_person_06"


def projection(seed: int = 3, outputs: int = 128) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(3 * SIDE * SIDE, outputs)).astype(np.float32)


def embedding_model(
    weights: np.ndarray, *, channels_last: bool = False, input_shape: list[object] | None = None
) -> bytes:
    """A linear "face model": the input image flattened (in CHW order) times `weights`."""
    shape = input_shape or ([1, SIDE, SIDE, 3] if channels_last else [1, 3, SIDE, SIDE])
    nodes = []
    source = "image"
    if channels_last:
        nodes.append(helper.make_node("Transpose", ["image"], ["chw"], perm=[0, 3, 1, 2]))
        source = "chw"
    nodes += [
        helper.make_node("Flatten", [source], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weights"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "linear_face_embedding",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, weights.shape[1]])],
        initializer=[numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "face.onnx"
    path.write_bytes(embedding_model(projection()))
    return path


def test_bad_models_are_refused_when_loaded(tmp_path: Path) -> None:
    cases = {
        "wide.onnx": embedding_model(projection(outputs=512)),
        "no_size.onnx": embedding_model(projection(), input_shape=[1, 3, "h", "w"]),
        "grey.onnx": embedding_model(projection()[: SIDE * SIDE], input_shape=[1, 1, SIDE, SIDE]),
        "garbage.onnx": b"not a model",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InvalidFaceModel):
            OnnxFaceEngine(tmp_path / name)
    with pytest.raises(InvalidFaceModel):
        OnnxFaceEngine(tmp_path / "missing.onnx")


@needs_corpus
def test_the_descriptor_is_the_models_output_on_the_aligned_scaled_face(
    model_file: Path, tmp_path: Path
) -> None:
    engine = OnnxFaceEngine(model_file, mean=127.5, std=127.5)
    assert engine.name.startswith("onnx-")
    image = vision.decode(photo(f"{ENROLLED}/1.jpg"))
    (face,) = vision.find_faces(engine, image)
    embedding = engine.embed(image, face)
    assert embedding.shape == (128,)
    assert abs(float(np.linalg.norm(embedding)) - 1) < 1e-5
    chip = np.asarray(dlib.get_face_chip(image, landmarks_shape(face), size=SIDE), np.float32)
    expected = ((chip - 127.5) / 127.5).transpose(2, 0, 1).reshape(-1) @ projection()
    assert np.allclose(embedding, expected / np.linalg.norm(expected), atol=1e-4)
    # Detection and the quality chip stay dlib's, so the enrolment gates do not move.
    assert engine.detect(image) == dlib_engine().detect(image)
    assert engine.chip(image, face).shape == (150, 150, 3)

    channels_last = tmp_path / "nhwc.onnx"
    channels_last.write_bytes(embedding_model(projection(), channels_last=True))
    assert np.allclose(OnnxFaceEngine(channels_last).embed(image, face), embedding, atol=1e-5)


def test_the_engine_is_chosen_by_configuration(settings: Settings, model_file: Path) -> None:
    assert face_engine(settings) is dlib_engine()
    onnx_settings = settings.model_copy(
        update={"face_engine": "onnx", "face_onnx_model": model_file}
    )
    chosen = face_engine(onnx_settings)
    assert isinstance(chosen, OnnxFaceEngine)
    assert face_engine(onnx_settings) is chosen  # loaded once per configuration
    with pytest.raises(InvalidFaceModel, match="FACE_ONNX_MODEL"):
        face_engine(settings.model_copy(update={"face_engine": "onnx"}))


@pytest.fixture
async def onnx_client(
    settings: Settings, database: Database, model_file: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The same tenant's API, with the ONNX engine configured."""
    onnx_settings = settings.model_copy(
        update={"face_engine": "onnx", "face_onnx_model": model_file}
    )
    app = create_app(onnx_settings, database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def _recognise(client: httpx.AsyncClient, tenant: Tenant, data: bytes) -> dict[str, object]:
    response = await client.post(
        f"{API}/recognitions",
        headers=tenant.headers,
        files={"photo": ("p.jpg", data, "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    (face,) = response.json()["faces"]
    assert isinstance(face, dict)
    return face


@needs_corpus
async def test_recognition_compares_only_embeddings_of_the_configured_engine(
    client: httpx.AsyncClient, onnx_client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    by_dlib = await person(client, tenant_a, "SV001")
    assert (await enrol(client, tenant_a, by_dlib, photo(f"{ENROLLED}/1.jpg"))).status_code == 201
    probe = photo(f"{ENROLLED}/1.jpg")
    assert (await _recognise(onnx_client, tenant_a, probe))["reason"] == "no_enrolled_faces"

    by_model = await person(client, tenant_a, "SV002")
    enrolled = await enrol(onnx_client, tenant_a, by_model, photo(f"{OTHER}/1.jpg"))
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["engine"].startswith("onnx-")
    same = await _recognise(onnx_client, tenant_a, photo(f"{OTHER}/1.jpg"))
    assert (same["person_id"], same["distance"]) == (by_model, 0.0)
    assert same["liveness"] == "not_assessed"
    # And the dlib engine still finds its own enrolled person, never the model's.
    assert (await _recognise(client, tenant_a, probe))["person_id"] == by_dlib
