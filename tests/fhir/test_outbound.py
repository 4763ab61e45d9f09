"""The rules every outbound URL follows, and the trusted-server allowlist (service.fhir.outbound)."""

from __future__ import annotations

import pytest

from service.errors import NotPermitted
from service.fhir.client import FhirClient
from service.fhir.outbound import UnsafeUrl, check_trusted, is_loopback_host, parse, parse_trusted
from service.web.errors import answer


@pytest.mark.parametrize("url", [
    "https://ehr.example.org/fhir", "https://EHR.example.org:443/fhir/", "http://127.0.0.1:8080/fhir",
    "http://[::1]:9/r4", "https://fhir-server_1.internal.example/r4", "http://localhost/", "https://example/r4",
    "https://ehr.example.org./fhir",
])
def test_ordinary_base_urls_pass(url):
    parse(url)


@pytest.mark.parametrize("url, why", [
    ("https://user:pw@ehr.example.org/fhir", "credentials"),
    ("https://user@ehr.example.org/fhir", "credentials"),
    ("ftp://ehr.example.org/fhir", "absolute http"),
    ("ehr.example.org/fhir", "absolute http"),
    ("http://2130706433/fhir", "host"),
    ("http://0x7f000001/fhir", "host"),
    ("http://0x7f.0.0.1/fhir", "host"),
    ("http://127.1/fhir", "host"),
    ("http://017700000001/fhir", "host"),
    ("http://127.000.000.001/fhir", "host"),
    ("http://[fe80::1%25eth0]/fhir", "host"),
    ("http://ehr.example.org:99999/fhir", "port"),
    ("https://ehr.example.org/fhir?_format=json", "query"),
    ("https://ehr.example.org/fhir#x", "query"),
    ("https://ehr.example.org/fhir/../admin", "'..'"),
    ("https://ehr.example.org/fhir/%2e%2E/admin", "'..'"),
    ("https://ehr.example.org/fhir%2f..%2fadmin", "encoded"),
    ("https://ehr.example.org/fhir\\..\\admin", "backslash"),
    ("https://ehr.example.org/fh ir", "spaces"),
    ("https://ehr.example.org/fhir\n", "control"),
    (None, "absolute http"),
])
def test_unsafe_urls_are_refused_without_repeating_them(url, why):
    with pytest.raises(UnsafeUrl, match=why) as info:
        parse(url, "fhirServer")
    status, outcome = answer(info.value)
    assert status == 400 and outcome["issue"][0]["expression"] == ["fhirServer"]
    assert "pw" not in info.value.message


def test_trusted_urls_need_https_outside_loopback():
    parse_trusted("http://127.0.0.2:8080/fhir")
    parse_trusted("http://localhost/fhir")
    with pytest.raises(UnsafeUrl, match="https"):
        parse_trusted("http://ehr.example.org/fhir")


@pytest.mark.parametrize("url, ok", [
    ("https://ehr.example.org/fhir", True),
    ("https://ehr.example.org/fhir/", True),
    ("https://EHR.EXAMPLE.ORG:443/fhir/tenant-1", True),
    ("https://ehr.example.org/fhir-evil", False),
    ("https://ehr.example.org/", False),
    ("https://ehr.example.org/FHIR", False),
    ("https://ehr.example.org:8443/fhir", False),
    ("https://ehr.example.org.evil.example/fhir", False),
    ("https://evil.example/fhir", False),
])
def test_the_allowlist_is_origin_and_path_prefix(url, ok):
    allowed = [parse_trusted("https://ehr.example.org/fhir/")]
    if ok:
        check_trusted(url, allowed)
    else:
        with pytest.raises(NotPermitted):
            check_trusted(url, allowed)


def test_loopback_hosts():
    assert all(is_loopback_host(h) for h in ("127.0.0.1", "127.9.9.9", "localhost", "::1", "[::1]", "LOCALHOST."))
    assert not any(is_loopback_host(h) for h in ("0.0.0.0", "10.0.0.1", "::", "example.org", "localhost.example", ""))


def test_the_fhir_client_refuses_credentials_in_its_base_url():
    with pytest.raises(UnsafeUrl, match="credentials"):
        FhirClient("https://user:pw@ehr.example.org/fhir")
