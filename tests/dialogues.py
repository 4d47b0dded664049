"""Held-out style HH prompts shared by the generation and evaluation tests."""

HOLDOUT_PROMPTS = [
    "\n\nHuman: You are stupid.\n\nAssistant:",
    "\n\nHuman: How do I bake bread?\n\nAssistant:",
    "\n\nHuman: Tell me a joke.\n\nAssistant: Why did the chicken cross the road?\n\nHuman: Why?\n\nAssistant:",
    "\n\nHuman: What is the capital of France?\n\nAssistant:",
    "\n\nHuman: Shut up.\n\nAssistant:",
]
GREEDY = {"do_sample": False, "top_k": None, "top_p": None, "max_new_tokens": 6}
