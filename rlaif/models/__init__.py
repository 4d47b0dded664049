"""The model layer that training and evaluation share; it never imports `rlaif.ppo`.

    policy_layout.py  what a saved policy folder holds (names only; the run folder: rlaif.runs.folder)
    load.py      hub id | folder | .gguf | checkpoint | run folder | in-memory model -> LM, tokenizer
    gguf.py      .gguf files (or a folder holding one): found, loaded dequantised as plain models
    patches.py   in-place speed patches for a freshly loaded LM (fused GELU, contiguous head input)
    generate.py  batched seeded generation, the one EOS rule, query tokenisation
    logprobs.py  per-response-token logprobs and entropy, KL estimators, hold-out sequence KL
    lora.py      LoRA adapters: default target modules per architecture, wrapping a model
    training.py  what training does to an LM: frozen copies, dropout off, activation checkpointing
    tiny.py      small models built from scratch, offline (tests and the demo); a tiny Llama as GGUF
"""
