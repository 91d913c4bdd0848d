"""Downloads are bounded: a file over ML_DOWNLOAD_MAX_BYTES, announced or not, compressed or
not, stops at the limit with a clear, final error, in bounded memory, and the published lists
stay as they were."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from fake_totara import FakeTotara
from test_download import KEY, settings_for

from published import keys, versions
from recommender import pipeline
from recommender.ingest import download
from recommender.ingest.download import download_file
from recommender.model.params import TrainParams
from recommender.offline import demo
from runtime import config
from runtime.errors import ConfigError, DownloadError, DownloadTooLarge, RetryableError

MiB = 1 << 20
NAME = "user_interactions_0.csv"


def gzip_bomb(mebibytes: int) -> bytes:
    """Gzip data that inflates to ``mebibytes`` MiB of zeros: one small member, repeated (a
    gzip stream may hold several members, read one after the other)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = packer.compress(bytes(MiB)) + packer.flush()
    return member * mebibytes


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "totara"
    folder.mkdir()
    return folder


@pytest.fixture
def totara(source: Path):
    with FakeTotara(KEY, source) as fake:
        yield fake


def _limited(base_env: dict[str, str], url: str, limit: int) -> config.Settings:
    return settings_for(base_env, url, ML_DOWNLOAD_MAX_BYTES=str(limit))


def _refused(settings: config.Settings, dest: Path) -> DownloadError:
    with pytest.raises(DownloadTooLarge) as caught:
        download_file(settings, NAME, dest)
    error = caught.value
    assert not isinstance(error, RetryableError)  # the same file is as large next time
    assert NAME in str(error) and "ML_DOWNLOAD_MAX_BYTES" in str(error)
    assert settings.totara_url not in str(error)
    assert not dest.exists() or not any(dest.iterdir())  # nothing half-written is left
    return error


def test_a_file_announced_larger_than_the_limit_is_refused_before_its_body(totara, source,
                                                                          base_env, tmp_path):
    (source / NAME).write_bytes(b"1,course1,1,1700000000\n" * (3 * MiB // 23))

    error = _refused(_limited(base_env, totara.url, MiB), tmp_path / "d")

    assert "Totara announced 3,145," in str(error)


def test_a_file_without_a_length_stops_at_the_limit(totara, source, base_env, tmp_path):
    (source / NAME).write_bytes(bytes(5 * MiB))
    totara.send_length = False

    error = _refused(_limited(base_env, totara.url, MiB), tmp_path / "d")

    assert "stopped after" in str(error)


def test_a_file_of_exactly_the_limit_is_downloaded_whole(totara, source, base_env, tmp_path):
    (source / NAME).write_bytes(b"x" * MiB)
    totara.send_length = False

    assert download_file(_limited(base_env, totara.url, MiB), NAME, tmp_path)

    assert (tmp_path / NAME).stat().st_size == MiB


def test_a_gzip_bomb_stops_at_the_limit_in_bounded_memory(totara, source, base_env, tmp_path):
    # Given Totara answers with 256 KB of gzip that inflates to 256 MiB
    (source / NAME).write_bytes(gzip_bomb(256))
    totara.precompressed = True
    settings = _limited(base_env, totara.url, 8 * MiB)

    # When it is downloaded with a limit of 8 MiB
    tracemalloc.start()
    started = time.monotonic()
    try:
        _refused(settings, tmp_path / "d")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then it stops at the limit: a few chunks in memory at most, not the inflated file
    elapsed = time.monotonic() - started
    print(f"gzip bomb (256 MiB inflated) with an 8 MiB limit: peak {peak / MiB:.1f} MiB "
          f"traced, {elapsed:.2f} s")
    assert peak < 4 * download.CHUNK
    assert elapsed < 5


@pytest.mark.parametrize("packer", ["gzip", "two gzip members", "zlib"])
def test_compressed_files_are_saved_as_they_inflate(totara, source, base_env, tmp_path, packer):
    text = b"user_id,item_id,rating,timestamp\n" + b"2,container_course1,1,1700000000\n" * 5000
    if packer == "zlib":
        body = zlib.compress(text)
    else:
        half = len(text) // 2
        parts = [text] if packer == "gzip" else [text[:half], text[half:]]
        body = b"".join(gzip.compress(part) for part in parts)
    (source / NAME).write_bytes(body)
    totara.precompressed = True

    assert download_file(settings_for(base_env, totara.url), NAME, tmp_path)

    assert (tmp_path / NAME).read_bytes() == text


def test_a_compressed_file_cut_short_is_retryable_and_leaves_no_file(totara, source, base_env,
                                                                    tmp_path):
    (source / NAME).write_bytes(gzip.compress(bytes(range(256)) * 4000)[:-100])
    totara.precompressed = True

    with pytest.raises(DownloadError, match="stopped mid-stream") as caught:
        download_file(settings_for(base_env, totara.url), NAME, tmp_path / "d")

    assert isinstance(caught.value, RetryableError)
    assert not any((tmp_path / "d").iterdir())


def test_a_body_that_stalls_half_way_times_out_with_a_retryable_error(totara, source,
                                                                      base_env, tmp_path):
    # Given Totara sends half of the file, then nothing (the body is read from urllib3 here,
    # which raises errors of its own)
    (source / NAME).write_bytes(b"2,container_course1,1,1700000000\n" * 1000)
    totara.export_mode = "stalled"
    totara.hang_seconds = 3
    settings = settings_for(base_env, totara.url, ML_DOWNLOAD_TIMEOUT="0.3")

    with pytest.raises(DownloadError, match="did not answer within 0.3 s") as caught:
        download_file(settings, NAME, tmp_path / "d")

    assert isinstance(caught.value, RetryableError)
    assert not any((tmp_path / "d").iterdir())


def test_a_tenant_whose_export_is_too_large_fails_and_keeps_its_published_lists(
        base_env, tmp_path, fake_redis):
    # Given tenant 0 published from a good export
    good = tmp_path / "good"
    demo.write_demo_export(good, tenants=1, users=60, items=30, interactions=800, seed=2)
    settings = _limited(base_env, "http://127.0.0.1:9", 64 * 1024)
    fast = TrainParams(components=8, max_epochs=3, patience=1)
    first = pipeline.train_tenant(settings, fake_redis, "0", export_dir=good, params=fast)
    assert first.status == "published", first.message

    # When Totara serves an interactions file over the limit
    big = tmp_path / "big"
    big.mkdir()
    for name in ("user_data_0.csv", "item_data_0.csv"):
        (big / name).write_bytes((good / name).read_bytes())
    (big / NAME).write_bytes((good / NAME).read_bytes() * 200)
    with FakeTotara(KEY, big) as totara:
        served = _limited(base_env, totara.url, 64 * 1024)
        with pytest.raises(DownloadTooLarge) as caught:
            pipeline.train_tenant(served, fake_redis, "0", params=fast)

    # Then the run fails with the reason, and the lists published before are still served
    assert NAME in str(caught.value)
    assert versions.current_version(fake_redis, "0") == first.version
    assert fake_redis.hget(keys.last_run("0"), "status") == b"failed"


def test_the_limit_defaults_to_2_gib_and_a_bad_value_stops_the_start_in_one_line(base_env):
    assert config.from_env(base_env).download_max_bytes == 2 << 30
    assert config.from_env({**base_env, "ML_DOWNLOAD_MAX_BYTES": "1048576"}) \
        .download_max_bytes == MiB
    for bad in ("2GB", "0", "-1", "1.5"):
        with pytest.raises(ConfigError) as caught:
            config.from_env({**base_env, "ML_DOWNLOAD_MAX_BYTES": bad})
        assert str(caught.value).startswith(f"ML_DOWNLOAD_MAX_BYTES={bad!r}: expected")
        assert "\n" not in str(caught.value)
