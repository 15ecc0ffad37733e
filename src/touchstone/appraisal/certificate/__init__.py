"""An approved appraisal's certificate: the document, issuing it, verifying it publicly.

`document.py` reduces what a certificate shows to plain data and its digest, knowing
nothing of the database; `pdf.py` (with `romanise.py` and `fonts/`) prints it, `page.py`
renders the public verification page. `service.py` issues a certificate and rebuilds it
for verification; `router.py` serves both, the verification page without signing in.
"""
