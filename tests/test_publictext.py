"""runtime.publictext: what an open page may quote of an error."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runtime.publictext import public

_label = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
_host = st.lists(_label, min_size=1, max_size=3).map(".".join)
_ip = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_port = st.integers(10, 65535)
_segment = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}", fullmatch=True)
_path = st.lists(_segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
_where = st.one_of(
    st.builds(lambda s, h, p, path: f"{s}://{h}:{p}{path}", st.sampled_from(["http", "https",
              "amqp", "redis", "rediss"]), st.one_of(_host, _ip), _port, _path),
    st.builds(lambda h, p: f"{h}:{p}", st.one_of(_host, _ip), _port),
    _ip,
    _path,
    st.builds(lambda h, p: f"HTTPConnectionPool(host='{h}', port={p})", _host, _port),
)
_words = st.sampled_from(["", "download failed:", "Error 111 connecting to", "(", "'", "\"",
                          ": ConnectionError", ".", "No such file or directory:"])


@given(_words, _where, _words)
def test_no_url_host_or_path_survives_whatever_surrounds_it(before, where, after):
    text = public(f"{before} {where} {after}")
    # Every part of the address that could name something (hosts, ports, folders) is gone.
    assert where not in text
    for part in where.replace("://", "/").replace(":", "/").split("/"):
        if len(part) >= 4 and not part.isalpha():
            assert part not in text.replace(before, "").replace(after, "")


def test_file_names_figures_and_kinds_of_failure_stay():
    text = ("user_interactions_0.csv: could not download from Totara (ConnectionError); "
            "users_0.csv line 12: bad id; P@10 0.1234 against 0.1300, at 12:30, 3/4 done")
    assert public(text) == text
