"""Typed failures of the appraisal module, rendered as problem+json by the core handler.

Each `code` tells a client (or the operator configuring detectors) what to fix without
reading the detail text.
"""

from __future__ import annotations

from touchstone.core.errors import AppError, Conflict, Forbidden, InvalidInput, NotFound


class InvalidFrame(AppError):
    """A purity-test frame that is not a decodable JPEG/PNG or not a BGR image."""

    status, code, title = 422, "invalid_frame", "The frame is not a usable image"


class FrameTooLarge(InvalidFrame):
    """Refused from the header alone, before any pixel buffer is allocated."""

    status, code, title = 413, "frame_too_large", "The frame has more pixels than allowed"


class UnknownDetectorEngine(AppError):
    status, code, title = 422, "unknown_detector_engine", "No detector engine by that name"


class InvalidDetectorModel(AppError):
    """A configured ONNX model that cannot serve as a YOLOv8 detector for its stage."""

    status, code, title = 422, "invalid_detector_model", "The detector model cannot be used"


class InvalidPuritySnapshot(AppError):
    """A stored purity-test snapshot that this pipeline cannot resume from."""

    status, code, title = 422, "invalid_purity_snapshot", "The purity test cannot be resumed"


# --- the appraisal workflow: records, life cycle, approval ---------------------------------


class AppraisalNotFound(NotFound):
    """Also the answer for another branch's or another bank's appraisal."""

    code, title = "appraisal_not_found", "Appraisal not found"


class ItemNotFound(NotFound):
    code, title = "appraisal_item_not_found", "Item not found"


class CustomerNotFound(NotFound):
    code, title = "customer_not_found", "Customer not found"


class PurityTestNotFound(NotFound):
    code, title = "purity_test_not_found", "Purity test not found"


class DeviceNotFound(NotFound):
    code, title = "device_not_found", "Device not found"


class CertificateNotFound(NotFound):
    code, title = "certificate_not_found", "Certificate not found"


class IllegalTransition(Conflict):
    """The appraisal's status does not allow this step (e.g. approving a draft)."""

    code, title = "illegal_status_transition", "Not allowed in the appraisal's current status"


class OwnAppraisal(Forbidden):
    """Maker-checker: whoever appraised cannot approve or reject."""

    code, title = "maker_checker_violation", "You cannot decide on your own appraisal"


class BranchMismatch(Forbidden):
    code, title = "branch_mismatch", "Only the appraisal's own branch may do this"


class BranchRequired(InvalidInput):
    code, title = "branch_required", "Say which branch the appraisal belongs to"


class DeviceNotRegistered(Forbidden):
    """The org requires a registered device and the caller's `X-Device-Id` is not one."""

    code, title = "device_not_registered", "This device is not registered to you"


class NoPurityTest(Conflict):
    """A purity result or override for an item that never had a completed test."""

    code, title = "no_purity_test", "The item has no completed purity test"


class PurityTestClosed(Conflict):
    code, title = "purity_test_closed", "The purity test is already finished"


class PurityTestBusy(Conflict):
    code, title = "purity_test_busy", "The purity test is already streaming"


class GoldRateMissing(Conflict):
    code, title = "gold_rate_missing", "The org has no 24K gold rate yet"


class InvalidValuation(InvalidInput):
    code, title = "invalid_valuation", "The appraisal cannot be valued"


class InvalidLendingPolicy(InvalidInput):
    code, title = "invalid_lending_policy", "The lending policy is not valid"


class UnsupportedSdp(InvalidInput):
    code, title = "unsupported_sdp", "The WebRTC offer cannot be used"


class UnsupportedCodec(InvalidInput):
    code, title = "unsupported_codec", "The WebRTC offer has no supported video codec"


class LendingChecksFailed(Conflict):
    """Approval needs a valuation whose lending-rule checks all passed; rejecting does not."""

    code, title = "lending_checks_failed", "The valuation fails the lending rules"
