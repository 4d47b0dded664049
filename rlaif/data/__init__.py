"""HH data: `hh` (transcripts, rows, loading), `rows` (local files), `prompts` (policy prompts),
`chat` (HH dialogues through the tokenizer's chat template, for the policy's input)."""
