"""HH data: `hh` (transcripts, rows, loading), `rows` (local files), `prompts` (policy prompts),
`chat` (HH dialogues through the tokenizer's chat template, for the policy's input), `labelled`
(bundled texts with human toxicity labels), `heldout` (hh-rlhf rows kept out). LICENSES.md: sources."""
