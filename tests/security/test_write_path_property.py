"""Property: a document's groups change only when someone allowed to says so.

Random runs of real ingests (files created, changed and deleted; callers with random groups, or the
operator; random `groups`, `set_groups` and prune) are checked against a model of the rules in
pipeline/ingestion.py: a new document gets the run's groups; a stored one keeps its own unless
`set_groups` and the caller can read it; a caller prunes only what it can read; a caller never gives
groups it does not hold. After every step the store's groups equal the model's, and what each caller may
read follows from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from pipeline import Store
from pipeline.config import IngestSettings, Settings
from pipeline.errors import ConfigError
from pipeline.ingestion import Ingestor

GROUPS = ("hr", "legal", "public")
FILES = ("a.txt", "b.txt", "c.txt")

group_sets = st.sets(st.sampled_from(GROUPS), min_size=1).map(lambda s: tuple(sorted(s)))
callers = st.one_of(st.none(), st.sets(st.sampled_from(GROUPS)).map(lambda s: tuple(sorted(s))))
steps = st.lists(st.tuples(st.sampled_from(["write", "delete"]), st.sampled_from(FILES), callers, group_sets, st.booleans()),
                 min_size=1, max_size=4)


@hsettings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=steps)
def test_groups_change_only_when_an_allowed_caller_says_so(plan, tmp_path_factory, embedder):
    check_write_path(plan, tmp_path_factory.mktemp("write-path"), embedder, database_url=None)


@pytest.mark.slow
@hsettings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=steps)
def test_groups_change_only_when_an_allowed_caller_says_so_on_postgresql(plan, tmp_path_factory, embedder, postgres_server):
    """The same property with the store's SQL on a real PostgreSQL server (a fresh database per run)."""
    check_write_path(plan, tmp_path_factory.mktemp("write-path-pg"), embedder, database_url=postgres_server.database())


def check_write_path(plan, root: Path, embedder, database_url: str | None) -> None:
    folder = root / "docs"
    folder.mkdir()
    settings = Settings(store_dir=root / "store", database_url=database_url, ingest=IngestSettings(parse_workers=0))
    model: dict[str, tuple[str, ...]] = {}  # file name -> the groups its stored document must have
    version = 0
    with Ingestor(settings, embedder=embedder) as ingestor:
        for action, name, caller, groups, set_groups in plan:
            path = folder / name
            if action == "write":
                version += 1
                path.write_text(f"Document {name}, revision {version}: the {name[0]} policy changes on day {version}.\n")
            else:
                path.unlink(missing_ok=True)
            may = (lambda g: caller is None or bool(set(g) & set(caller)))
            try:
                report = ingestor.ingest([folder], groups=groups, set_groups=set_groups, caller_groups=caller, prune=True)
            except ConfigError:
                assert caller is not None and not set(groups) <= set(caller)  # the only reason to refuse a run
                continue
            on_disk = {p.name for p in folder.iterdir()}
            for n in on_disk:
                if n not in model:
                    model[n] = groups
                elif may(model[n]) and set_groups:
                    model[n] = groups
            for n in list(model):
                if n not in on_disk and may(model[n]):
                    del model[n]
            stored = {Path(d.source_uri).name: tuple(d.group_names) for d in Store(settings).documents()}
            assert stored == model, (plan, report.outcomes)
            for o in report.outcomes:
                if o.reason == "not permitted":
                    assert not any(g in o.detail for g in GROUPS)  # says nothing about whose it is
            store = Store(settings)
            assert store.engine.dialect.name == ("sqlite" if database_url is None else "postgresql")
            for reader in GROUPS:
                readable = {Path(store.documents_by_id([int(i)])[int(i)].source_uri).name for i in store.readable_documents([reader])}
                assert readable == {n for n, g in model.items() if reader in g}
