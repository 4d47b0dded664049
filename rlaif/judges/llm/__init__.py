"""Claude judges: pointwise (`pointwise.py`) and pairwise (`pairwise.py`) LLM judges over one
provider each (`anthropic.py`: the Anthropic API, `bedrock.py`: Amazon Bedrock; `provider.py`
what they share), the request sender (`sender.py`: concurrency, pacing, retries, budget,
cost), prompt templates (`templates.py`) and reply parsing (`parsing.py`)."""
