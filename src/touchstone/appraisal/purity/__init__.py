"""The live touchstone purity test: its records, its stage logic and the frames it sees.

`service.py` keeps the test's records (create, start, checkpoint, complete); `pipeline.py`
decides RUBBING -> ACID -> COMPLETED one frame at a time from what an engine detects
(`engines/`); `frames.py` decodes a client's frames safely; `live/` carries the frames in
(WebRTC, WebSocket, the appraiser's page) and the statuses out.
"""
