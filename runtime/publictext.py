"""Text that may be shown where anyone can read it: the open status page, the health check.

Run outcomes, the training summary and the checks quote errors, and an error's text often says
where things are: a URL (Totara's, the broker's), a host and port, a file path, sometimes a
credential. The open pages keep the kind of failure and drop the where; the logs keep it all.
Errors are worded without those details where they are raised (recommender/ingest/download.py);
this is the second line, for texts from elsewhere (a library's message, an older version's
record in Redis).
"""

from __future__ import annotations

import re

from runtime import logsetup

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^\s'\"<>()]*[^\s'\"<>():,.;])?")
# An IPv4 address, a bracketed IPv6 address or a host name, each with a port; an IPv4 address
# alone. A host name alone cannot be told from a file name (users_0.csv) and is left.
_HOST = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b|\[[0-9a-fA-F:.]+\](?::\d{1,5})?"
                   r"|\b[a-zA-Z][\w-]*(?:\.[\w-]+)*:\d{2,5}\b")
# host='x' / port=123, as urllib3 words its connection errors
_HOST_FIELD = re.compile(r"\b(host|port)=('[^']*'|\"[^\"]*\"|\d+)")
# An absolute path (/srv/x, ~/x, C:\x) or a relative one of three parts or more (data/models/x).
_PATH = re.compile(r"(?<![\w/.:-])(?:~?/|[a-zA-Z]:\\)[\w.~-][^\s'\"<>:,;()]*"
                   r"|(?<![\w/.:-])[\w.-]+(?:/[\w.-]+){2,}/?")

URL, HOST, PATH = "<url>", "<host>", "<path>"


def public(text: str) -> str:
    """``text`` without credentials, URLs, hosts with ports, IP addresses or file paths."""
    text = logsetup.redact(text)
    text = _URL.sub(URL, text)
    text = _HOST_FIELD.sub(lambda m: f"{m.group(1)}={HOST}", text)
    text = _HOST.sub(HOST, text)
    return _PATH.sub(PATH, text)
