"""Batch evaluation: N cases in one `settle evaluate --inputs cases.jsonl` against one process per
case, and the in-process cost per case; plus how fast hostile definitions are refused.

Prints ratios measured in this run (no absolute targets): run with `make bench`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTLE = Path(sys.executable).with_name("settle")
MSSP = ROOT / "contracts" / "templates" / "mssp.yaml"
PUBLISHED = ROOT / "fixtures" / "mssp" / "py2018-published.jsonl"
CASES = 500
SINGLE_PROCESS_SAMPLE = 10


def _cases(count: int) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in PUBLISHED.read_text().splitlines()]
    cases = []
    for index in range(count):
        case = json.loads(json.dumps(rows[index % len(rows)]))
        quality = Decimal("0.70") + Decimal(index % 30) / 100
        case["inputs"]["quality_score"] = str(quality)
        case["id"] = f"case-{index}"
        cases.append(case)
    return cases


def _run(*args: str | Path) -> float:
    started = time.perf_counter()
    subprocess.run([str(SETTLE), *map(str, args)], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from contracts.document import read_file
    from contracts.evaluation import evaluate_contract
    from contracts.validate import check_contract, load_contract_file

    cases = _cases(CASES)
    with tempfile.TemporaryDirectory() as folder:
        batch = Path(folder) / "cases.jsonl"
        batch.write_text("".join(json.dumps(c) + "\n" for c in cases))
        batch_seconds = _run("evaluate", MSSP, "--inputs", batch, "--json")
        single_seconds = 0.0
        for case in cases[:SINGLE_PROCESS_SAMPLE]:
            one = Path(folder) / "one.json"
            one.write_text(json.dumps(case))
            single_seconds += _run("evaluate", MSSP, "--inputs", one, "--json")
    per_case_batch = batch_seconds / CASES
    per_case_single = single_seconds / SINGLE_PROCESS_SAMPLE

    version = load_contract_file(MSSP)
    started = time.perf_counter()
    for case in cases:
        evaluate_contract(version, case["params"], case["inputs"], period=case["period"])
    in_process = (time.perf_counter() - started) / CASES

    raw = read_file(MSSP)
    started = time.perf_counter()
    check_contract(raw)
    validate_template = time.perf_counter() - started
    hostile = json.loads(json.dumps(raw, default=str))
    hostile["definitions"][0]["expr"] = "(" * 10_000 + "1" + ")" * 10_000
    hostile["definitions"][1]["expr"] = "1 + " * 25_000 + "1"
    hostile["definitions"][2] = {**hostile["definitions"][2]}
    started = time.perf_counter()
    _, problems = check_contract(hostile)
    refuse_hostile = time.perf_counter() - started
    assert problems

    print(
        f"{CASES} cases in one process:      {batch_seconds:8.3f} s  "
        f"({per_case_batch * 1000:.2f} ms a case, startup included)"
    )
    print(f"one process per case ({SINGLE_PROCESS_SAMPLE} runs): {per_case_single:8.3f} s a case")
    print(f"ratio, process per case / batch:   {per_case_single / per_case_batch:8.1f}x")
    print(f"in-process evaluation:             {in_process * 1000:8.3f} ms a case")
    print(f"validate the MSSP template:        {validate_template * 1000:8.1f} ms")
    print(
        f"refuse a hostile contract:         {refuse_hostile * 1000:8.1f} ms "
        f"({refuse_hostile / validate_template:.2f}x the template's validation)"
    )


if __name__ == "__main__":
    main()
