"""The offline demo: build (and cache) a small policy and evaluator, run PPO, report.

    from rlaif.demo import run_demo
    result = run_demo("runs/demo")
    result.improvement          # (before - after) / before of mean hold-out toxicity
"""

from rlaif.demo.assets import DemoAssets, build_demo_assets, build_real_assets, cache_root
from rlaif.demo.run import FAST_OVERRIDES, DemoResult, demo_config, run_demo
from rlaif.demo.settings import (AssetSettings, EvaluatorSettings, PolicySettings,
                                  RealAssetSettings, RudePolicySettings)

__all__ = ["FAST_OVERRIDES", "AssetSettings", "DemoAssets", "DemoResult", "RealAssetSettings",
           "RudePolicySettings", "build_real_assets",
           "EvaluatorSettings", "PolicySettings", "build_demo_assets", "cache_root", "demo_config",
           "run_demo"]
