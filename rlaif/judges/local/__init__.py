"""Judges that run on this machine: HF classifiers (`classifier.py`), sentence-embedding heads
(`embedding.py`), request/reply relevance (`relevance.py`), Python functions (`function.py`);
`model.py` is what the local-model judges share, `installed.py` the hub ids an installed
weights package holds."""
