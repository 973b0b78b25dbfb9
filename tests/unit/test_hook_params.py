"""The hook parameter classes a script receives are the ones the plugin API publishes (isinstance works)."""

from modules import script_callbacks, scripts
from modules.extensions import api
from modules.processing import hooks
from modules.runtime import hook_params


def test_pipeline_and_plugin_api_share_one_class_per_parameter_object() -> None:
    for name in ("PostprocessImageArgs", "PostprocessBatchListArgs", "PostSampleArgs"):
        assert getattr(hooks, name) is getattr(api, name) is getattr(scripts, name) is getattr(hook_params, name)
    for name in ("ImageSaveParams", "ExtraNoiseParams", "ImageGridLoopParams"):
        assert getattr(hooks, name) is getattr(script_callbacks, name) is getattr(hook_params, name)
