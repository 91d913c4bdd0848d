"""ingest.download against tests/fake_totara.py: statuses, retries, signatures, timeouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from fake_totara import FakeTotara

from recommender.ingest.download import DownloadError, download_file, fetch_tenant, fetch_tenants
from recommender.ingest.export import load_tenant
from runtime import config
from runtime.errors import RetryableError
from runtime.signing import signed_headers

KEY = "test-shared-secret-0123456789"
FILES = ("user_interactions_0.csv", "user_data_0.csv", "item_data_0.csv")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small, valid export of tenant 0 (as Totara would serve it)."""
    folder = tmp_path / "totara"
    folder.mkdir()
    (folder / "tenants.csv").write_text("tenants\n0\n")
    (folder / "user_data_0.csv").write_text(
        "user_id,lang,city,country,interests,asp_position,positions,organisations,"
        "competencies_scale,badges,description\n2,en,Wellington,NZ,1,,,,,,\n")
    (folder / "item_data_0.csv").write_text(
        "item_id,container_course,container_workspace,engage_article,engage_microlearning,"
        "totara_playlist,document\ncontainer_course1,1,0,0,0,0,Course\n")
    (folder / "user_interactions_0.csv").write_text(
        "user_id,item_id,rating,timestamp\n2,container_course1,1,1700000000\n" * 1)
    return folder


@pytest.fixture
def totara(source: Path):
    with FakeTotara(KEY, source) as fake:
        yield fake


def settings_for(base_env: dict[str, str], url: str, **extra: str) -> config.Settings:
    env = {**base_env, "ML_TOTARA_URL": url, "ML_TOTARA_KEY": KEY,
           "ML_DOWNLOAD_RETRY_DELAY": "60", "ML_DOWNLOAD_RETRIES": "3",
           "ML_DOWNLOAD_TIMEOUT": "5", **extra}
    return config.from_env(env)


class Sleeps(list):
    """An injected sleep that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_200_downloads_a_tenants_files_in_totaras_order(totara, base_env, tmp_path, source):
    dest = tmp_path / "dest"

    fetch_tenant(settings_for(base_env, totara.url), "0", dest)

    assert [p for _, p in totara.requests_seen] == [
        f"/pluginfile.php/1/ml_recommender/export/{name}" for name in FILES]
    for name in FILES:
        assert (dest / name).read_bytes() == (source / name).read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == sorted(FILES)  # no temporary files left
    assert len(load_tenant(dest, "0").interactions) == 1


def test_requests_are_signed_like_totara_with_a_fresh_time(totara, base_env, tmp_path):
    fetch_tenant(settings_for(base_env, totara.url), "0", tmp_path)

    for headers in totara.headers_seen:
        assert headers["User-Agent"] == "TotaraBot/1.0"
        assert headers["X-Totara-Ml-Key"] == signed_headers(
            KEY, float(headers["X-Totara-Time"]))["X-Totara-Ml-Key"]
        assert KEY not in str(headers)


def test_fetch_tenants_parses_the_downloaded_list(totara, base_env, tmp_path, source):
    (source / "tenants.csv").write_text("tenants\n0\n4\n9\n")

    assert fetch_tenants(settings_for(base_env, totara.url), tmp_path) == ["0", "4", "9"]
    assert (tmp_path / "tenants.csv").exists()


def test_202_then_200_waits_the_retry_delay_between_attempts(totara, base_env, tmp_path):
    # Given an export that Totara is still writing for the first two requests
    totara.export_mode = "accepted_then_ok"
    totara.accepted_count = 2
    sleeps = Sleeps()

    tenants = fetch_tenants(settings_for(base_env, totara.url), tmp_path, sleep=sleeps)

    assert tenants == ["0"]
    assert sleeps == [60.0, 60.0]
    assert len(totara.requests_seen) == 3


def test_202_forever_gives_up_after_the_retries_with_a_retryable_error(totara, base_env,
                                                                       tmp_path):
    totara.export_mode = "accepted"
    sleeps = Sleeps()

    with pytest.raises(DownloadError) as caught:
        fetch_tenant(settings_for(base_env, totara.url), "0", tmp_path / "d", sleep=sleeps)

    assert isinstance(caught.value, RetryableError)
    assert "not ready (202) after 3 retries" in str(caught.value)
    assert sleeps == [60.0] * 3
    assert len(totara.requests_seen) == 4  # the first attempt and three retries
    assert not any((tmp_path / "d").iterdir())


def test_204_on_tenants_means_the_single_tenant_zero(totara, base_env, tmp_path):
    totara.export_mode = "no_tenants"
    (tmp_path / "tenants.csv").write_text("tenants\n0\n5\n")  # left over from an older run

    assert fetch_tenants(settings_for(base_env, totara.url), tmp_path) == ["0"]
    assert not (tmp_path / "tenants.csv").exists()


def test_404_is_not_retryable(totara, base_env, tmp_path):
    totara.export_mode = "not_found"

    with pytest.raises(DownloadError, match="404") as caught:
        fetch_tenants(settings_for(base_env, totara.url), tmp_path, sleep=Sleeps())

    assert not isinstance(caught.value, RetryableError)


def test_unknown_file_is_a_404(totara, base_env, tmp_path):
    with pytest.raises(DownloadError, match="user_interactions_7.csv: Totara answered 404"):
        fetch_tenant(settings_for(base_env, totara.url), "7", tmp_path)


def test_wrong_key_gets_404_from_totara_and_the_key_is_not_in_the_message(totara, base_env,
                                                                          tmp_path):
    settings = settings_for(base_env, totara.url, ML_TOTARA_KEY="not-the-shared-secret")

    with pytest.raises(DownloadError) as caught:
        fetch_tenants(settings, tmp_path)

    assert not isinstance(caught.value, RetryableError)
    assert "not-the-shared-secret" not in str(caught.value)
    assert totara.requests_seen  # the request did reach Totara, which refused it


def test_fake_totara_refuses_stale_and_malformed_signatures(totara):
    url = totara.url + "/pluginfile.php/1/ml_recommender/export/tenants.csv"
    stale = signed_headers(KEY, now=1_000_000_000)
    malformed = {**signed_headers(KEY), "X-Totara-Time": "soon"}

    answers = [requests.get(url, headers=h, timeout=5).status_code
               for h in (signed_headers(KEY), stale, malformed, {})]

    assert answers == [200, 404, 404, 404]


def test_server_error_is_retryable(totara, base_env, tmp_path):
    totara.export_mode = "server_error"

    with pytest.raises(DownloadError, match="HTTP 500") as caught:
        fetch_tenant(settings_for(base_env, totara.url), "0", tmp_path)

    assert isinstance(caught.value, RetryableError)


def test_hanging_totara_times_out_with_a_retryable_error(totara, base_env, tmp_path):
    totara.export_mode = "hang"
    totara.hang_seconds = 5

    with pytest.raises(DownloadError, match="did not answer within 0.3 s") as caught:
        fetch_tenants(settings_for(base_env, totara.url, ML_DOWNLOAD_TIMEOUT="0.3"), tmp_path)

    assert isinstance(caught.value, RetryableError)


def test_truncated_body_is_retryable_and_leaves_no_file(totara, base_env, tmp_path):
    totara.export_mode = "truncated"

    with pytest.raises(DownloadError) as caught:
        fetch_tenant(settings_for(base_env, totara.url), "0", tmp_path / "d")

    assert isinstance(caught.value, RetryableError)
    assert not any((tmp_path / "d").iterdir())


def test_connection_refused_is_retryable(base_env, tmp_path):
    with FakeTotara(KEY) as gone:
        url = gone.url  # a port that was just free and is closed again
    with pytest.raises(DownloadError) as caught:
        download_file(settings_for(base_env, url), "tenants.csv", tmp_path)

    assert isinstance(caught.value, RetryableError)


def test_status_endpoint_of_the_fake_answers_ok_and_can_fail():
    body = {"operationName": "totara_webapi_status_nosession", "variables": {},
            "extensions": {}}
    with FakeTotara(KEY) as totara:
        url = totara.url + "/totara/webapi/ajax.php"
        ok = requests.post(url, json=body, timeout=5)
        totara.status_mode = "bad"
        bad = requests.post(url, json=body, timeout=5)
        totara.status_mode = "error"
        error = requests.post(url, json=body, timeout=5)

    assert ok.json() == {"data": {"totara_webapi_status": {"status": "ok"}}}
    assert bad.json()["data"]["totara_webapi_status"]["status"] != "ok"
    assert error.status_code == 500
    assert totara.requests_seen == [("POST", "/totara/webapi/ajax.php")] * 3


def test_tenant_that_is_not_a_number_is_refused_before_any_request(totara, base_env, tmp_path):
    with pytest.raises(DownloadError, match="is not a whole number") as caught:
        fetch_tenant(settings_for(base_env, totara.url), "../0", tmp_path)
    assert not isinstance(caught.value, RetryableError)
    assert totara.requests_seen == []


def test_gzip_encoded_files_are_saved_decompressed(totara, base_env, tmp_path, source):
    totara.gzip = True

    fetch_tenant(settings_for(base_env, totara.url), "0", tmp_path / "d")

    for name in FILES:
        assert (tmp_path / "d" / name).read_bytes() == (source / name).read_bytes()
