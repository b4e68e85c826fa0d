import base64
import hashlib
import hmac
import time

import pytest

from rooms.turn import ice_servers, verify_turn_credential

SECRET = "coturn static-auth-secret"
NOW = 1_700_000_000.75
LIFETIME = 3600
STUN = ["stun:stun.example.com:3478"]
TURN = ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349?transport=tcp"]


def hmac_sha1_base64(secret: str, username: str) -> str:
    """Compute a TURN REST credential the way coturn does, independently of rooms.turn."""
    mac = hmac.new(secret.encode(), username.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


@pytest.fixture
def turn_settings(settings):
    settings.ICE_STUN_URLS = list(STUN)
    settings.TURN_URLS = list(TURN)
    settings.TURN_SECRET = SECRET
    settings.TURN_CREDENTIAL_LIFETIME = LIFETIME
    return settings


def turn_entry(servers: list[dict]) -> dict:
    [entry] = [server for server in servers if "username" in server]
    return entry


def test_stun_then_turn_with_a_credential_coturn_accepts(turn_settings):
    servers = ice_servers(peer_id="Xy_9-ab", now=NOW)

    expected_username = "1700003600:Xy_9-ab"
    assert servers == [
        {"urls": STUN},
        {
            "urls": TURN,
            "username": expected_username,
            "credential": hmac_sha1_base64(SECRET, expected_username),
        },
    ]


def test_expiry_is_now_plus_the_lifetime(turn_settings):
    turn_settings.TURN_CREDENTIAL_LIFETIME = 600

    username = turn_entry(ice_servers(peer_id="p", now=1000.0))["username"]

    assert username == "1600:p"


def test_expiry_uses_the_clock_when_no_time_is_given(turn_settings):
    before = int(time.time())
    username = turn_entry(ice_servers(peer_id="p"))["username"]
    after = int(time.time())

    expiry, peer_id = username.split(":")
    assert before + LIFETIME <= int(expiry) <= after + LIFETIME
    assert peer_id == "p"


def test_credential_verifies_until_it_expires(turn_settings):
    entry = turn_entry(ice_servers(peer_id="p", now=NOW))
    username, credential = entry["username"], entry["credential"]
    expiry = int(NOW) + LIFETIME

    assert verify_turn_credential(username, credential, now=NOW)
    assert verify_turn_credential(username, credential, now=expiry - 0.5)
    assert not verify_turn_credential(username, credential, now=expiry)
    assert not verify_turn_credential(username, credential, now=expiry + 3600)


def test_verification_uses_the_clock_when_no_time_is_given(turn_settings):
    fresh = turn_entry(ice_servers(peer_id="p"))
    stale = turn_entry(ice_servers(peer_id="p", now=time.time() - LIFETIME - 1))

    assert verify_turn_credential(fresh["username"], fresh["credential"])
    assert not verify_turn_credential(stale["username"], stale["credential"])


def test_credential_made_with_another_secret_is_refused(turn_settings):
    username = "1700003600:p"

    assert verify_turn_credential(username, hmac_sha1_base64(SECRET, username), now=NOW)
    assert not verify_turn_credential(username, hmac_sha1_base64("other", username), now=NOW)


def test_credential_is_refused_once_the_secret_changes(turn_settings):
    entry = turn_entry(ice_servers(peer_id="p", now=NOW))
    turn_settings.TURN_SECRET = "rotated"

    assert not verify_turn_credential(entry["username"], entry["credential"], now=NOW)


def test_credential_is_bound_to_its_username(turn_settings):
    entry = turn_entry(ice_servers(peer_id="p", now=NOW))
    expiry = entry["username"].split(":")[0]

    assert not verify_turn_credential(f"{expiry}:q", entry["credential"], now=NOW)
    later = f"{int(expiry) + 86400}:p"
    assert not verify_turn_credential(later, entry["credential"], now=NOW)


@pytest.mark.parametrize(
    "username",
    ["p", "", ":p", "+1700003600:p", " 1700003600:p", "1_700_003_600:p", "١٧٠٠٠٠٣٦٠٠:p"],
)
def test_malformed_username_is_refused_even_with_a_matching_hmac(turn_settings, username):
    assert not verify_turn_credential(username, hmac_sha1_base64(SECRET, username), now=NOW)


@pytest.mark.parametrize("credential", ["", "not base64 at all", "é", "\ud800"])
def test_garbage_credential_is_refused(turn_settings, credential):
    assert not verify_turn_credential("1700003600:p", credential, now=NOW)


def test_no_turn_without_a_secret(turn_settings):
    turn_settings.TURN_SECRET = ""

    assert ice_servers(peer_id="p", now=NOW) == [{"urls": STUN}]
    username = "1700003600:p"
    assert not verify_turn_credential(username, hmac_sha1_base64("", username), now=NOW)


def test_no_turn_without_turn_urls(turn_settings):
    turn_settings.TURN_URLS = []

    assert ice_servers(peer_id="p", now=NOW) == [{"urls": STUN}]


def test_no_stun_entry_unless_configured(turn_settings):
    turn_settings.ICE_STUN_URLS = []

    servers = ice_servers(peer_id="p", now=NOW)

    assert [server["urls"] for server in servers] == [TURN]


def test_nothing_configured_means_no_ice_servers(settings):
    settings.ICE_STUN_URLS = []
    settings.TURN_URLS = []
    settings.TURN_SECRET = ""

    assert ice_servers(peer_id="p", now=NOW) == []


def test_returned_lists_are_copies_of_the_settings(turn_settings):
    servers = ice_servers(peer_id="p", now=NOW)
    servers[0]["urls"].append("stun:evil.example.com")
    servers[1]["urls"].clear()

    assert turn_settings.ICE_STUN_URLS == STUN
    assert turn_settings.TURN_URLS == TURN
