"""Ably and Pusher settings are checked when the app starts, with a message naming what to fix."""

from __future__ import annotations

from typing import Any

import pytest

from core.settings import SettingsError, load_settings

PUSHER = {"realtime_provider": "pusher", "pusher_app_id": "123", "pusher_key": "app-key", "pusher_secret": "s3cret"}
ABLY = {"realtime_provider": "ably", "ably_api_key": "appId.keyId:c2VjcmV0"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"realtime_provider": "ably"}, "ABLY_API_KEY must be set"),
        ({**ABLY, "ably_api_key": "no-colon-here"}, "ABLY_API_KEY must look like"),
        ({**ABLY, "ably_endpoint": "https://rest.ably.io"}, "ABLY_ENDPOINT must be a bare host"),
        ({**ABLY, "ably_port": 70000}, "ABLY_PORT must be a TCP port"),
        (
            {"realtime_provider": "pusher", "pusher_cluster": "eu"},
            "PUSHER_APP_ID, PUSHER_KEY, PUSHER_SECRET must be set",
        ),
        ({**PUSHER, "pusher_app_id": "app-1", "pusher_cluster": "eu"}, "PUSHER_APP_ID must be the numeric app id"),
        (PUSHER, "PUSHER_CLUSTER (or PUSHER_HOST"),
        ({**PUSHER, "pusher_cluster": "EU West"}, "PUSHER_CLUSTER must be a cluster name"),
        ({**PUSHER, "pusher_key": "key:secret", "pusher_cluster": "eu"}, "PUSHER_KEY must be the app key"),
        ({**PUSHER, "pusher_host": "http://soketi:6001"}, "PUSHER_HOST must be a bare host"),
    ],
)
def test_a_missing_or_malformed_provider_setting_is_refused_by_name(values: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        load_settings(**values)


@pytest.mark.parametrize(
    "values",
    [
        {**PUSHER, "pusher_cluster": "mt1"},
        {**PUSHER, "pusher_host": "soketi.internal", "pusher_port": 6001, "pusher_scheme": "http"},
        {**PUSHER, "pusher_host": "127.0.0.1"},
        ABLY,
        {**ABLY, "ably_endpoint": "nonprod:sandbox"},
        {**ABLY, "ably_endpoint": "localhost", "ably_tls": False, "ably_port": 8080},
    ],
)
def test_well_formed_provider_settings_are_accepted(values: dict[str, Any]) -> None:
    assert load_settings(**values).realtime_provider == values["realtime_provider"]
