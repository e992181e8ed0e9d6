"""Rebuild the golden CLI outputs: ``python tests/golden/regenerate.py [--events]``.

``events.jsonl.gz`` is a fixed dataset (demo traffic, seed 11, 14 days ending at NOW,
exported once); ``outputs-<engine>.json`` maps each report command line to the JSON the CLI
printed for it. ``tests/test_golden_cli.py`` replays the dataset into SQLite and
PostgreSQL and requires byte-identical output. Regenerate only on purpose: a changed
output is a changed public contract.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

HERE = Path(__file__).parent
EVENTS = HERE / "events.jsonl.gz"
# float sums are added in a different order on each engine: one file per engine
OUTPUTS = {"sqlite": HERE / "outputs-sqlite.json", "postgresql": HERE / "outputs-postgresql.json"}
NOW = 1_795_000_000.0  # 2026-11-18T08:26:40Z
SINCE, UNTIL = "2026-11-04T00:00:00Z", "2026-11-19T00:00:00Z"
WINDOW = ("--since", SINCE, "--until", UNTIL)

# every report command of the CLI, with the options that change its shape
COMMANDS: list[list[str]] = [
    ["overview"],
    ["overview", "--feature", "chat"],
    ["costs", "summary"],
    ["costs", "trends"],
    ["costs", "trends", "--interval", "hour", "--since", "2026-11-17T00:00:00Z"],
    ["costs", "trends", "--interval", "week"],
    *(
        ["costs", "breakdown", "--by", by]
        for by in ("model", "provider", "feature", "actor", "session", "project", "status")
    ),
    ["costs", "breakdown", "--by", "model", "--limit", "2"],
    ["costs", "breakdown", "--by", "actor", "--model", "gpt-4o-mini"],
    ["requests", "stats"],
    ["requests", "stats", "--by", "model"],
    ["requests", "stats", "--by", "feature", "--status", "error"],
    ["requests", "list", "--limit", "25"],
    ["requests", "list", "--limit", "10", "--offset", "5", "--feature", "chat"],
    ["requests", "trends"],
    ["requests", "trends", "--interval", "day"],
    ["requests", "models"],
    ["errors"],
    ["errors", "--limit", "3"],
    ["feedback"],
    ["feedback", "--by", "model"],
    ["sessions", "--limit", "20"],
    ["sessions", "--limit", "10", "--feature", "chat"],
    ["agents"],
    ["agents", "--model", "gpt-4o"],
    ["tools"],
    ["costs", "breakdown", "--by", "model", "--feature", "no-such-feature"],
    ["requests", "stats", "--by", "model", "--feature", "no-such-feature"],
    ["errors", "--feature", "no-such-feature"],
    ["sessions", "--feature", "no-such-feature"],
    ["tools", "--feature", "no-such-feature"],
]


# empty results, and a few full ones, also as CSV: the header is part of the contract
CSV_COMMANDS: list[list[str]] = [
    *(args for args in COMMANDS if "no-such-feature" in args),
    ["agents", "--model", "gpt-4o"],
    ["agents", "--model", "no-such-model"],
    ["feedback", "--by", "model", "--feature", "no-such-feature"],
    ["requests", "list", "--feature", "no-such-feature"],
    ["requests", "trends", "--feature", "no-such-feature"],
    ["requests", "models", "--feature", "no-such-feature"],
    ["costs", "trends", "--feature", "no-such-feature"],
    ["costs", "breakdown", "--by", "feature"],
    ["requests", "stats", "--by", "model"],
]


def command_line(args: list[str], fmt: str = "json") -> list[str]:
    """The full argument list of a golden command (window, project, format)."""
    extra = [] if "--since" in args else list(WINDOW)
    if "--since" in args and "--until" not in args:
        extra = ["--until", UNTIL]
    return [*args, *extra, "--project", "demo", "--format", fmt]


def run_all(db: str) -> dict[str, str]:
    """Each golden command's JSON output against ``db``."""
    from llmtally.cli.main import cli

    runner = CliRunner()
    out: dict[str, str] = {}
    for args in COMMANDS:
        full = [*command_line(args), "--db", db]
        result = runner.invoke(cli, full, catch_exceptions=False)
        assert result.exit_code == 0, (full, result.output)
        out[" ".join(args)] = result.output
    for args in CSV_COMMANDS:
        full = [*command_line(args, "csv"), "--db", db]
        result = runner.invoke(cli, full, catch_exceptions=False)
        assert result.exit_code == 0, (full, result.output)
        out["csv: " + " ".join(args)] = result.output
    trace_id = json.loads(out["requests list --limit 25"])[0]["trace_id"]
    result = runner.invoke(cli, ["trace", trace_id, "--format", "json", "--db", db])
    assert result.exit_code == 0, result.output
    out["trace"] = result.output
    return out


def load(db: str) -> None:
    """Replay the golden dataset into ``db``."""
    from llmtally import Tally
    from llmtally.demo import CUSTOM_PRICING

    with gzip.open(EVENTS, "rt") as fh:
        rows = [json.loads(line) for line in fh]
    tally = Tally(db, project="demo", custom_pricing=CUSTOM_PRICING, queue_size=len(rows) + 10)
    result = tally.ingest(rows)
    assert not result.rejected, result.rejected[:3]
    assert tally.flush(timeout=60)
    tally.close()


def make_events() -> None:
    """Record demo traffic at the fixed NOW and export it as the golden dataset."""
    from llmtally import Tally
    from llmtally.demo import CUSTOM_PRICING, Generator
    from llmtally.query.export import export_events
    from llmtally.store.base import open_store

    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/gen.db"
        tally = Tally(db, project="demo", custom_pricing=CUSTOM_PRICING, queue_size=100_000)
        Generator(tally, days=14, calls=1_500, seed=11, now=NOW).run()
        assert tally.flush(timeout=60)
        tally.close()
        store = open_store(db)
        path = Path(tmp) / "events.jsonl"
        with path.open("w") as fh:
            export_events(store.engine, fh, "jsonl")
        store.close()
        EVENTS.write_bytes(gzip.compress(path.read_bytes(), mtime=0))


def main() -> None:
    """Regenerate the dataset (with ``--events``) and the outputs of both engines."""
    sys.path.insert(0, str(HERE.parent))
    import pgserver

    if "--events" in sys.argv:
        make_events()
    admin = pgserver.server_url()
    with tempfile.TemporaryDirectory() as tmp:
        for engine, db in (
            ("sqlite", f"sqlite:///{tmp}/golden.db"),
            ("postgresql", pgserver.create_database(admin)),
        ):
            load(db)
            outputs = run_all(db)
            OUTPUTS[engine].write_text(json.dumps(outputs, indent=1, sort_keys=True) + "\n")
            print(f"{len(outputs)} outputs written to {OUTPUTS[engine]}")
            if engine == "postgresql":
                pgserver.drop_database(admin, db)


if __name__ == "__main__":
    main()
