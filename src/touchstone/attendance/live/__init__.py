"""Marking from a live camera at a door or kiosk: JPEG frames over the platform's WebSocket.

The socket authenticates and stays authorized the way the purity test's does
(`core.stream_auth`): a bearer token, an `X-API-Key` header or `?access_token=` (browsers
cannot set headers on a WebSocket), re-checked every `STREAM_RECHECK_SECONDS` and at the
token's expiry; when the credential ends (4401) or loses `attendance:mark` (1008) an `error`
message says why and the socket closes.

Binary messages are frames (JPEG or PNG, at most `MAX_FRAME_BYTES` and `MAX_FRAME_PIXELS`);
text messages take only `{"type": "ping"}`. A frame that cannot be used gets an `error`
message and the stream goes on. At most `MAX_FRAMES_PER_SECOND` frames are analysed; a
frame arriving while another waits replaces it (counted in `frames_dropped`), so a fast
camera can neither queue work nor make the answers lag.

Each face is decided as in a photo (open set: the org's threshold and margin, against the
whole org so an enrolled non-member is never taken for the member they resemble). A member
is marked present once they have been recognised in `frames_required` frames within
`window_seconds` (the org's camera settings), once per session (an `INSERT … ON CONFLICT DO
NOTHING`, so two kiosks on one door cannot mark twice), with status `late` when the first
of those frames came after the session's `late_after`. A stranger is never named: unknown
faces and enrolled people outside the group carry no name.

`settings.py` holds the org's camera settings, `run.py` one camera streaming one session,
`websocket.py` the socket that carries it.
"""
