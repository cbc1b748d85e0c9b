"""docs/contract.schema.json, the JSON Schema editors use, kept honest.

The marshmallow schema in contracts/schema.py is the source of truth for a contract document's
structure; these tests fail when the JSON Schema drifts from it (a field, a required key, an
enum, a pattern or a length added to one and not the other), when a template stops matching
it, or when it accepts a broken document that `contracts.validate.check_contract` refuses.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from marshmallow import RAISE, Schema, fields, validate

import contracts.schema
from contracts.document import read_file
from contracts.validate import check_contract
from outcomes.catalog import EVENT_FIELDS, MEASURES
from rules.canonical import canonical_form

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "contract.schema.json"
TEMPLATES = sorted((ROOT / "contracts" / "templates").glob("*.yaml"))
COMBINATORS = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else")

SCHEMA_CLASSES = {
    name: cls
    for name, cls in inspect.getmembers(contracts.schema, inspect.isclass)
    if issubclass(cls, Schema)
    and cls.__module__ == contracts.schema.__name__
    and not name.startswith("_")
}


@pytest.fixture(scope="module")
def json_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def validator(json_schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(json_schema)


def _errors(validator: Draft202012Validator, document: Any) -> list[str]:
    return [
        f"/{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


# (a) the schema itself


def test_the_json_schema_is_a_valid_draft_2020_12_schema(json_schema):
    Draft202012Validator.check_schema(json_schema)
    assert json_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert json_schema["$id"] and json_schema["title"]
    assert json_schema["properties"]["settle"]["const"] == contracts.schema.FORMAT


def _declared_properties(schema: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every (path, subschema) declared under `properties`, outside if/then/anyOf/… conditions."""
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from _declared_properties(item, f"{where}/{index}")
        return
    if not isinstance(schema, dict):
        return
    for key, value in schema.items():
        if key in COMBINATORS:
            continue
        if key == "properties":
            for name, subschema in value.items():
                yield f"{where}/properties/{name}", subschema
                yield from _declared_properties(subschema, f"{where}/properties/{name}")
        else:
            yield from _declared_properties(value, f"{where}/{key}")


def test_every_property_has_a_description(json_schema):
    missing = [
        path
        for path, subschema in _declared_properties(json_schema, "#")
        if not subschema.get("description")
    ]
    assert missing == []


def test_the_enums_of_the_rule_language_and_the_catalog_are_in_the_json_schema(json_schema):
    defs = json_schema["$defs"]
    aggregate = defs["aggregate"]["properties"]
    assert set(aggregate["measure"]["enum"]) == set(MEASURES)
    assert set(aggregate["events"]["enum"]) == set(EVENT_FIELDS)
    assert tuple(defs["rounding_mode"]["enum"]) == contracts.schema.MODES
    assert tuple(defs["scalar_type"]["enum"]) == contracts.schema.SCALAR_TYPE_NAMES
    assert defs["decimal"]["anyOf"] == [
        {"type": "string", "pattern": r"^-?[0-9][0-9_]*(\.[0-9][0-9_]*)?$"},
        {"type": "integer"},
    ]
    assert '"number"' not in json.dumps(json_schema), "money is never a float: no type number"


# (b) the templates


def test_the_templates_are_found():
    assert ROOT / "contracts" / "templates" / "mssp.yaml" in TEMPLATES


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: path.name)
def test_every_template_matches_the_json_schema(validator, path):
    document = canonical_form(read_file(path))  # YAML decimals (Decimal) as decimal strings
    assert _errors(validator, document) == []


# (c) drift between contracts/schema.py and the JSON Schema


def _resolve(subschema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """The subschema behind a `$ref` (and behind a nullable anyOf: [X, {type: null}])."""
    while True:
        if "$ref" in subschema:
            pointer = subschema["$ref"]
            assert pointer.startswith("#/$defs/"), pointer
            subschema = root["$defs"][pointer.removeprefix("#/$defs/")]
        elif "anyOf" in subschema and {"type": "null"} in subschema["anyOf"]:
            others = [s for s in subschema["anyOf"] if s != {"type": "null"}]
            assert len(others) == 1, subschema
            subschema = others[0]
        else:
            return subschema


def _objects(
    cls: type[Schema], obj: dict[str, Any], root: dict[str, Any]
) -> Iterator[tuple[type[Schema], dict[str, Any]]]:
    """Each marshmallow Schema class reachable from `cls`, with its JSON Schema object."""
    yield cls, obj
    for name, field in cls._declared_fields.items():
        prop = obj.get("properties", {}).get(field.data_key or name)
        if prop is not None:  # a missing property is reported by the drift test
            yield from _nested_objects(field, _resolve(prop, root), root)


def _nested_objects(
    field: fields.Field, prop: dict[str, Any], root: dict[str, Any]
) -> Iterator[tuple[type[Schema], dict[str, Any]]]:
    if isinstance(field, fields.Nested):
        yield from _objects(type(field.schema), prop, root)
    elif isinstance(field, fields.List):
        yield from _nested_objects(field.inner, _resolve(prop["items"], root), root)
    elif isinstance(field, fields.Dict) and field.value_field is not None:
        values = _resolve(prop["additionalProperties"], root)
        yield from _nested_objects(field.value_field, values, root)


@pytest.fixture(scope="module")
def objects_by_class(json_schema) -> dict[type[Schema], list[dict[str, Any]]]:
    found: dict[type[Schema], list[dict[str, Any]]] = {}
    for cls, obj in _objects(contracts.schema.ContractSchema, json_schema, json_schema):
        found.setdefault(cls, []).append(obj)
    return found


def test_the_schema_classes_are_found():
    assert {"ContractSchema", "PartySchema", "DefinitionSchema"} <= set(SCHEMA_CLASSES)


@pytest.mark.parametrize("name", sorted(SCHEMA_CLASSES))
def test_each_marshmallow_schema_has_the_same_properties_in_the_json_schema(objects_by_class, name):
    cls = SCHEMA_CLASSES[name]
    assert cls in objects_by_class, f"{name} is not reached from ContractSchema's fields"
    keys = {field.data_key or attr for attr, field in cls._declared_fields.items()}
    required = {
        field.data_key or attr for attr, field in cls._declared_fields.items() if field.required
    }
    strict = cls.Meta.unknown == RAISE if hasattr(cls.Meta, "unknown") else False
    for obj in objects_by_class[cls]:
        assert obj["type"] == "object"
        assert set(obj["properties"]) == keys
        assert set(obj.get("required", ())) == required
        assert (obj.get("additionalProperties") is False) == strict


def _length_keywords(field: fields.Field) -> tuple[str, str]:
    if isinstance(field, fields.List):
        return "minItems", "maxItems"
    if isinstance(field, fields.Dict):
        return "minProperties", "maxProperties"
    return "minLength", "maxLength"


def _constraint_mismatches(
    where: str, field: fields.Field, prop: dict[str, Any], root: dict[str, Any]
) -> Iterator[str]:
    """Each validator of `field` that the JSON Schema `prop` does not say the same way."""
    if isinstance(field, contracts.schema.IsoDate) and prop.get("$ref") != "#/$defs/date":
        yield f"{where}: a date is '$ref': '#/$defs/date'"
    said = _resolve(prop, root)
    for rule in field.validators:
        if isinstance(rule, validate.OneOf):
            wanted: dict[str, Any] = {"enum": set(rule.choices)}
            said_here = {"enum": set(said.get("enum", ()))}
        elif isinstance(rule, validate.Regexp):
            wanted, said_here = {"pattern": rule.regex.pattern}, {"pattern": said.get("pattern")}
        elif isinstance(rule, validate.Equal):
            wanted, said_here = {"const": rule.comparable}, {"const": said.get("const")}
        elif isinstance(rule, validate.Range):
            wanted = {"minimum": rule.min, "maximum": rule.max}
            said_here = {"minimum": said.get("minimum"), "maximum": said.get("maximum")}
        elif isinstance(rule, validate.Length):
            low, high = _length_keywords(field)
            wanted = {low: rule.min, high: rule.max} if rule.max is not None else {low: rule.min}
            said_here = {key: said.get(key) for key in wanted}
        else:
            raise AssertionError(f"{where}: teach this test the JSON Schema of {rule!r}")
        if wanted != said_here:
            yield f"{where}: marshmallow says {wanted}, the JSON Schema {said_here}"
    if isinstance(field, fields.List):
        yield from _constraint_mismatches(f"{where}[]", field.inner, said["items"], root)
    if isinstance(field, fields.Dict):
        if field.key_field is not None:
            names = said["propertyNames"]
            yield from _constraint_mismatches(f"{where} (key)", field.key_field, names, root)
        if field.value_field is not None:
            values = said["additionalProperties"]
            yield from _constraint_mismatches(f"{where}.*", field.value_field, values, root)


@pytest.mark.parametrize("name", sorted(SCHEMA_CLASSES))
def test_each_field_validator_is_said_the_same_way_in_the_json_schema(
    objects_by_class, json_schema, name
):
    cls = SCHEMA_CLASSES[name]
    mismatches = []
    for obj in objects_by_class.get(cls, []):
        for attr, field in cls._declared_fields.items():
            key = field.data_key or attr
            if key in obj["properties"]:
                prop = obj["properties"][key]
                mismatches += _constraint_mismatches(f"{name}.{key}", field, prop, json_schema)
    assert mismatches == []


# (d) broken documents are refused by both


@pytest.fixture(scope="module")
def mssp() -> dict[str, Any]:
    document: dict[str, Any] = canonical_form(read_file(ROOT / "contracts/templates/mssp.yaml"))
    return document


def _definition(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(d for d in document["definitions"] if d["name"] == name)
    return found


def _rename(mapping: dict[str, Any], old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


def _sequestration(document: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = document["parameters"]["sequestration_rate"]["values"][0]
    return value


Change = Callable[[dict[str, Any]], None]

# id: (change to the MSSP template, JSON pointer the JSON Schema objects to, clause path that
# check_contract objects to)
BROKEN: dict[str, tuple[Change, str, str]] = {
    "unknown top-level key": (lambda d: d.update(signatures=["CMS"]), "/", "signatures"),
    "unknown key in a party": (
        lambda d: d["parties"]["payer"].update(email="cms@example.org"),
        "/parties/payer",
        "parties.payer.email",
    ),
    "float parameter value": (
        lambda d: _sequestration(d).update(value=0.5),
        "/parameters/sequestration_rate/values/0/value",
        "parameters.sequestration_rate.values.0.value",
    ),
    "float in a points table": (
        lambda d: d["parameters"]["msr_table"]["values"][0]["value"][0].__setitem__(1, 0.039),
        "/parameters/msr_table/values/0/value/0/1",
        "parameters.msr_table.values.0.value",
    ),
    "float input default": (
        lambda d: d["inputs"]["disaster_adjustment"].update(default=0.5),
        "/inputs/disaster_adjustment/default",
        "inputs.disaster_adjustment.default",
    ),
    "decimal with an exponent": (
        lambda d: _sequestration(d).update(value="2e-2"),
        "/parameters/sequestration_rate/values/0/value",
        "parameters.sequestration_rate.values.0.value",
    ),
    "upper-case parameter name": (
        lambda d: _rename(d["parameters"], "sequestration_rate", "Sequestration_Rate"),
        "/parameters",
        "parameters.Sequestration_Rate (the name)",
    ),
    "definition name with a hyphen": (
        lambda d: _definition(d, "savings").update(name="net-savings"),
        "/definitions/0/name",
        "definitions.net-savings.name",
    ),
    "payment name with a space": (
        lambda d: d["payments"][0].update(name="shared savings"),
        "/payments/0/name",
        "payments.shared savings.name",
    ),
    "party role with a capital": (
        lambda d: _rename(d["parties"], "payer", "Payer"),
        "/parties",
        "parties.Payer (the name)",
    ),
    "identifier with a space": (lambda d: d.update(id="mssp template"), "/id", "id"),
    "missing rounding": (lambda d: d.pop("rounding"), "/", "rounding"),
    "missing definition type": (
        lambda d: _definition(d, "savings").pop("type"),
        "/definitions/0",
        "definitions.savings.type",
    ),
    "missing payment memo": (
        lambda d: d["payments"][0].pop("memo"),
        "/payments/0",
        "payments.shared_savings_payment.memo",
    ),
    "no provider party": (
        lambda d: _rename(d["parties"], "provider", "aco"),
        "/parties",
        "parties.provider",
    ),
    "definition with expr and cases": (
        lambda d: _definition(d, "savings").update(
            cases=[{"when": "benchmark > 0", "then": "benchmark"}], otherwise="0"
        ),
        "/definitions/0",
        "definitions.savings.expr",
    ),
    "definition with cases and no otherwise": (
        lambda d: _definition(d, "minimum_savings_rate").pop("otherwise"),
        "/definitions/2",
        "definitions.minimum_savings_rate.otherwise",
    ),
    "definition with neither expr nor cases": (
        lambda d: _definition(d, "savings").pop("expr"),
        "/definitions/0",
        "definitions.savings.expr",
    ),
    "definition with no cases": (
        lambda d: _definition(d, "minimum_savings_rate").update(cases=[]),
        "/definitions/2/cases",
        "definitions.minimum_savings_rate.cases",
    ),
    "parameter with neither values nor default": (
        lambda d: d["parameters"]["sequestration_rate"].pop("values"),
        "/parameters/sequestration_rate",
        "parameters.sequestration_rate.values",
    ),
    "table parameter without its shape": (
        lambda d: d["parameters"]["msr_table"].pop("table"),
        "/parameters/msr_table",
        "parameters.msr_table.table",
    ),
    "points table shape without y": (
        lambda d: d["parameters"]["msr_table"]["table"].pop("y"),
        "/parameters/msr_table/table",
        "parameters.msr_table.table.y",
    ),
    "unknown table kind": (
        lambda d: d["parameters"]["msr_table"]["table"].update(kind="steps"),
        "/parameters/msr_table/table/kind",
        "parameters.msr_table.table.kind",
    ),
    "rows input without columns": (
        lambda d: d["inputs"]["benchmark"].update(type="rows"),
        "/inputs/benchmark",
        "inputs.benchmark.columns",
    ),
    "optional input with a default": (
        lambda d: d["inputs"]["disaster_adjustment"].update(optional=True),
        "/inputs/disaster_adjustment",
        "inputs.disaster_adjustment.default",
    ),
    "unknown measure": (
        lambda d: d["inputs"]["expenditure"]["aggregate"].update(measure="median"),
        "/inputs/expenditure/aggregate/measure",
        "inputs.expenditure.aggregate.measure",
    ),
    "unknown population": (
        lambda d: d["inputs"]["expenditure"]["aggregate"].update(population="everyone"),
        "/inputs/expenditure/aggregate/population",
        "inputs.expenditure.aggregate.population",
    ),
    "unknown rounding mode": (
        lambda d: d["rounding"].update(mode="bankers"),
        "/rounding/mode",
        "rounding.mode",
    ),
    "rounding places past 12": (
        lambda d: d["rounding"]["payments"].update(places=13),
        "/rounding/payments/places",
        "rounding.payments.places",
    ),
    "date not written YYYY-MM-DD": (
        lambda d: d["periods"][0].update(start="01/01/2018"),
        "/periods/0/start",
        "periods.0.start",
    ),
    "no periods": (lambda d: d.update(periods=[]), "/periods", "periods"),
    "another format version": (
        lambda d: d.update(settle="settle.contract/v2"),
        "/settle",
        "settle",
    ),
}

ACCEPTED: dict[str, Change] = {
    "integer money default": lambda d: d["inputs"]["disaster_adjustment"].update(default=100),
    "decimal with underscores": lambda d: _sequestration(d).update(value="0.02_0"),
    "negative decimal": lambda d: d["inputs"]["disaster_adjustment"].update(default="-1_000.50"),
    "payment rounding without a mode": lambda d: d["rounding"]["payments"].pop("mode"),
    "no payments": lambda d: d.pop("payments"),
    "a payment without a condition": lambda d: d["payments"][0].pop("when"),
    "a third party": lambda d: d["parties"].update(auditor={"name": "A", "account": "audit:1"}),
    "an open last band": lambda d: d["parameters"].update(
        corridors={
            "type": "table",
            "description": "Risk corridors",
            "table": {"kind": "bands", "bound": "rate"},
            "values": [
                {
                    "effective": "2018-01-01",
                    "reference": "test",
                    "value": [
                        {"from": "0", "to": "0.05", "rate": "1"},
                        {"from": "0.05", "rate": "0"},
                    ],
                }
            ],
        }
    ),
}


def test_the_unbroken_document_is_accepted_by_both(validator, mssp):
    assert _errors(validator, mssp) == []
    assert check_contract(copy.deepcopy(mssp))[1] == ()


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_document_is_refused_by_the_json_schema_and_by_check_contract(
    validator, mssp, case
):
    change, pointer, where = BROKEN[case]
    document = copy.deepcopy(mssp)
    change(document)
    errors = _errors(validator, document)
    assert any(error.startswith(f"{pointer}: ") for error in errors), errors
    version, problems = check_contract(copy.deepcopy(document))
    assert version is None
    places = [problem.where for problem in problems]
    assert any(place.endswith(f", {where}") for place in places), places


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_a_variation_accepted_by_check_contract_is_accepted_by_the_json_schema(
    validator, mssp, case
):
    document = copy.deepcopy(mssp)
    ACCEPTED[case](document)
    assert check_contract(copy.deepcopy(document))[1] == ()
    assert _errors(validator, document) == []
