"""vLLM engines: a server rlaif starts, checks and stops, or vllm.LLM in this process.

    vllm_setup.py       where the vLLM Python is, and whether this machine can run it
    vllm_server.py      the server process: start on a free port, health check, log tail, stop
    vllm_client.py      its HTTP API: token-id completions with logprobs, LoRA load/unload,
                        the in-place weight reload
    vllm_inprocess.py   vllm.LLM with the client's API
    vllm_worker/        the worker extension vLLM loads (reload a safetensors file in place)
    start.py            either kind started for a ServerSpec, behind one Engine handle
    generate.py         generate()'s contract on an engine
"""
