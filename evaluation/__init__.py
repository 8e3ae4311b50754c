"""Evaluation: datasets through retrieval, generators and validation; metrics; reports (JSON, HTML).

    from evaluation import EvalRun, load_dataset, run_eval, write_report

    report = run_eval(EvalRun(dataset=load_dataset("rgb", limit=20), generators=["extractive", "sculpt"], k=8))
    write_report(report, "runs/eval/rgb")

It sits above the pipeline: it builds its own stores, asks through `RagPipeline` and reads the `Answer`s;
nothing below it imports it. Modules: datasets (one loader per set), stores (the evaluation store),
runner (`EvalRun`, `run_eval`), metrics (retrieval via ir-measures, answers, citations, speed, summaries),
report (tables, report.json, the HTML page).
"""

from .datasets import BUILTIN, EvalDataset, EvalItem, load_dataset
from .report import summary_table, write_report
from .runner import EvalRun, run_eval

__all__ = ["BUILTIN", "EvalDataset", "EvalItem", "load_dataset", "EvalRun", "run_eval", "summary_table", "write_report"]
