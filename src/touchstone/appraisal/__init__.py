"""Gold-loan appraisal: customers, items, the live touchstone purity test, valuation, approval.

The appraisal's own life cycle sits at this level, in DESIGN.md's fixed file names
(`router.py`, `schemas.py`, `models.py`, `service.py`, `repository.py`, `dependencies.py`,
`tasks.py`, `exceptions.py`) plus `chain.py` (its hash-chained audit trail), `valuation.py`
(pure Decimal arithmetic) and `item_classifier.py` (an optional ONNX model suggesting an
item's type from its photo). Each larger concern is a sub-package repeating the same names:

- `purity/`: the live purity test (records, pipeline, detector `engines/`, frames, and
  `live/` with the WebRTC and WebSocket transports and the appraiser's page);
- `certificate/`: the certificate document, issuing it, and its public verification page;
- `customers/`, `org_settings/`: borrowers, and what an org admin configures.

`models.py` and `schemas.py` stay one per module: the tables reference each other (an
evidence row points at a purity test, a certificate at an appraisal) and form one migration,
and the API bodies share their field types (karats, grams, rupees). Other modules import
only `service.py` (tests/test_architecture.py).
"""
