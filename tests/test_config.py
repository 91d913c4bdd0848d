"""Bad configuration stops the program at start with one line naming the variable."""

import subprocess
import sys

import pytest

from runtime.config import ConfigError, from_env


def test_defaults_follow_the_original_service(base_env):
    env = {k: v for k, v in base_env.items() if k not in ("ML_MODELS_DIR", "ML_LOGS_DIR",
                                                         "ML_NUM_THREADS")}
    settings = from_env(env)
    assert str(settings.models_dir) == "data/models"
    assert str(settings.logs_dir) == "data/logs"
    assert settings.retrain_freq_minutes == 1440
    assert settings.num_threads == 4
    assert settings.algorithm == "hybrid"
    assert settings.dev is False
    assert settings.bind == "*:5000"
    assert settings.gunicorn_bind == ["0.0.0.0:5000"]
    assert settings.top_k == 50
    assert settings.redis_url is None and settings.broker_url is None


@pytest.mark.parametrize("name, value, expected", [
    ("ML_RECOMMENDATION_ALGORITHM", "foo", "expected one of hybrid, partial, mf"),
    ("ML_NUM_THREADS", "abc", "expected a whole number from 1 to 256"),
    ("ML_NUM_THREADS", "0", "expected a whole number from 1 to 256"),
    ("ML_RECOMMENDATION_RETRAIN_FREQ", "-5", "expected a whole number"),
    ("ML_TOP_K", "5000", "expected a whole number from 1 to 1000"),
    ("ML_DEV", "yes", "expected 1 (development mode) or unset"),
    ("ML_BIND", "5000", "expected HOST:PORT"),
    ("ML_BROKER_QUEUE_TYPE", "stream", "expected classic or quorum"),
    ("ML_BIND", "*:99999", "expected HOST:PORT"),
    ("ML_TOTARA_URL", "lms.example.com", "expected a URL starting with http:// or https://"),
    ("ML_REDIS_URL", "localhost:6379", "expected a URL starting with redis://"),
    ("ML_BROKER_URL", "rabbit", "expected a URL starting with amqp://"),
    ("ML_BROKER_URL", "amqp://a:5672//;redis://b:6379/0", "or several of one kind separated by ;"),
    ("ML_BROKER_URL", "amqp://a:5672//;", "or several of one kind separated by ;"),
    ("ML_EXPORT_DIR", "/nonexistent/folder", "expected an existing folder"),
    ("ML_DOWNLOAD_RETRY_DELAY", "soon", "expected a number"),
    ("ML_WORKER_STOP_GRACE", "-1", "expected a number from 0 to 86400"),
])
def test_each_invalid_value_is_named_with_what_is_accepted(base_env, name, value, expected):
    with pytest.raises(ConfigError) as error:
        from_env({**base_env, name: value})
    message = str(error.value)
    assert message.startswith(f"{name}={value!r}")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize("missing", ["ML_TOTARA_KEY", "ML_TOTARA_URL"])
def test_the_service_refuses_to_start_without_totara_url_and_key(base_env, missing):
    env = {k: v for k, v in base_env.items() if k != missing}
    with pytest.raises(ConfigError, match=f"^{missing} is not set"):
        from_env(env)
    # A whitespace-only key is no key: it would never match a signature
    with pytest.raises(ConfigError, match="ML_TOTARA_KEY is not set"):
        from_env({**base_env, "ML_TOTARA_KEY": "  "})


def test_offline_commands_need_no_totara_settings(base_env):
    env = {k: v for k, v in base_env.items() if not k.startswith("ML_TOTARA")}
    assert from_env(env, require_totara=False).totara_key is None


def test_a_command_with_bad_configuration_exits_2_with_one_line(base_env, tmp_path):
    env = {**base_env, "ML_NUM_THREADS": "abc", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "recommender", "train", "--export-dir",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "configuration error: ML_NUM_THREADS='abc': expected a whole number from 1 to 256"]


@pytest.mark.parametrize("bind", ["*:5000", "0.0.0.0:5000", "10.1.2.3:5000",
                                  "127.0.0.1:5000 [::]:5000", "lms.example.com:5000"])
def test_development_mode_refuses_to_listen_beyond_loopback(base_env, bind):
    with pytest.raises(ConfigError, match="ML_DEV_ALLOW_REMOTE=1"):
        from_env({**base_env, "ML_DEV": "1", "ML_BIND": bind})


@pytest.mark.parametrize("bind", ["127.0.0.1:5000", "127.0.0.2:5000", "[::1]:5000",
                                  "localhost:5000 127.0.0.1:5001"])
def test_development_mode_on_loopback_starts(base_env, bind):
    assert from_env({**base_env, "ML_DEV": "1", "ML_BIND": bind}).dev is True


def test_development_mode_beyond_loopback_starts_only_when_forced(base_env):
    settings = from_env({**base_env, "ML_DEV": "1", "ML_BIND": "*:5000",
                         "ML_DEV_ALLOW_REMOTE": "1"})
    assert settings.dev is True and settings.bind == "*:5000"
    # Production mode on every interface is the normal case and needs nothing.
    assert from_env({**base_env, "ML_BIND": "*:5000"}).dev is False


def _start(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)


def test_a_short_key_warns_once_at_start_without_showing_the_key(base_env):
    # Given a 9-character key, when an entry point loads the settings twice (as the worker does)
    env = {**base_env, "ML_TOTARA_KEY": "sEcReT-9c", "PATH": "/usr/bin:/bin"}
    code = ("from runtime.config import load_or_exit\n"
            "load_or_exit(require_totara=False); load_or_exit()\n"
            "import subprocess, sys\n"
            "subprocess.run([sys.executable, '-c', 'from runtime.config import load_or_exit;"
            " load_or_exit()'], check=True)\n")
    result = _start(env, code)
    assert result.returncode == 0, result.stderr
    # Then one warning for the process and its child, naming the length and not the key
    assert result.stderr.count("configuration warning: ML_TOTARA_KEY is 9 characters") == 1
    assert "sEcReT" not in result.stderr


def test_a_long_enough_key_starts_silently(base_env):
    result = _start({**base_env, "PATH": "/usr/bin:/bin"},
                    "from runtime.config import load_or_exit; load_or_exit()")
    assert result.returncode == 0 and result.stderr == ""
