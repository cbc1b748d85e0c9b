"""`settle demo`: the whole flow on the embedded defaults, in a folder of its own.

Validate the templates, explain an MSSP settlement, record its payment in a SQLite ledger, sign a
checkpoint (service) and co-sign it (payer, provider), verify the ledger, export an audit bundle
and verify it offline with a replay; then load the Tuva synthetic claims, eligibility and an
attribution, build episodes from the claims, and compute the capitation template's inputs from
them in the database. Thin: it calls the same functions as the commands.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from api.database import engine_from_url
from api.schema import upgrade_to_head
from contracts.cases import evaluate_case, read_cases
from contracts.evaluation import parameter_values
from contracts.explain import explain
from contracts.validate import load_contract_file
from ledger.checkpoint import Policy
from ledger.keys import SigningKey
from ledger.signing import checkpoint_now, cosign, stored_checkpoint
from ledger.store import LedgerStore
from ledger.verify import verify_chain
from outcomes.aggregates import Window, anchor_lines, compute
from outcomes.episodes import EpisodeRule, build_episodes
from outcomes.store import EventStore
from settlement.audit import build_bundle, verify_bundle
from settlement.postings import settlement_record

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "contracts" / "templates"
DEMO_CASE = ROOT / "fixtures" / "mssp" / "aco-a1037-py2018.json"
TUVA = ROOT / "fixtures" / "tuva"
HEART_FAILURE = EpisodeRule("HF", frozenset({"291", "292", "293"}), 90)
PARTIES = ("service", "payer.cms", "provider.aco")
ORIGIN = "settle.local/demo"


def run_demo(folder: Path) -> None:
    click.echo("1. Validating the contract templates in contracts/templates/")
    for template in sorted(TEMPLATES.glob("*.yaml")):
        version = load_contract_file(template)
        click.echo(f"   {template.name}: valid, version {version.content_hash[:16]}…")
    mssp = load_contract_file(TEMPLATES / "mssp.yaml")
    click.echo(f"\n2. Settling {DEMO_CASE.relative_to(ROOT)} "
               "(CMS published for ACO A1037, PY2018: EarnSaveLoss 7,239,220)\n")  # fmt: skip
    (case,) = read_cases(DEMO_CASE)
    evaluation = evaluate_case(mssp, case, {}, None)
    click.echo(explain(evaluation))

    folder.mkdir(parents=True, exist_ok=True)
    engine = engine_from_url(f"sqlite:///{folder / 'settle.db'}")
    try:
        upgrade_to_head(engine)
        store = LedgerStore(engine, ledger="demo")
        record = settlement_record(evaluation)
        assert record is not None
        (placed,) = store.append([record.entry], documents=record.documents)
        entry = placed.entry
        click.echo(
            f"3. Recorded in the ledger ({folder / 'settle.db'}) as entry {placed.sequence}: "
            f"{placed.entry_hash.hex()[:16]}…, committed to contract {entry.contract[:12]}… "
            f"and trace {entry.trace_hash[:12]}…"
        )
        keys = {party: _key(folder / "keys", party) for party in PARTIES}
        checkpoint_now(store, keys["service"], origin=ORIGIN)
        cosign(store, keys["payer.cms"])
        note = cosign(store, keys["provider.aco"])
        click.echo("4. Checkpoint signed by the service and co-signed by payer and provider "
                   f"(BLS, aggregated):\n\n{_indented(str(note))}")  # fmt: skip
        stored = stored_checkpoint(store)
        report = verify_chain("demo", store.rows(), {stored.size: stored.root},
                              expected_size=store.size(), deep=True)  # fmt: skip
        click.echo(f"5. Verified the ledger: {report.size} entries, chain and Merkle root match "
                   "the co-signed checkpoint")  # fmt: skip
        sequences = store.sequences_for(contract_id="mssp-template", period="PY2018")
        entries = [(store.entry(s), store.inclusion_proof(s, stored.size)) for s in sequences]
        documents = {d: found for e, _ in entries
                     for d in (e.entry.contract, e.entry.inputs_hash, e.entry.trace_hash)
                     if (found := store.document(d)) is not None}  # fmt: skip
    finally:
        engine.dispose()
    bundle = build_bundle(ledger="demo", contract_id="mssp-template", period="PY2018",
                          note=stored.note_text(), tree_size=stored.size, entries=entries,
                          documents=documents)  # fmt: skip
    bundle_path = folder / "audit-bundle.json"
    bundle_path.write_text(json.dumps(bundle, indent=1) + "\n", encoding="utf-8")
    policy = Policy(origin=ORIGIN, trusted=frozenset(k.prove_possession() for k in keys.values()),
                    threshold=3, required=frozenset({"service"}))  # fmt: skip
    result = verify_bundle(json.loads(bundle_path.read_text()), policy)
    click.echo(
        f"6. Audit bundle {bundle_path}: verified offline, {len(result.entries)} entry proved in "
        f"the tree of size {result.tree_size}, signed by {', '.join(result.signers)}, and the "
        "settlement replayed to the same trace bytes"
    )
    _events(folder)
    click.echo(
        f"\nTry: settle audit verify {bundle_path} --trusted {folder / 'keys' / 'trusted.txt'}"
    )


def _events(folder: Path) -> None:
    """Step 7: outcome events in, episodes built, a contract's inputs computed in the database."""
    engine = engine_from_url(f"sqlite:///{folder / 'settle.db'}")
    try:
        store = EventStore(engine)
        click.echo("\n7. Outcome events (the Tuva synthetic Medicare data, 2018):")
        for name, kind in (("medical_claim.csv", "claim_line"), ("eligibility.csv", "eligibility"),
                           ("attribution.csv", "attribution")):  # fmt: skip
            batch = store.load(TUVA / name, kind).batch
            click.echo(f"   {kind:<12} {batch.rows:>6,} rows, batch {batch.batch_id[:16]}…")
        now = dt.datetime.now(dt.UTC)
        built = build_episodes(HEART_FAILURE, anchor_lines(engine, HEART_FAILURE, now))
        episodes = folder / "episodes-HF.csv"
        episodes.write_bytes(built.csv_bytes(claims_as_of=now))
        store.rebuild_episodes(built, now)
        click.echo(f"   {HEART_FAILURE.describe()}: {len(built.episodes)} episode(s) built from "
                   f"the claims ({episodes})")  # fmt: skip
        version = load_contract_file(TEMPLATES / "capitation.yaml")
        capitation = version.contract
        parameters = parameter_values(version, {}, None)
        window = Window(dt.date(2018, 1, 1), dt.date(2018, 12, 31), dt.datetime.now(dt.UTC),
                        capitation.id)  # fmt: skip
        click.echo(f"   {capitation.id} inputs for 2018, computed in the database:")
        for item in capitation.inputs:  # the Tuva data has no risk scores or quality results
            if item.aggregate is not None and item.aggregate.events in (
                "claim_line",
                "eligibility",
            ):
                value = compute(engine, item.aggregate, window, parameters)
                click.echo(f"     {item.name} = {value}")
    finally:
        engine.dispose()


def _key(folder: Path, party: str) -> SigningKey:
    """The demo's key for `party`, made once (fixed for the folder, like a real party's)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{party}.key"
    if path.exists():
        return SigningKey.from_file_text(path.read_text(encoding="utf-8"))
    key = SigningKey.generate(party)
    path.write_text(key.to_file_text(), encoding="utf-8")
    path.chmod(0o600)
    trusted = folder / "trusted.txt"
    with trusted.open("a", encoding="utf-8") as handle:
        handle.write(f"{key.prove_possession()}\n")
    return key


def _indented(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())
