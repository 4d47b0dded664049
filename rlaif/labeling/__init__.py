"""`rlaif label`: preference pairs labelled by any judge, in TRL's preference format.

    sources.py    the pairs: HH chosen/rejected (human label kept, shown in alternating order),
                  or two samples per prompt from a policy (chat template)
    rows.py       one output row per pair (prompt, chosen, rejected + verdict, strength, cost ...)
    job.py        label in chunks, stream to <out>.partial, resume, atomic final file, meta
    agreement.py  agreement with the human label (overall, by position), counts
    dataset.py    the decided rows as a `datasets` folder (save_to_disk)
"""
