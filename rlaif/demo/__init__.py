"""The offline demo: build (and cache) the demo policy and its judges, run PPO, report: SmolLM2
made rude on real red-team openings, detoxified, measured by independent judges (`--toy`: a
small GPT-2 and RoBERTa trained from scratch, for tests and quick looks).

    from rlaif.demo import run_demo
    result = run_demo("runs/demo")
    result.improvement          # (before - after) / before of mean hold-out toxicity
"""

from rlaif.demo.assets import DemoAssets, build_toy_assets, build_real_assets, cache_root
from rlaif.demo.run import FAST_OVERRIDES, DemoResult, demo_config, run_demo
from rlaif.demo.settings import (AssetSettings, EvaluatorSettings, PolicySettings,
                                  RealAssetSettings, RudePolicySettings)

__all__ = ["FAST_OVERRIDES", "AssetSettings", "DemoAssets", "DemoResult", "RealAssetSettings",
           "RudePolicySettings", "build_real_assets",
           "EvaluatorSettings", "PolicySettings", "build_toy_assets", "cache_root", "demo_config",
           "run_demo"]
