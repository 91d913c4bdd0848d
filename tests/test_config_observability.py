"""ML_METRICS_PORT and ML_LOG_FORMAT: defaults and one-line errors naming the variable."""

import pytest

from runtime.config import ConfigError, from_env


def test_metrics_port_and_log_format_default_to_9102_and_text(base_env):
    settings = from_env(base_env)
    assert settings.metrics_port == 9102
    assert settings.log_format == "text"


def test_metrics_port_zero_turns_the_worker_metrics_off_and_json_is_accepted(base_env):
    settings = from_env({**base_env, "ML_METRICS_PORT": "0", "ML_LOG_FORMAT": "JSON"})
    assert settings.metrics_port == 0
    assert settings.log_format == "json"


@pytest.mark.parametrize("name, value, expected", [
    ("ML_METRICS_PORT", "http", "expected a whole number from 0 to 65535"),
    ("ML_METRICS_PORT", "70000", "expected a whole number from 0 to 65535"),
    ("ML_LOG_FORMAT", "xml", "expected text or json"),
])
def test_invalid_observability_values_are_named_on_one_line(base_env, name, value, expected):
    with pytest.raises(ConfigError) as error:
        from_env({**base_env, name: value})
    message = str(error.value)
    assert message.startswith(f"{name}={value!r}") and expected in message
    assert "\n" not in message
