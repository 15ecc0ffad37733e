"""Streaming a purity test: one run (`run.py`), whatever carries its frames.

`webrtc.py` and `websocket.py` are the two transports (WebSocket is the fallback when
WebRTC cannot connect); `page.py` serves the appraiser's camera page from `static/`.
"""
