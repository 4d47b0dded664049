"""Generation engines that run in their own process: a vLLM server rlaif starts, checks and stops.

    vllm_setup.py    where the vLLM Python is, and whether this machine can run it
    vllm_server.py   the server process: start on a free port, health check, log tail, stop
    vllm_client.py   its HTTP API: token-id completions with logprobs, LoRA adapter load/unload
"""
