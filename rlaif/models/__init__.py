"""The model layer that training and evaluation share; it never imports `rlaif.ppo`.

    layout.py    what a run folder and a saved policy folder hold (names only)
    load.py      hub id | folder | .gguf | checkpoint | run folder | in-memory model -> LM, tokenizer
    gguf.py      .gguf files (or a folder holding one): found, loaded dequantised as plain models
    patches.py   in-place speed patches for a freshly loaded LM (fused GELU, contiguous head input)
    generate.py  batched seeded generation, the one EOS rule, query tokenisation
    logprobs.py  per-response-token logprobs and entropy, KL estimators, hold-out sequence KL
    tiny.py      small models built from scratch, offline (tests and the demo); a tiny Llama as GGUF
"""
