"""One judge workbench: a file of samples or pairs judged in small batches, every answer kept.

`rlaif score`, `rlaif compare` and `rlaif label` are views over one job (`job.py`): the judge
is asked a small batch at a time, each answer is written to `<out>.partial` before the next
request (`journal.py`), a stop (budget, judge error, SIGINT/SIGTERM/SIGHUP) keeps everything
paid for and says where, and `--resume` continues without asking anything twice, with the
budget the earlier runs spent taken off (`judge_setup.py`).

    job.py                the batch loop, `Stop`, `WorkbenchStopped`, the stop message
    journal.py            `<out>.partial`: header, answers appended + fsync'd, resume/restart/refuse
    stop_signals.py       SIGINT/SIGTERM/SIGHUP: finish the batch in flight, then stop
    judge_setup.py        a judge reference -> spec, fingerprint, batch size, budget left; compare's
                          judge names and per-judge --set
    records.py            a Score as a journal row and back; what rows cost
    samples_file.py       `rlaif score`'s input rows -> Samples (rows numbered from 1)
    score_file.py         `rlaif score`: ScoreJob, the output rows, the summary
    judge_comparison.py   `rlaif compare`: judges on HH pairs (accuracy, ties, latency, cost)
    preference_stats.py   verdicts at 12 digits, average ranks, Spearman, pair agreement
    comparison_report.py  report.md/json and the two plots of a comparison
    pairs.py              the pairs to label: HH pairs (human label kept), two policy samples
    label_rows.py         one TRL preference row per labelled pair
    label_file.py         `rlaif label`: resumable, one judge per file, `<out>.meta.json`
    agreement.py          counts, position consistency, agreement with the human label
    label_dataset.py      the decided pairs as a `datasets` folder
"""
