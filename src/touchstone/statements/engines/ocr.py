"""OCR for scanned statement pages, behind a Protocol so a tenant can plug in another engine.

The default, rapidocr, ships its PP-OCR ONNX models inside the wheel: nothing is downloaded
(the models are found next to the package and their checksums match, so its downloader is
never reached). It runs on the CPU with a bounded number of threads, since a job worker
shares the machine with the API.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class OcrWord:
    """Text found on the image and its box in pixels (left, top, right, bottom)."""

    text: str
    left: float
    top: float
    right: float
    bottom: float
    confidence: float


class OcrEngine(Protocol):
    def read(self, image: npt.NDArray[np.uint8]) -> list[OcrWord]:
        """Words (or phrases) on a grayscale page image, in any order."""
        ...


class RapidOcrEngine:
    """rapidocr on onnxruntime's CPU provider, built on first use and reused after.

    Calls are serialised with a lock: rapidocr keeps per-call settings on the instance, and a
    worker runs one extraction job at a time anyway.
    """

    def __init__(
        self, threads: int = 1, min_confidence: float = 0.5, detection_side: int = 960
    ) -> None:
        self.threads = threads
        self.min_confidence = min_confidence
        self.detection_side = detection_side
        self._engine: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        from rapidocr import RapidOCR  # heavy (onnxruntime, OpenCV): only when a scan arrives

        return RapidOCR(
            params={
                "Global.log_level": "warning",
                "Global.use_cls": False,  # pages are upright; saves a model pass per line
                "Global.text_score": self.min_confidence,
                "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                # Text boxes are found on a copy at most 960 px long (a third of the work at
                # 200 dpi) and read from crops of the full image, so accuracy is kept.
                "Det.limit_type": "max",
                "Det.limit_side_len": self.detection_side,
            }
        )

    def read(self, image: npt.NDArray[np.uint8]) -> list[OcrWord]:
        with self._lock:
            if self._engine is None:
                self._engine = self._load()
            result = self._engine(image)
        if result.boxes is None or result.txts is None:
            return []
        words: list[OcrWord] = []
        for box, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
            xs, ys = box[:, 0], box[:, 1]
            words.append(
                OcrWord(
                    str(text),
                    float(xs.min()),
                    float(ys.min()),
                    float(xs.max()),
                    float(ys.max()),
                    float(score),
                )
            )
        return words
