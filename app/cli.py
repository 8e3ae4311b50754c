"""The `sculptrag` command line: a thin layer over the public API that owns the console.

    sculptrag ingest PATH... [--store DIR] [--groups G ...] [--set-groups] [--prune] [--api URL [--on-server]]
    sculptrag status [--store DIR]
    sculptrag ask "question" [--store DIR] [--generator NAME] [--groups G ...] [--k N] [--filter FIELD=VALUE ...] [--json] [--api URL]
    sculptrag demo [--store DIR] [--generator NAME]
    sculptrag train-generator [--out DIR] [--steps N] [--lr X] [--encoder-lr X] [--warmup N] [--max-minutes M] [--device auto|cpu|cuda] [--workers N] [--exclude CORPUS] [--init-from DIR]
    sculptrag train-selector [--out DIR] [--init-from DIR] [--draws N] [--epochs N] [--exclude CORPUS]
    sculptrag eval DATASET [--generator NAME ...] [--limit N] [--k K] [--out DIR] [--corpus DIR] [--groups G ...]
                   [--noise 0,0.4,0.8,1] [--unanswerable]
    sculptrag app [--store DIR] [--port N] [--address HOST] [--allow-remote]
    sculptrag serve [--store DIR] [--host 127.0.0.1] [--port 8000] [--workers N]
    sculptrag keys create --name NAME --groups G ... [--editor] | keys list | keys revoke NAME_OR_ID
    sculptrag db current [--store DIR] | db upgrade [--store DIR]
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from pipeline.types import Answer, ValidationReport

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")  # model-loading progress bars from transformers / sentence-transformers

cli = typer.Typer(add_completion=False, no_args_is_help=True, help="sculptrag: ask your documents, get cited answers.")
console = Console()
err = Console(stderr=True)


def _settings(store: Optional[Path]):
    from pipeline.config import Settings

    return Settings(store_dir=store) if store else Settings()


def _log(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@contextlib.contextmanager
def _progress(label: str, first: str = "", describe: Callable[[str], str] = str) -> Iterator[Callable[[int, int, str], None]]:
    """A transient progress bar on stderr; yields the (done, total, what) callback ingest and eval report to."""
    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=err, transient=True) as bar:
        task = bar.add_task(first, total=None)
        yield lambda done, total, what: bar.update(task, completed=done, total=total, description=escape(describe(what)[:50]))


@cli.command()
def ingest(
    paths: List[str] = typer.Argument(..., help="files, folders (recursive) or globs"),
    store: Optional[Path] = typer.Option(None, "--store", help="store folder (default .sculptrag or $SCULPTRAG_STORE_DIR)"),
    groups: Optional[List[str]] = typer.Option(None, "--groups", help="who may read new documents: groups, "
                                                "repeatable or comma-separated (default: public)"),
    set_groups: bool = typer.Option(False, "--set-groups", help="also give --groups to documents already stored "
                                    "(without it, a stored document keeps its groups)"),
    prune: bool = typer.Option(False, "--prune", help="delete stored documents under these folders whose files are gone"),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help="parse and embed on a Ray cluster: local "
                                      "(start one on this machine), auto (the one started here), or HOST:PORT"),
    api: Optional[str] = typer.Option(None, "--api", envvar="SCULPTRAG_API_URL", help="ingest into a running "
                                      "`sculptrag serve` at this URL: the files are uploaded (an editor's key from "
                                      "$SCULPTRAG_API_KEY), nothing is loaded here"),
    on_server: bool = typer.Option(False, "--on-server", help="with --api: the paths are the server's own (under its "
                                   "folder roots), not uploaded"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Parse, validate, chunk and embed documents into the store; unchanged files are skipped."""
    _log(verbose)
    settings = _settings(store)
    if set_groups and not groups:
        err.print("[red]error:[/red] --set-groups needs --groups: say which groups the stored documents get")
        raise typer.Exit(2)
    if api:
        for given, name in ((store, "--store"), (ray, "--ray"), (prune and not on_server, "--prune")):
            if given:
                raise typer.BadParameter("the service ingests into its own store on its own machine" if name != "--prune"
                                         else "only the server's own folders can be pruned: add --on-server", param_hint=name)
        _ingest_api(api, paths, list(groups or settings.default_groups), set_groups=set_groups, prune=prune,
                    on_server=on_server, settings=settings)
        return
    if on_server:
        raise typer.BadParameter("--on-server names paths on a running service: add --api URL", param_hint="--on-server")
    from pipeline import SculptragError
    from pipeline import ingest as run_ingest

    with _progress("ingest", describe=lambda path: Path(path).name) as on_progress:
        try:
            report = run_ingest(paths, settings, groups=groups, set_groups=set_groups, prune=prune,
                                progress=on_progress, wait=None, ray=ray)
        except SculptragError as e:
            err.print(f"[red]error:[/red] {escape(str(e))}")
            raise typer.Exit(2) from None
    _print_report(report, settings)
    if report.files_seen and report.rejected == report.files_seen:
        raise typer.Exit(1)


def _ingest_api(url: str, paths: List[str], groups: List[str], *, set_groups: bool, prune: bool, on_server: bool,
                settings) -> None:
    """`ingest --api`: upload the files (or, --on-server, name the server's own) to a running service; the same
    report as a local run, exit 2 with the service's error (after printing what the earlier requests did)."""
    from app.client import ServiceClient, ServiceError

    client = ServiceClient(url)
    try:
        if on_server:
            with err.status(f"ingesting on {url}..."):
                report = client.ingest(paths, groups, set_groups=set_groups, prune=prune)
        else:
            with _progress("upload", describe=lambda name: name.rsplit("/", 1)[-1]) as on_progress:
                report = client.upload_paths(paths, groups, set_groups=set_groups, progress=on_progress)
    except ServiceError as e:
        if e.report is not None and e.report.outcomes:
            _print_report(e.report, settings, where=url)
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    finally:
        client.close()
    _print_report(report, settings, where=url)
    if report.files_seen and report.rejected == report.files_seen:
        raise typer.Exit(1)


def _print_report(report, settings, where: str | None = None) -> None:
    rejected = report.rejections()
    if rejected:
        t = Table(title="Rejected", title_justify="left", show_lines=False)
        t.add_column("file", overflow="fold")
        t.add_column("reason", style="yellow")
        t.add_column("detail", overflow="fold")
        for o in rejected:
            t.add_row(escape(_short(o.path)), escape(o.reason), escape(o.detail))
        console.print(t)
    t = Table(title=f"Ingest report ({where or settings.store_dir})", title_justify="left", show_header=False)
    t.add_column("what")
    t.add_column("count", justify="right")
    rows = [
        ("files seen", report.files_seen), ("ingested", report.ingested), ("unchanged", report.unchanged),
        ("updated", report.updated), ("removed", report.removed), ("rejected", report.rejected),
        ("skipped", report.skipped),
        ("chunks added / removed", f"{report.chunks_added} / {report.chunks_removed}"),
        ("time", f"{report.seconds:.1f} s"),
    ]
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)
    for status in ("rejected", "skipped"):
        if reasons := report.reasons(status):
            console.print(f"{status} by reason: " + ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())))
    if report.kept_groups:
        console.print(f"{report.kept_groups} stored document(s) kept their own groups; --set-groups gives them --groups")
    if report.still_quarantined:
        console.print(f"{report.still_quarantined} file(s) in quarantine (see `sculptrag status --quarantine`)")


def _short(path: str) -> str:
    p = path.removeprefix("file://")
    try:
        return str(Path(p).relative_to(Path.cwd()))
    except ValueError:
        return p


@cli.command()
def status(
    store: Optional[Path] = typer.Option(None, "--store"),
    quarantine: bool = typer.Option(False, "--quarantine", help="list quarantined files with reasons"),
) -> None:
    """Counts, index consistency and (optionally) the quarantine of a store."""
    from pipeline import Store
    from pipeline.store import store_exists

    settings = _settings(store)
    if not store_exists(settings):
        err.print(f"[red]error:[/red] no store at {settings.store_dir}; run `sculptrag ingest PATH --store {settings.store_dir}` first")
        raise typer.Exit(2)
    s = Store(settings)
    counts, check = s.counts(), s.check()
    t = Table(title=f"Store {settings.store_dir}", title_justify="left")
    for col in ("documents", "chunks", "quarantined", "FAISS vectors", "generation", "consistent"):
        t.add_column(col, justify="right")
    t.add_row(str(counts["documents"]), str(counts["chunks"]), str(counts["quarantined"]),
              str(check["faiss_vectors"]), str(s.generation), "yes" if check["consistent"] else "[red]NO[/red]")
    console.print(t)
    if quarantine:
        q = Table(title="Quarantine", title_justify="left")
        q.add_column("file", overflow="fold")
        q.add_column("reason", style="yellow")
        q.add_column("detail", overflow="fold")
        for row in s.quarantined():
            q.add_row(escape(_short(row.source_uri)), escape(row.reason), escape(row.detail))
        console.print(q)


@cli.command()
def ask(
    question: str = typer.Argument(..., help="the question"),
    store: Optional[Path] = typer.Option(None, "--store"),
    generator: Optional[str] = typer.Option(None, "--generator", help="a registered generator (see --list-generators)"),
    groups: Optional[List[str]] = typer.Option(None, "--groups", help="the caller's access groups (default: public)"),
    k: Optional[int] = typer.Option(None, "--k", help="passages to retrieve"),
    model_path: Optional[Path] = typer.Option(None, "--model-path", help="local checkpoint for llada/dream/hf-mlm/hf-causal"),
    filters: Optional[List[str]] = typer.Option(None, "--filter", help="only documents whose FIELD is VALUE (repeatable): "
                                                "entity, period, dated, author, title, file_type, source (a path "
                                                "prefix or glob), or any document column"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    api: Optional[str] = typer.Option(None, "--api", envvar="SCULPTRAG_API_URL", help="ask a running `sculptrag serve` "
                                      "at this URL (e.g. http://gpu-host:8000) instead of loading models here; the "
                                      "key comes from $SCULPTRAG_API_KEY"),
) -> None:
    """Answer a question from the store, with citations that point at the source passages."""
    from pipeline import SculptragError
    from pipeline.types import SearchFilters

    if api:
        if model_path:
            raise typer.BadParameter("the service chooses its own weights; leave --model-path out with --api",
                                     param_hint="--model-path")
        answer = _ask_api(api, question, generator=generator, groups=groups, k=k,
                          filters=_filters(filters or [], SearchFilters))
        if as_json:
            print(answer.model_dump_json(indent=2, exclude={"passages"}))
            return
        _print_answer(answer)
        return
    settings = _settings(store)
    from pipeline.rag import RagPipeline
    from pipeline.store import store_exists

    if not store_exists(settings):
        err.print(f"[red]error:[/red] no store at {settings.store_dir}; run `sculptrag ingest PATH` first")
        raise typer.Exit(2)
    try:
        with err.status("retrieving and generating..."):
            options = {(generator or settings.generator): {"model_path": str(model_path)}} if model_path else None
            answer = RagPipeline(settings, generator_options=options).ask(question, groups=groups, generator=generator, k=k,
                                                                          filters=_filters(filters or [], SearchFilters))
    except SculptragError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    if as_json:
        print(answer.model_dump_json(indent=2, exclude={"passages"}))
        return
    _print_answer(answer)


def _ask_api(url: str, question: str, *, generator: Optional[str], groups: Optional[List[str]], k: Optional[int],
             filters) -> Answer:
    """Ask a running service (key: $SCULPTRAG_API_KEY); exit 2 with its error."""
    from app.client import ServiceClient, ServiceError

    client = ServiceClient(url)
    try:
        with err.status(f"asking {url}..."):
            return client.ask(question, generator=generator, groups=groups, k=k, filters=filters)
    except ServiceError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    finally:
        client.close()


def _filters(given: list[str], model):
    """`--filter FIELD=VALUE` options -> SearchFilters (a field given twice matches either value)."""
    if not given:
        return None
    values: dict[str, list[str]] = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: write FIELD=VALUE, e.g. entity=ACME Corporation", param_hint="--filter")
        values.setdefault(key.strip(), []).append(value.strip())
    direct = {k: v if len(v) > 1 else v[0] for k, v in values.items() if k in ("source", "media_type", "file_type")}
    other = {k: v if len(v) > 1 else v[0] for k, v in values.items() if k not in direct}
    return model(**direct, fields=other)


def _print_answer(answer) -> None:
    console.print(f"[bold]{escape(answer.question)}[/bold]\n")
    console.print(escape(answer.text) if answer.text else "[dim](empty answer)[/dim]")
    if answer.citations:
        console.print("\n[bold]Sources[/bold]")
        for c in answer.citations:
            where = f", page {c.page}" if c.page else ""
            console.print(f"  {escape(f'[{c.marker}]')} {escape(c.document_title)}{where}  "
                          f"[dim]{escape(_short(c.source_uri))} (chunk {c.chunk_id})[/dim]")
            quote = c.quote.replace("\n", " ")
            console.print(f"      [dim]\u201c{escape(quote[:240])}{'...' if len(quote) > 240 else ''}\u201d[/dim]")
    elif answer.passages and not answer.validation.refusal:
        console.print("\n[yellow]The answer cites no passage.[/yellow]")
    _print_validation(answer.validation)
    t = answer.timings
    tr = answer.trace
    console.print(
        f"\n[dim]{answer.generator}: retrieve {t.get('retrieve_s', 0):.2f} s, generate {t.get('generate_s', 0):.2f} s"
        + (f", validate {t['validate_s']:.2f} s" if "validate_s" in t else "")
        + (f", repair {t['repair_s']:.2f} s" if "repair_s" in t else "")
        + (f", {tr.steps} steps, {tr.tokens_per_s:.1f} tokens/s" if tr else "") + "[/dim]"
    )


VERDICT_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def _print_validation(report: ValidationReport) -> None:
    """The verdict in plain words, the reason for every sentence that is not a pass, and any repair."""
    status = report.status
    style = VERDICT_STYLE.get(status, "dim")
    label = {"pass": "PASS: every sentence is supported by the passages it cites",
             "warn": "WARN: check the notes below", "fail": "FAIL: this answer is not supported by its sources"}
    if report.refusal and status == "pass":
        console.print(f"\n[{style}]Validation PASS: a refusal claims nothing the passages would have to support[/{style}]")
        return
    console.print(f"\n[{style}]Validation {label.get(status, status)}[/{style}]")
    for reason in report.reasons:
        console.print(f"  [{style}]- {escape(reason)}[/{style}]")
    for s in report.sentences:
        if s.status in ("warn", "fail"):
            st = VERDICT_STYLE[s.status]
            console.print(f"  [{st}]{s.status}[/{st}] \u201c{escape(s.text[:120])}\u201d: {escape('; '.join(s.reasons))}")
    for r in report.repair:
        console.print(f"  [dim]repair ({r.how}): {r.before} -> {r.after} in {r.seconds:.2f} s[/dim]")


SAMPLES = Path(__file__).resolve().parent / "samples"


@cli.command()
def demo(
    store: Path = typer.Option(Path(".sculptrag-demo"), "--store", help="where the demo store goes"),
    generator: Optional[str] = typer.Option(None, "--generator"),
) -> None:
    """The whole product on the bundled sample corpus: ingest it, then answer a few questions with citations."""
    import json

    from pipeline import ingest as run_ingest
    from pipeline.rag import RagPipeline

    settings = _settings(store)
    with err.status("ingesting the sample corpus..."):
        report = run_ingest([SAMPLES / "docs"], settings, groups=settings.default_groups)
    _print_report(report, settings)
    rag = RagPipeline(settings)
    for item in json.loads((SAMPLES / "questions.json").read_text()):
        with err.status(f"answering: {item['question']}"):
            answer = rag.ask(item["question"], generator=generator)
        console.rule()
        _print_answer(answer)


@cli.command("app")
def app_cmd(
    store: Optional[Path] = typer.Option(None, "--store", help="store folder (default .sculptrag or $SCULPTRAG_STORE_DIR)"),
    port: int = typer.Option(8501, "--port", help="port to serve on"),
    address: str = typer.Option("localhost", "--address", help="interface to bind: localhost (default) serves only this "
                                "machine; anything wider needs a sign-in proxy (SCULPTRAG_APP__GROUPS_HEADER and "
                                "SCULPTRAG_APP__PROXY_SECRET) or --allow-remote"),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="serve a wider --address without a sign-in proxy: "
                                      "everyone who reaches the port is the local user, reads what they read and, "
                                      "unless SCULPTRAG_APP__EDITOR_GROUPS says otherwise, may ingest and delete"),
    api: Optional[str] = typer.Option(None, "--api", envvar="SCULPTRAG_API_URL", help="use a running `sculptrag "
                                      "serve` at this URL (key: $SCULPTRAG_API_KEY) instead of a local store and models"),
) -> None:
    """The internal web app (Streamlit): Ask, Documents, Evaluate and Settings pages.

    The process becomes Streamlit (exec): its PID is the server's, so stopping it stops the app."""
    import ipaddress

    settings = _settings(store)
    app = settings.app
    if app.header_mode and app.proxy_secret is None:
        err.print(f"[red]error:[/red] groups come from the {escape(str(app.groups_header))} header, but nothing proves a "
                  "request came through your sign-in proxy, so anyone who reaches the app could name their own groups. "
                  "Set SCULPTRAG_APP__PROXY_SECRET to a long random value (16+ characters) and have the proxy send it "
                  f"in the {escape(app.proxy_secret_header)} header on every request, the websocket's included "
                  "(SCULPTRAG_APP__PROXY_SECRET_HEADER names another header).")
        raise typer.Exit(2)
    try:
        local = address == "localhost" or ipaddress.ip_address(address).is_loopback
    except ValueError:
        local = False  # a host name or a wildcard: assume it reaches the network
    if not local and not app.header_mode and not allow_remote:
        err.print(f"[red]error:[/red] --address {escape(address)} serves other machines, and without a sign-in proxy every "
                  "one of their users would be this machine's local user (its groups, and editing). Put the app "
                  "behind a proxy that authenticates people (SCULPTRAG_APP__GROUPS_HEADER, SCULPTRAG_APP__PROXY_SECRET), "
                  "serve on localhost, or pass --allow-remote if that is really what you want.")
        raise typer.Exit(2)
    if app.header_mode and not app.editor_groups:
        err.print("note: nobody may ingest, delete or run evaluations (SCULPTRAG_APP__EDITOR_GROUPS names the groups who may)")
    env = dict(os.environ)
    if store:
        env["SCULPTRAG_STORE_DIR"] = str(store.resolve())
    if api:
        env["SCULPTRAG_API_URL"] = api
        if not env.get("SCULPTRAG_API_KEY"):
            err.print("note: SCULPTRAG_API_KEY is not set; the service will refuse the app's requests (401)")
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    script = Path(__file__).parent / "ui" / "main.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port), "--server.address", address,
           "--server.headless", "true", "--server.fileWatcherType", "none", "--global.developmentMode", "false",
           "--client.toolbarMode", "minimal", "--client.showErrorDetails", "none",  # no tracebacks in the browser
           "--server.maxUploadSize", str(settings.app.max_upload_mb)]
    err.print(f"sculptrag app on http://{escape(address)}:{port} (store {escape(str(settings.store_dir))}); Ctrl+C stops it")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, env)  # replaces this process: signals reach Streamlit itself


def _any_active_key(settings) -> bool:
    from pipeline import Store

    return any(k.active for k in Store(settings).api_keys())


@cli.command()
def serve(
    store: Optional[Path] = typer.Option(None, "--store", help="store folder (default .sculptrag or $SCULPTRAG_STORE_DIR)"),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to bind (the default serves this machine only)"),
    port: int = typer.Option(8000, "--port"),
    workers: int = typer.Option(1, "--workers", min=1, help="processes, each with its own models and queue"),
) -> None:
    """The HTTP service (FastAPI on uvicorn): /v1/ask, /v1/chat/completions (OpenAI-compatible), documents, /docs."""
    import uvicorn

    settings = _settings(store)
    if settings.app.header_mode and settings.app.proxy_secret is None:
        err.print(f"[red]error:[/red] groups come from the {escape(str(settings.app.groups_header))} header, but "
                  "nothing proves a request came through your sign-in proxy. Set SCULPTRAG_APP__PROXY_SECRET (16+ "
                  "characters) and have the proxy send it, or unset SCULPTRAG_APP__GROUPS_HEADER to use API keys only.")
        raise typer.Exit(2)
    if store:
        os.environ["SCULPTRAG_STORE_DIR"] = str(store.resolve())  # the workers build their Settings from the environment
    if not _any_active_key(settings) and not settings.app.header_mode:
        err.print("note: no API key exists yet, so every request gets 401; make one with "
                  "`sculptrag keys create --name NAME --groups G`")
    err.print(f"sculptrag serve on http://{escape(host)}:{port} (store {escape(str(settings.store_dir))}, API at /docs); "
              "Ctrl+C stops it")
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # /metrics sums over the workers
        import tempfile

        metrics_dir = tempfile.mkdtemp(prefix="sculptrag-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run("app.service:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="info", proxy_headers=False)
    finally:
        if metrics_dir:
            import shutil

            shutil.rmtree(metrics_dir, ignore_errors=True)


keys_cli = typer.Typer(no_args_is_help=True, help="API keys of the HTTP service (only their hashes are stored).")
cli.add_typer(keys_cli, name="keys")


@keys_cli.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", help="who holds the key (a service or team); unique"),
    groups: List[str] = typer.Option(..., "--groups", help="the groups it reads with (repeatable or comma-separated)"),
    editor: bool = typer.Option(False, "--editor", help="may upload, ingest and delete documents"),
    store: Optional[Path] = typer.Option(None, "--store"),
) -> None:
    """Make a key and print it once: only its hash is kept, so a lost key is revoked and replaced."""
    from app.service.auth import new_key
    from pipeline import SculptragError, Store

    try:
        row, token = new_key(Store(_settings(store)), name, groups, editor=editor)
    except SculptragError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    err.print(f"key {escape(row.name)} (id {row.id}, groups {escape(', '.join(row.group_names))}"
              f"{', editor' if row.editor else ''}); it is shown only now:")
    print(token)


@keys_cli.command("list")
def keys_list(store: Optional[Path] = typer.Option(None, "--store")) -> None:
    """The keys: name, groups, editor, when made, whether revoked (never the key)."""
    from pipeline import Store

    t = Table(title="API keys", title_justify="left")
    for col in ("id", "name", "groups", "editor", "created", "revoked"):
        t.add_column(col)
    for k in Store(_settings(store)).api_keys():
        t.add_row(str(k.id), escape(k.name), escape(", ".join(k.group_names)), "yes" if k.editor else "",
                  k.created_at.strftime("%Y-%m-%d %H:%M"),
                  k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "")
    console.print(t)


@keys_cli.command("revoke")
def keys_revoke(
    name_or_id: str = typer.Argument(..., help="the key's name or id (see `sculptrag keys list`)"),
    store: Optional[Path] = typer.Option(None, "--store"),
) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    from pipeline import Store

    row = Store(_settings(store)).revoke_api_key(name_or_id)
    if row is None:
        err.print(f"[red]error:[/red] no key named {escape(name_or_id)}; `sculptrag keys list` shows them")
        raise typer.Exit(2)
    err.print(f"revoked {escape(row.name)} (id {row.id})")


db_cli = typer.Typer(no_args_is_help=True, help="The store's SQL schema (Alembic migrations; opening a store applies them).")
cli.add_typer(db_cli, name="db")


@db_cli.command("current")
def db_current(store: Optional[Path] = typer.Option(None, "--store")) -> None:
    """Print the store's schema revision (and the newest this sculptrag knows); changes nothing."""
    from sqlalchemy import create_engine

    from pipeline.schema import head_revision, store_revision
    from pipeline.store import store_exists

    settings = _settings(store)
    if not store_exists(settings):
        err.print(f"[red]error:[/red] no store at {escape(str(settings.store_dir))}")
        raise typer.Exit(2)
    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            current = store_revision(conn)
    finally:
        engine.dispose()
    head = head_revision()
    print(current or "none")
    err.print(f"head {head}" + ("" if current == head else "; `sculptrag db upgrade` (or opening the store) upgrades it"))


@db_cli.command("upgrade")
def db_upgrade(store: Optional[Path] = typer.Option(None, "--store")) -> None:
    """Upgrade the store's schema to the newest revision (opening a store does it too) and print it."""
    from pipeline import SculptragError
    from pipeline.schema import open_engine, upgrade_store

    settings = _settings(store)
    try:
        settings.store_dir.mkdir(parents=True, exist_ok=True)
        engine = open_engine(settings.resolved_database_url)
        try:
            print(upgrade_store(engine))
        finally:
            engine.dispose()
    except (SculptragError, OSError) as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None


def _training_inputs(exclude: Optional[List[str]], data: Path, out: Path) -> None:
    """Exit 2 on an unknown corpus to leave out or no data to build the items from; then log at INFO."""
    from generator.sculpt.training.data import CORPORA

    unknown = [c for c in exclude or [] if c not in CORPORA]
    if unknown:
        err.print(f"[red]unknown corpus {', '.join(unknown)}[/red]; --exclude takes {', '.join(CORPORA)}")
        raise typer.Exit(2)
    if not data.is_dir() and not (out / "items.pkl").is_file():
        err.print(f"[red]no data folder at {data}[/red]; pass --data pointing at the shared data (qa/, docs/)")
        raise typer.Exit(2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")


@cli.command("train-generator")
def train_generator(
    out: Path = typer.Option(Path("runs/sculpt"), "--out", help="run folder: state.pt (resumable) and the checkpoint"),
    data: Path = typer.Option(Path("../shared/data"), "--data", help="the shared data folder (QA sets, documents)"),
    steps: int = typer.Option(900, "--steps", help="optimizer steps in all (a resumed run counts on)"),
    batch_size: int = typer.Option(8, "--batch-size"),
    lr: float = typer.Option(5e-4, "--lr", help="peak learning rate of the new layers"),
    encoder_lr: float = typer.Option(1e-4, "--encoder-lr", help="peak learning rate of the fine-tuned encoder layers"),
    warmup: int = typer.Option(50, "--warmup", help="steps of linear learning-rate warm-up (then cosine to 10%)"),
    seed: int = typer.Option(0, "--seed"),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="save and stop after this long"),
    stop_at: Optional[int] = typer.Option(None, "--stop-at", help="save and stop at this step (the schedule still spans --steps)"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    workers: Optional[int] = typer.Option(None, "--workers", help="processes building batches (default: 0 on CPU, up to 8 on CUDA)"),
    exclude: Optional[List[str]] = typer.Option(None, "--exclude", help="leave this corpus out of training "
                                                "(repeatable): chunking_eval, scifact, handbook, rgb, debian_docs, example_docs"),
    init_from: Optional[str] = typer.Option(None, "--init-from", help="continue from this checkpoint folder "
                                            "(\"bundled\": the shipped model) instead of the base encoder"),
) -> None:
    """Train the bundled answer model (masked diffusion, copy-aware); rerun the same command to resume."""
    from generator.sculpt.training.train import TrainConfig, train

    _training_inputs(exclude, data, out)
    os.environ["TQDM_DISABLE"] = "0"
    cfg = TrainConfig(data_root=str(data), out=str(out), steps=steps, batch_size=batch_size, lr=lr,
                      encoder_lr=encoder_lr, warmup=warmup, seed=seed, max_minutes=max_minutes, stop_at=stop_at,
                      device=device, workers=workers, exclude=tuple(exclude or ()), init_from=init_from)
    folder = train(cfg)
    console.print(f"checkpoint: {folder} (use it with --generator sculpt --model-path {folder}, or copy "
                  f"model.safetensors, config.json and meta.json to generator/sculpt/weights/ to bundle it)")


@cli.command("train-selector")
def train_selector_(
    out: Path = typer.Option(Path("runs/selector"), "--out", help="run folder: cached features and the checkpoint"),
    data: Path = typer.Option(Path("../shared/data"), "--data", help="the shared data folder (QA sets, documents)"),
    init_from: str = typer.Option("bundled", "--init-from", help="the parent checkpoint (\"bundled\": the shipped model)"),
    draws: int = typer.Option(1, "--draws", help="examples drawn per training item (each its own passages)"),
    epochs: int = typer.Option(40, "--epochs", help="passes of the heads over the cached features"),
    lr: float = typer.Option(1e-3, "--lr"),
    balance: float = typer.Option(0.5, "--balance", help="corpus weight n^-BALANCE (0: every example alike)"),
    objective: str = typer.Option("softmax", "--objective", help="softmax | binary | both (see training/selector.py)"),
    seed: int = typer.Option(0, "--seed"),
    exclude: Optional[List[str]] = typer.Option(None, "--exclude", help="leave this corpus out (repeatable)"),
) -> None:
    """Retrain only the answer model's sentence selector, on frozen features of a checkpoint (~25 min on 2 CPU cores)."""
    from generator.sculpt.training.selector import SelectorConfig, train_selector

    _training_inputs(exclude, data, out)
    folder = train_selector(SelectorConfig(data_root=str(data), out=str(out), init_from=init_from, draws=draws,
                                           epochs=epochs, lr=lr, balance=balance, objective=objective, seed=seed,
                                           exclude=tuple(exclude or ())))
    console.print(f"checkpoint: {folder} (choose its threshold: python benchmarks/answer_decision.py --model-path {folder})")


@cli.command("eval")
def eval_(
    dataset: str = typer.Argument(..., help="scifact | chunking_eval | rgb | business_docs | manuals | a .jsonl/.csv question file"),
    generator: Optional[List[str]] = typer.Option(None, "--generator", help="generator to compare (repeatable; default: the configured one)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="ask only the first N questions (built-in sets: of a seeded shuffle)"),
    k: Optional[int] = typer.Option(None, "--k", help="passages per question (default: the retrieval setting)"),
    out: Optional[Path] = typer.Option(None, "--out", help="report folder (default runs/eval/<dataset>)"),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="documents to ask a .jsonl/.csv question file of"),
    store: Optional[Path] = typer.Option(None, "--store", help="evaluation store (default runs/eval-stores/<dataset>; reused)"),
    data: Optional[Path] = typer.Option(None, "--data", help="the shared data folder for the built-in sets"),
    groups: Optional[List[str]] = typer.Option(None, "--groups", help="the groups the questions are asked with (and "
                                               "given to the documents eval ingests); recorded in the report"),
    noise: Optional[str] = typer.Option(None, "--noise", help="noise sweep: shares of distractor passages, e.g. "
                                        "0,0.4,0.8,1; each question is asked once per level over a fixed passage set"),
    unanswerable: bool = typer.Option(False, "--unanswerable", help="add the unanswerable slice (level 1: distractors "
                                      "only, a refusal expected) to --noise; alone, levels 0 and 1"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run a dataset through retrieval, generators and validation; write report.json and report.html."""
    from pipeline import SculptragError
    from evaluation.datasets import load_dataset
    from evaluation.report import noise_table, summary_table, write_report
    from evaluation.runner import EvalRun, parse_levels, run_eval

    _log(verbose)
    settings = _settings(None)
    try:
        levels = parse_levels(noise) if noise is not None else None
        if unanswerable:
            levels = [x for x in levels or [0.0] if x != 1.0] + [1.0]
        ds = load_dataset(dataset, limit=limit, corpus=corpus, root=data)
        with _progress("eval", first="building the store...") as on_progress:
            run = EvalRun(dataset=ds, generators=generator or [settings.generator], k=k or settings.retrieval.k,
                          limit=limit, store_dir=store, groups=groups, noise=levels, settings=settings)
            report = run_eval(run, progress=on_progress)
    except SculptragError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    json_path, html_path = write_report(report, out or Path("runs/eval") / ds.name)
    for name, s in report["generators"].items():
        if s["status"] != "ok":
            err.print(f"[yellow]{name} was not run:[/yellow] {s['error']}")

    def metrics_table(title: str, headers: list[str], rows: list[list[str]]) -> Table:
        t = Table(title=title, title_justify="left")
        t.add_column("metric")
        for row in rows:  # one column per generator: fits a terminal however many metrics there are
            t.add_column(row[0], justify="right")
        for i, h in enumerate(headers[1:], start=1):
            t.add_row(h, *(row[i] for row in rows))
        return t

    cfg = report["config"]
    headers, rows = summary_table(report)
    if "slices" not in report:
        console.print(metrics_table(f"{ds.name}: {cfg['items']} questions, k={cfg['k']}", headers, rows))
    else:
        for name, sl in report["slices"].items():
            asked = sum(r["slice"] == name for r in report["items"])
            console.print(metrics_table(f"{ds.name}, {name}: {asked} asked, {sl['skipped']} skipped, k={cfg['k']}",
                                        *summary_table(report, sl["summary"])))
        sweep_headers, sweep_rows = noise_table(report)
        t = Table(title=f"{ds.name}: noise sweep (level 1: the unanswerable slice)", title_justify="left")
        for h in sweep_headers:
            t.add_column(h, justify="left" if h == "noise" else "right")
        for row in sweep_rows:
            t.add_row(*row)
        console.print(t)
    console.print(f"report: {json_path}  {html_path}")
    if not rows:
        raise typer.Exit(1)


def main() -> None:
    from pipeline.errors import SculptragError

    try:
        cli()
    except KeyboardInterrupt:
        err.print("interrupted; the store keeps everything committed so far, re-run to finish")
        sys.exit(130)
    except SculptragError as e:  # one a command does not report itself (e.g. an unreachable database)
        err.print(f"[red]error:[/red] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
