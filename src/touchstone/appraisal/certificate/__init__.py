"""An approved appraisal's certificate: the document, issuing it, verifying it publicly.

`document.py` renders what a certificate shows (digest, PDF, HTML page) from plain data and
knows nothing of the database; `service.py` issues one and rebuilds it for verification;
`router.py` serves both, the verification page without signing in.
"""
