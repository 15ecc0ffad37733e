"""Failures of the appraisal workflow (records, life cycle, approval) with stable codes.

The vision side's failures (frames, engines, snapshots) are in `exceptions.py`.
"""

from __future__ import annotations

from touchstone.core.errors import Conflict, Forbidden, InvalidInput, NotFound


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
