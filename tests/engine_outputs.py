"""What the engine derives from fixed inputs, as one JSON document of digests.

Run as a script by tests/test_compiled_core.py, once on the compiled core and once on
its Python source, so the two can be compared: a seeded population and seeded random
streams (late events, quiet years, records waiting for time) are published into fresh
homes, processed live, then replayed; for each, a digest of every projection table,
of the lifecycle log (per customer), and of every customer's stored state, after each pass. The first
key, `core`, names the files the engine's modules were loaded from.

    python tests/engine_outputs.py WORK_DIR
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))

import lifecycle.engine  # noqa: E402
import lifecycle.facts  # noqa: E402
from consumers.cli import main  # noqa: E402
from consumers.settings import Settings  # noqa: E402
from lifecycle.population import PopulationSpec, generate  # noqa: E402
from lifecycle.state import encode_state  # noqa: E402
from projections.reading.query import run_query  # noqa: E402
from projections.stores.state_store import RocksDBStateStore  # noqa: E402
from schemas import encode_event  # noqa: E402
from tests.test_determinism import build_stream  # noqa: E402
from tests.test_replay import TABLES  # noqa: E402


def _run(*args: str) -> bytes:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(list(args))
    assert status == 0, (args, status)
    out.flush()
    return out.buffer.getvalue()  # type: ignore[attr-defined]


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _outputs(settings: Settings) -> dict[str, str]:
    flags = ("--home", str(settings.home))
    # Sealed values differ from run to run (each customer's key is random); which
    # fields are held, and since when, does not.
    tables = {**TABLES, "profiles": "SELECT customer_id, updated_at, COLUMNS(* EXCLUDE (customer_id, updated_at)) "
              "IS NOT NULL FROM customer_profiles ORDER BY customer_id"}
    found = {name: _digest(run_query(settings.views_path, sql).rows) for name, sql in tables.items()}
    # Per customer, in order: a replay writes customer after customer, the processor in log order.
    by_customer: dict[str, list[str]] = {}
    for line in _run("tail", "customer-lifecycle", *flags).decode().splitlines():
        by_customer.setdefault(json.loads(line)["customer_id"], []).append(line)
    found["lifecycle log"] = _digest(by_customer)
    customers = [row[0] for row in run_query(settings.views_path, "SELECT customer_id FROM customers").rows]
    states = RocksDBStateStore(settings.views_path.parent / "states")
    try:
        found["states"] = _digest({c: encode_state(states.get(c)).hex() for c in sorted(customers)})  # type: ignore[arg-type]
    finally:
        states.close()
    return found


def _derive(home: Path, lines: list[bytes]) -> dict[str, dict[str, str]]:
    source = home.with_suffix(".jsonl")
    source.write_bytes(b"\n".join(lines) + b"\n")
    settings = Settings(home=home)
    flags = ("--home", str(home))
    _run("publish", str(source), "--allow-future", *flags)
    _run("process", "--once", "--no-clock", *flags)
    live = _outputs(settings)
    _run("replay", "--workers", "1", *flags)
    return {"process": live, "replay": _outputs(settings)}


def main_(work: Path) -> dict[str, object]:
    population = list(generate(PopulationSpec(customers=500, seed=11, days=400)))
    # Streams stay within the plausible event times: ~7 days between records, quiet
    # years now and then in the second.
    calm, gaps = ([encode_event(event) for event in build_stream(random.Random(seed).randint, f"s{seed}",
                                                                 customers=25, events=events, late=True, gaps=gaps)]
                  for seed, events, gaps in ((1, 1_500, False), (2, 150, True)))
    return {
        "core": [module.__file__ for module in (lifecycle.engine, lifecycle.facts)],
        "population": _derive(work / "population", population),
        "stream": _derive(work / "stream", calm),
        "stream with quiet years": _derive(work / "gaps", gaps),
    }


if __name__ == "__main__":
    print(json.dumps(main_(Path(sys.argv[1])), indent=1, sort_keys=True))
