"""Item photos: stored as evidence with their SHA-256, and classified when (and only when) a
`CLASSIFICATION_MODEL` is configured. The model here is built in memory with `onnx`."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.appraisal.conftest import API, RING, Bank, make_bank
from tests.conftest import Tenant, assert_problem
from touchstone.appraisal.valuation import ITEM_TYPES
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.main import create_app

BANGLE = ITEM_TYPES.index("bangle")


def classifier_model(path: Path) -> Path:
    """Mean colour -> one score per item type; any bright photo scores highest as a bangle."""
    weights = np.zeros((3, len(ITEM_TYPES)), np.float32)
    weights[:, BANGLE] = 5.0
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image"], ["mean"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["mean", "weights"], ["scores"]),
        ],
        "item_type",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, len(ITEM_TYPES)])],
        [numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, {"names": repr(dict(enumerate(ITEM_TYPES)))})
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def photo() -> bytes:
    return bytes(cv2.imencode(".jpg", np.full((120, 160, 3), (60, 200, 250), np.uint8))[1])


@pytest.fixture
async def classifying_client(
    settings: Settings, database: Database, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    model = classifier_model(tmp_path / "item_type.onnx")
    app = create_app(settings.model_copy(update={"classification_model": model}), database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_item_photo_is_evidence_and_unclassified_by_default(
    bank: Bank, client: httpx.AsyncClient
) -> None:
    appraisal_id = await bank.new_appraisal(RING)
    item_id = (await bank.items(appraisal_id))[0]["id"]
    url = f"{API}/appraisals/{appraisal_id}/items/{item_id}/photos"
    image = photo()
    response = await client.post(
        url, files={"photo": ("ring.jpg", image, "image/jpeg")}, headers=bank.appraiser.headers
    )
    assert response.status_code == 201, response.text
    evidence = response.json()
    assert evidence["kind"] == "item_photo"
    assert evidence["sha256"] == hashlib.sha256(image).hexdigest()
    downloaded = await client.get(evidence["download_url"])
    assert downloaded.content == image
    assert (await bank.items(appraisal_id))[0]["classification"] is None
    assert_problem(
        await client.post(
            url, files={"photo": ("x.jpg", b"GIF89a", "image/jpeg")}, headers=bank.appraiser.headers
        ),
        415,
    )


async def test_item_photo_is_classified_when_a_model_is_configured(
    classifying_client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    bank = await make_bank(classifying_client, tenant_a)
    appraisal_id = await bank.new_appraisal(RING)
    item_id = (await bank.items(appraisal_id))[0]["id"]
    response = await classifying_client.post(
        f"{API}/appraisals/{appraisal_id}/items/{item_id}/photos",
        files={"photo": ("ring.jpg", photo(), "image/jpeg")},
        headers=bank.appraiser.headers,
    )
    assert response.status_code == 201, response.text
    item = (await bank.items(appraisal_id))[0]
    assert item["classification"]["item_type"] == "bangle"
    assert item["classification"]["model"] == "item_type.onnx"
    assert 0 < item["classification"]["score"] <= 1
    assert item["item_type"] == "ring"  # a suggestion, never a replacement
