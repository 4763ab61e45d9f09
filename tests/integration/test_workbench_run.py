"""`dah-cds run --fhir-server URL --patient ID`: a patient stored on a real FHIR server (the local test server
or FHIR_BASE_URL) through the content, read with the services' prefetch templates as a hook call without
prefetch would; the cards printed are the scenario case's."""

from __future__ import annotations

import json

import pytest
from samples import CASES, case, load_case

from service.fhir.client import FhirClient

pytestmark = pytest.mark.integration

P01 = "DAH-05/p01-gpa-hypoxemic.json"  # patient-view, GPA with hypoxemic DAH: DAH-01 and DAH-05


@pytest.fixture(scope="module")
def stored_patient(fhir_base_url) -> str:
    """The case's resources stored on the server; the id its Patient got there."""
    data = case(P01)
    report = load_case(FhirClient(fhir_base_url, timeout=60), data, "run")
    return report.id_of(f"Patient/{data['request']['context']['patientId']}")




def test_a_patient_on_the_server_gets_the_cases_cards(dah_cds, fhir_base_url, stored_patient):
    data = case(P01)
    golden = json.loads((CASES / P01).with_name("p01-gpa-hypoxemic.response.json").read_text())
    code, out, err = dah_cds("run", "--fhir-server", fhir_base_url, "--patient", stored_patient,
                             "--service", data["service"], "--now", data["now"])
    assert code == 0, err
    assert f"== dah-patient-view (patient-view) at 2026-03-01T12:00:00+00:00: {len(golden['cards'])} card(s)" in out
    assert golden["cards"]  # the case has cards to compare
    for card in golden["cards"]:
        indicator = card["indicator"].upper()
        assert f"[{indicator}] {card['summary']}" in out
        for suggestion in card.get("suggestions", []):
            assert f"* {suggestion['label']}" in out
    assert "Override reasons: Not DAH / diagnosis uncertain" in out


def test_every_service_of_the_hook_reads_the_patient_from_the_server(dah_cds, fhir_base_url, stored_patient):
    data = case(P01)
    code, out, err = dah_cds("run", "--fhir-server", fhir_base_url, "--patient", stored_patient,
                             "--hook", "patient-view", "--now", data["now"], "--trace")
    assert code == 0, err
    headers = [line for line in out.splitlines() if line.startswith("== ")]
    assert [h.split()[1] for h in headers] == ["dah-patient-view", "iph-patient-view", "safety-patient-view",
                                               "sle-dah-patient-view"]
    assert "== dah-patient-view (patient-view) at 2026-03-01T12:00:00+00:00: 2 card(s)" in out
    assert "-- why: dah-patient-view" in out and "dah-05: applied" in out  # explained from the server's data


def test_a_patient_the_server_does_not_have_is_an_error_naming_the_read(dah_cds, fhir_base_url):
    code, out, err = dah_cds("run", "--fhir-server", fhir_base_url, "--patient", "no-such-patient-here",
                             "--service", "dah-patient-view", "--now", "2026-03-01T12:00:00Z")
    assert code == 1 and "card(s)" not in out
    assert (f"ERROR dah-patient-view: prefetch key 'patient': FHIR server answered 404 to GET "
            f"{fhir_base_url}/Patient/no-such-patient-here") in out + err
