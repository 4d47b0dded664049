"""HH data: `hh` (transcripts, rows, loading), `rows` (local files), `prompts` (policy prompts)."""
