"""What every shipped template promises: it validates, and every number it uses is cited.

Each parameter has a value in force in every period, or a default expression, and either way a
`reference` to the clause it comes from; each definition says what it is and where it comes from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.validate import load_contract_file

TEMPLATES = sorted((Path(__file__).resolve().parents[2] / "contracts" / "templates").glob("*.yaml"))


@pytest.fixture(params=TEMPLATES, ids=[t.name for t in TEMPLATES])
def template(request):
    return load_contract_file(request.param)


def test_every_parameter_has_a_cited_value_in_force_in_every_period(template):
    contract = template.contract
    for period in contract.periods:
        for parameter in contract.parameters:
            if parameter.default is not None:
                assert parameter.reference.strip(), parameter.name
                continue
            in_force = parameter.in_force(period.start)
            assert in_force is not None, (period.id, parameter.name)
            assert in_force.reference.strip(), (period.id, parameter.name)


def test_every_definition_says_what_it_is_and_where_it_comes_from(template):
    for definition in template.contract.definitions:
        assert definition.description.strip(), definition.name
        assert definition.reference.strip(), definition.name


def test_every_template_has_a_payer_a_provider_and_payments_between_them(template):
    contract = template.contract
    roles = {party.role for party in contract.parties}
    assert {"payer", "provider"} <= roles
    assert contract.payments
    for payment in contract.payments:
        assert {payment.payer, payment.payee} == {"payer", "provider"}, payment.name


def test_the_canonical_json_of_a_template_reads_back_as_the_same_version(template):
    """What is hashed is a contract document in its own right: an auditor can load it again."""
    import json

    from contracts.validate import load_contract

    again = load_contract(json.loads(template.canonical_json), name="canonical")
    assert again.content_hash == template.content_hash
    assert again.canonical_json == template.canonical_json
