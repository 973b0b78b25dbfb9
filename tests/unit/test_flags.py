"""Command-line flags: A1111's whole flag set with its defaults, both value forms, COMMANDLINE_ARGS, errors with
suggestions, grouped --help, and the warnings about flags that cannot act on this machine."""

from __future__ import annotations

import io
import json
import os

import pytest

from modules.cli.flag_specs import FLAG_SPECS, FlagSpec
from modules.cli.flags import INSTALL_ROOT, FlagError, flag_warnings, help_text, parse_flags

J = os.path.join
R = str(INSTALL_ROOT)
D = os.path.abspath(os.sep + J("srv", "sd-data"))

# Every A1111 flag of the reference (§1 of a1111-features.md), attribute name as on A1111's cmd_opts, and A1111's
# default when --data-dir is D (defaults of path flags hang off the data dir, models dir = <data>/models).
A1111_FLAGS: list[tuple[str, str, object]] = [
    ("--listen", "listen", False),
    ("--port", "port", None),
    ("--server-name", "server_name", None),
    ("--share", "share", False),
    ("--ngrok", "ngrok", None),
    ("--ngrok-options", "ngrok_options", {}),
    ("--gradio-auth", "gradio_auth", None),
    ("--gradio-auth-path", "gradio_auth_path", None),
    ("--gradio-debug", "gradio_debug", False),
    ("--gradio-allowed-path", "gradio_allowed_path", (D, )),
    ("--no-gradio-queue", "no_gradio_queue", False),
    ("--api", "api", False),
    ("--nowebui", "nowebui", False),
    ("--api-auth", "api_auth", None),
    ("--api-log", "api_log", False),
    ("--api-server-stop", "api_server_stop", False),
    ("--timeout-keep-alive", "timeout_keep_alive", 30),
    ("--skip-load-model-at-start", "skip_load_model_at_start", False),
    ("--cors-allow-origins", "cors_allow_origins", None),
    ("--cors-allow-origins-regex", "cors_allow_origins_regex", None),
    ("--tls-keyfile", "tls_keyfile", None),
    ("--tls-certfile", "tls_certfile", None),
    ("--disable-tls-verify", "disable_tls_verify", None),
    ("--subpath", "subpath", None),
    ("--autolaunch", "autolaunch", False),
    ("--freeze-settings", "freeze_settings", False),
    ("--freeze-settings-in-sections", "freeze_settings_in_sections", None),
    ("--freeze-specific-settings", "freeze_specific_settings", None),
    ("--hide-ui-dir-config", "hide_ui_dir_config", False),
    ("--enable-insecure-extension-access", "enable_insecure_extension_access", False),
    ("--disable-all-extensions", "disable_all_extensions", False),
    ("--disable-extra-extensions", "disable_extra_extensions", False),
    ("--allow-code", "allow_code", False),
    # ours (docs/security.md): not in A1111
    ("--allowed-hosts", "allowed_hosts", None),
    ("--max-request-body-mb", "max_request_body_mb", 128),
    ("--max-queued-jobs", "max_queued_jobs", 64),
    ("--allow-remote-output-dirs", "allow_remote_output_dirs", False),
    ("--script-import-timeout", "script_import_timeout", 60),
    ("--ui-debug-mode", "ui_debug_mode", False),
    ("--administrator", "administrator", False),
    ("--theme", "theme", None),
    ("--use-textbox-seed", "use_textbox_seed", False),
    ("--disable-console-progressbars", "disable_console_progressbars", False),
    ("--no-progressbar-hiding", "no_progressbar_hiding", False),
    ("--loglevel", "loglevel", None),
    ("--log-startup", "log_startup", False),
    ("--medvram", "medvram", False),
    ("--medvram-sdxl", "medvram_sdxl", False),
    ("--lowvram", "lowvram", False),
    ("--lowram", "lowram", False),
    ("--no-half", "no_half", False),
    ("--no-half-vae", "no_half_vae", False),
    ("--precision", "precision", "autocast"),
    ("--upcast-sampling", "upcast_sampling", False),
    ("--device-id", "device_id", None),
    ("--use-cpu", "use_cpu", ()),
    ("--use-ipex", "use_ipex", False),
    ("--xformers", "xformers", False),
    ("--force-enable-xformers", "force_enable_xformers", False),
    ("--xformers-flash-attention", "xformers_flash_attention", False),
    ("--opt-split-attention", "opt_split_attention", False),
    ("--opt-split-attention-v1", "opt_split_attention_v1", False),
    ("--opt-split-attention-invokeai", "opt_split_attention_invokeai", False),
    ("--opt-sub-quad-attention", "opt_sub_quad_attention", False),
    ("--sub-quad-q-chunk-size", "sub_quad_q_chunk_size", 1024),
    ("--sub-quad-kv-chunk-size", "sub_quad_kv_chunk_size", None),
    ("--sub-quad-chunk-threshold", "sub_quad_chunk_threshold", None),
    ("--opt-sdp-attention", "opt_sdp_attention", False),
    ("--opt-sdp-no-mem-attention", "opt_sdp_no_mem_attention", False),
    ("--disable-opt-split-attention", "disable_opt_split_attention", False),
    ("--opt-channelslast", "opt_channelslast", False),
    ("--disable-opt-cpu-fast-path", "disable_opt_cpu_fast_path", False),  # ours (issue 16), A1111 --disable-opt-* style
    ("--disable-opt-cpu-prepack", "disable_opt_cpu_prepack", False),  # ours (issue 16): no prepacked UNet copy
    ("--disable-nan-check", "disable_nan_check", False),
    ("--disable-model-loading-ram-optimization", "disable_model_loading_ram_optimization", False),
    ("--no-hashing", "no_hashing", False),
    ("--disable-safe-unpickle", "disable_safe_unpickle", False),
    ("--data-dir", "data_dir", D),
    ("--models-dir", "models_dir", None),
    ("--ckpt", "ckpt", J(R, "model.ckpt")),
    ("--ckpt-dir", "ckpt_dir", None),
    ("--config", "config", J(R, "configs", "v1-inference.yaml")),
    ("--vae-dir", "vae_dir", None),
    ("--vae-path", "vae_path", None),
    ("--embeddings-dir", "embeddings_dir", J(D, "embeddings")),
    ("--textual-inversion-templates-dir", "textual_inversion_templates_dir", J(R, "textual_inversion_templates")),
    ("--hypernetwork-dir", "hypernetwork_dir", J(D, "models", "hypernetworks")),
    ("--lora-dir", "lora_dir", J(D, "models", "Lora")),
    ("--lyco-dir-backcompat", "lyco_dir_backcompat", J(D, "models", "LyCORIS")),
    ("--localizations-dir", "localizations_dir", J(R, "localizations")),
    ("--ui-settings-file", "ui_settings_file", J(D, "config.json")),
    ("--ui-config-file", "ui_config_file", J(D, "ui-config.json")),
    ("--styles-file", "styles_file", (J(D, "styles.csv"), )),
    ("--codeformer-models-path", "codeformer_models_path", J(D, "models", "Codeformer")),
    ("--gfpgan-models-path", "gfpgan_models_path", J(D, "models", "GFPGAN")),
    ("--esrgan-models-path", "esrgan_models_path", J(D, "models", "ESRGAN")),
    ("--bsrgan-models-path", "bsrgan_models_path", J(D, "models", "BSRGAN")),
    ("--realesrgan-models-path", "realesrgan_models_path", J(D, "models", "RealESRGAN")),
    ("--dat-models-path", "dat_models_path", J(D, "models", "DAT")),
    ("--scunet-models-path", "scunet_models_path", J(D, "models", "ScuNET")),
    ("--swinir-models-path", "swinir_models_path", J(D, "models", "SwinIR")),
    ("--ldsr-models-path", "ldsr_models_path", J(D, "models", "LDSR")),
    ("--clip-models-path", "clip_models_path", None),
    ("--gfpgan-dir", "gfpgan_dir", J(R, "GFPGAN")),
    ("--gfpgan-model", "gfpgan_model", None),
    ("--unix-filenames-sanitization", "unix_filenames_sanitization", False),
    ("--filenames-max-length", "filenames_max_length", 128),
    ("--no-prompt-history", "no_prompt_history", False),
    ("--no-download-sd-model", "no_download_sd_model", False),
    ("--do-not-download-clip", "do_not_download_clip", False),
    ("-f", "f", False),
    ("--skip-prepare-environment", "skip_prepare_environment", False),
    ("--skip-install", "skip_install", False),
    ("--skip-python-version-check", "skip_python_version_check", False),
    ("--skip-torch-cuda-test", "skip_torch_cuda_test", False),
    ("--skip-version-check", "skip_version_check", False),
    ("--reinstall-torch", "reinstall_torch", False),
    ("--reinstall-xformers", "reinstall_xformers", False),
    ("--update-check", "update_check", False),
    ("--update-all-extensions", "update_all_extensions", False),
    ("--test-server", "test_server", False),
    ("--dump-sysinfo", "dump_sysinfo", False),
    ("--exit", "exit", False),
    ("--always-batch-cond-uncond", "always_batch_cond_uncond", False),
    ("--gradio-queue", "gradio_queue", True),
    ("--ngrok-region", "ngrok_region", ""),
    ("--enable-console-prompts", "enable_console_prompts", False),
    ("--max-batch-count", "max_batch_count", 16),
    ("--unload-gfpgan", "unload_gfpgan", False),
    ("--deepdanbooru", "deepdanbooru", False),
    ("--show-negative-prompt", "show_negative_prompt", False),
    ("--gradio-img2img-tool", "gradio_img2img_tool", None),
    ("--gradio-inpaint-tool", "gradio_inpaint_tool", None),
    ("--add-stop-route", "add_stop_route", False),
]


def _parse(*argv: str, env: dict[str, str] | None = None):
    return parse_flags(list(argv), env={} if env is None else env, stderr=io.StringIO())


def test_flag_table_covers_every_declared_flag():
    assert sorted(opt for opt, _, _ in A1111_FLAGS) == sorted(spec.option for spec in FLAG_SPECS)


@pytest.mark.parametrize(("option", "attr", "default"), A1111_FLAGS, ids=[row[0] for row in A1111_FLAGS])
def test_every_flag_has_a1111_default(option, attr, default):
    flags = _parse("--data-dir", D)
    value = getattr(flags, attr)
    if isinstance(default, dict):
        assert dict(value) == default
    else:
        assert value == default


def _sample(spec: FlagSpec) -> tuple[list[str], object]:
    """Command-line words for `spec` and the value A1111 would store."""
    if spec.kind == "switch":
        return [spec.option], True
    if spec.kind == "store_false":
        return [spec.option], False
    if spec.kind == "int":
        return [spec.option, "7"], 7
    if spec.kind == "choice":
        return [spec.option, spec.choices[0]], spec.choices[0]
    if spec.kind == "list":
        return [spec.option, "ALL", "Sd"], ("all", "sd")
    if spec.kind == "json":
        return [spec.option, '{"basic_auth": "u:p"}'], {"basic_auth": "u:p"}
    if spec.kind == "path":
        return [spec.option, J(D, "given")], J(D, "given")
    if spec.kind == "append":
        return [spec.option, J(D, "given")], None
    return [spec.option, "some value"], "some value"


@pytest.mark.parametrize("spec", FLAG_SPECS, ids=[s.option for s in FLAG_SPECS])
def test_every_flag_parses_when_given(spec):
    words, expected = _sample(spec)
    flags = _parse(*words)
    value = getattr(flags, spec.dest)
    if spec.kind == "append":
        assert value[-1] == J(D, "given")
    elif spec.kind == "json":
        assert dict(value) == expected
    else:
        assert value == expected
    assert flags.is_set(spec.dest)


def test_equals_and_space_forms_are_the_same():
    assert _parse("--port=8895").port == 8895
    assert _parse("--port", "8895").port == 8895
    assert _parse("--gradio-auth=u:p=q").gradio_auth == "u:p=q"
    assert _parse("--precision=full").precision == "full"


def test_path_flags_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flags = _parse("--ckpt-dir", "ckpts", "--data-dir=data")
    assert flags.ckpt_dir == str(tmp_path / "ckpts")
    assert flags.data_dir == str(tmp_path / "data")
    assert flags.embeddings_dir == str(tmp_path / "data" / "embeddings")


def test_models_dir_moves_model_path_defaults():
    flags = _parse("--data-dir", D, "--models-dir", J(D, "elsewhere"))
    assert flags.lora_dir == J(D, "elsewhere", "Lora")
    assert flags.hypernetwork_dir == J(D, "elsewhere", "hypernetworks")
    assert flags.embeddings_dir == J(D, "embeddings")  # embeddings live in the data dir, not the models dir


def test_repeatable_flags_accumulate():
    flags = _parse("--data-dir", D, "--styles-file", "a.csv", "--styles-file", "b/*.csv",
                   "--gradio-allowed-path", "/x")
    assert flags.styles_file == ("a.csv", "b/*.csv")
    assert flags.gradio_allowed_path == (D, "/x")  # A1111 appends to the default [data_path]


def test_flags_are_immutable():
    flags = _parse("--use-cpu", "all")
    with pytest.raises(AttributeError):
        flags.port = 1
    assert isinstance(flags.use_cpu, tuple)
    with pytest.raises(TypeError):
        flags.ngrok_options["x"] = 1


def test_as_dict_is_json_serialisable():
    data = _parse("--use-cpu", "sd", "--ngrok-options", '{"a": [1]}').as_dict()
    assert json.loads(json.dumps(data))["use_cpu"] == ["sd"]
    assert data["ngrok_options"] == {"a": [1]}


def test_commandline_args_env_is_appended_and_wins():
    env = {"COMMANDLINE_ARGS": "--port 9000 --xformers --gradio-auth 'user:pass word'"}
    flags = _parse("--port", "8000", "--listen", env=env)
    assert flags.port == 9000  # A1111 appends COMMANDLINE_ARGS to sys.argv; argparse keeps the last value
    assert flags.xformers and flags.listen
    assert flags.gradio_auth == "user:pass word"


def test_commandline_args_with_unbalanced_quote_is_a_clear_error():
    with pytest.raises(FlagError) as info:
        _parse(env={"COMMANDLINE_ARGS": "--gradio-auth 'oops"})
    assert "COMMANDLINE_ARGS" in str(info.value)


def test_unknown_flag_suggests_the_closest(capsys):
    with pytest.raises(SystemExit) as info:
        parse_flags(["--lisen"], env={})
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unknown flag --lisen; did you mean --listen?" in err


@pytest.mark.parametrize(("typo", "suggestion"), [("--no_half_vae", "--no-half-vae"), ("--medram", "--medvram"),
                                                  ("--xfromers", "--xformers"), ("--data-dri=x", "--data-dir")])
def test_typos_get_suggestions(typo, suggestion):
    with pytest.raises(FlagError) as info:
        _parse(typo)
    assert f"did you mean {suggestion}?" in str(info.value)


def test_unknown_flags_ignored_with_ignore_cmd_args_errors():
    flags = _parse("--listen", "--not-a-flag", env={"IGNORE_CMD_ARGS_ERRORS": "1"})
    assert flags.listen


def test_bad_values_are_one_line_errors():
    for argv, needle in ((["--port", "abc"], "--port"), (["--precision", "double"], "invalid choice"),
                         (["--ngrok-options", "{bad"], "not valid JSON")):
        with pytest.raises(FlagError) as info:
            _parse(*argv)
        assert needle in str(info.value) and "\n" not in str(info.value)


def test_help_lists_flags_by_group(capsys):
    with pytest.raises(SystemExit) as info:
        parse_flags(["--help"], env={})
    assert info.value.code == 0
    out = capsys.readouterr().out
    titles = ["server / network / security", "device / precision / memory / attention", "paths", "launcher-only",
              "legacy (accepted, no effect)"]
    positions = [out.index(title + ":") for title in titles]
    assert positions == sorted(positions)
    assert out.index("--listen") < positions[1] < out.index("--medvram") < positions[2] < out.index("--ckpt-dir")
    assert out.index("--skip-install") > positions[3]
    assert out == help_text()


def test_extension_flags_are_reachable_as_attributes():
    extra = [FlagSpec("--my-ext-dir", "path", None, "an extension's directory", "extensions")]
    flags = parse_flags(["--my-ext-dir", "/x"], env={}, extra_specs=extra)
    assert flags.my_ext_dir == os.path.abspath("/x")
    assert "extensions:" in help_text(extra)
    with pytest.raises(FlagError, match="declared twice"):
        parse_flags([], env={}, extra_specs=[FlagSpec("--listen", "switch", False, "again", "x")], stderr=io.StringIO())


# --- warnings -------------------------------------------------------------------------------------------------------

def test_no_warnings_for_defaults():
    assert flag_warnings(_parse(), cuda_available=False, xformers_available=False) == []


def test_gpu_only_flags_warn_on_cpu():
    flags = _parse("--xformers", "--medvram", "--lowvram", "--device-id", "1")
    text = "\n".join(flag_warnings(flags, cuda_available=False, xformers_available=True))
    for flag in ("--xformers", "--medvram", "--lowvram", "--device-id"):
        assert flag in text
    assert flag_warnings(flags, cuda_available=True, xformers_available=True) == [
        "--medvram has no effect together with --lowvram (--lowvram wins)"]


def test_xformers_missing_package_warns_with_cuda():
    warnings = flag_warnings(_parse("--xformers"), cuda_available=True, xformers_available=False)
    assert len(warnings) == 1 and "not installed" in warnings[0]


def test_share_without_auth_warns_about_public_exposure():
    warnings = flag_warnings(_parse("--share"), cuda_available=True, xformers_available=True)
    assert any("--share" in w and "public" in w for w in warnings)
    assert flag_warnings(_parse("--share", "--gradio-auth", "u:p"), True, True) == []


def test_exposure_and_tls_and_mode_warnings():
    warnings = flag_warnings(_parse("--listen", "--api", "--allow-code", "--tls-keyfile", "k.pem",
                                    "--timeout-keep-alive", "5"), True, True)
    text = "\n".join(warnings)
    assert "--listen" in text and "--api-auth" in text and "--allow-code" in text
    assert "--tls-keyfile has no effect without --tls-certfile" in text
    assert "--timeout-keep-alive has no effect without --nowebui" in text


def test_legacy_flags_warn_only_when_given_and_each_warning_once():
    warnings = flag_warnings(_parse("--deepdanbooru", "--max-batch-count", "3", "--xformers", "--xformers"),
                             cuda_available=False, xformers_available=False)
    assert sum("--deepdanbooru" in w for w in warnings) == 1
    assert sum("--max-batch-count" in w for w in warnings) == 1
    assert len(warnings) == len(set(warnings))
    assert not any("--gradio-queue" in w for w in warnings)


def test_use_cpu_unknown_module_warns():
    warnings = flag_warnings(_parse("--use-cpu", "all", "vae"), cuda_available=True, xformers_available=True)
    assert warnings == [w for w in warnings if "vae" in w] and len(warnings) == 1


# --- paths and server helpers ---------------------------------------------------------------------------------------

def test_paths_follow_data_dir(tmp_path):
    from modules.cli.paths import resolve_paths

    data = tmp_path / "data"
    paths = resolve_paths(_parse("--data-dir", str(data)))
    assert paths.data_dir == data
    assert paths.models_dir == data / "models"
    assert paths.settings_file == data / "config.json"
    assert paths.ui_config_file == data / "ui-config.json"
    assert paths.styles_files == (str(data / "styles.csv"),)
    assert paths.checkpoint_dirs == (data / "models" / "Stable-diffusion",)
    assert paths.vae_dirs == (data / "models" / "VAE",)
    assert paths.lora_dir == data / "models" / "Lora"
    assert paths.embeddings_dir == data / "embeddings"
    assert paths.hypernetwork_dir == data / "models" / "hypernetworks"
    assert paths.extensions_dir == data / "extensions"
    assert paths.outputs_dir == data / "outputs"
    assert paths.params_file == data / "params.txt"
    assert paths.upscaler_dirs["ESRGAN"] == data / "models" / "ESRGAN"
    assert paths.extensions_builtin_dir == INSTALL_ROOT / "extensions-builtin"
    with pytest.raises(AttributeError):
        paths.data_dir = tmp_path


def test_paths_explicit_dirs_and_flags(tmp_path):
    from modules.cli.paths import resolve_paths

    paths = resolve_paths(_parse("--data-dir", str(tmp_path), "--ckpt-dir", str(tmp_path / "ck"),
                                 "--vae-dir", str(tmp_path / "v"), "--lora-dir", str(tmp_path / "l"),
                                 "--ui-settings-file", str(tmp_path / "cfg.json"), "--no-prompt-history",
                                 "--models-dir", str(tmp_path / "m")),
                          env={"SD_WEBUI_CACHE_FILE": str(tmp_path / "c.json")})
    assert paths.checkpoint_dirs == (tmp_path / "m" / "Stable-diffusion", tmp_path / "ck")  # both are scanned
    assert paths.vae_dirs == (tmp_path / "m" / "VAE", tmp_path / "v")
    assert paths.lora_dir == tmp_path / "l"
    assert paths.settings_file == tmp_path / "cfg.json"
    assert paths.params_file is None
    assert paths.cache_file == tmp_path / "c.json"


def test_output_dir_defaults_follow_data_dir(tmp_path):
    from modules.cli.paths import resolve_paths

    inside = resolve_paths(_parse("--data-dir", R)).setting_default_overrides()
    assert inside["outdir_txt2img_samples"] == "outputs/txt2img-images"  # A1111 shows it relative to the root
    assert inside["outdir_save"] == "log/images"
    flags = _parse("--data-dir", str(tmp_path), "--enable-console-prompts")
    paths = resolve_paths(flags)
    outside = paths.setting_default_overrides(flags)
    assert outside["outdir_img2img_grids"] == str(tmp_path / "outputs" / "img2img-grids")
    assert outside["enable_console_prompts"] is True
    assert paths.resolve_user_path("outputs/x") == INSTALL_ROOT / "outputs" / "x"
    assert paths.resolve_user_path(str(tmp_path)) == tmp_path


def test_server_name_port_and_credentials(tmp_path):
    from modules.cli.server import AuthFormatError, server_name, server_port, ui_credentials

    assert (server_name(_parse()), server_port(_parse())) == ("127.0.0.1", 7860)
    assert (server_name(_parse("--listen")), server_port(_parse("--nowebui"))) == ("0.0.0.0", 7861)
    assert server_name(_parse("--listen", "--server-name", "box")) == "box"
    auth_file = tmp_path / "auth.txt"
    auth_file.write_text("c:3\n\nd:4:x, e:5\n", encoding="utf8")
    flags = _parse("--gradio-auth", "a:1,b:pa:ss", "--gradio-auth-path", str(auth_file))
    assert ui_credentials(flags) == [("a", "1"), ("b", "pa:ss"), ("c", "3"), ("d", "4:x"), ("e", "5")]
    with pytest.raises(AuthFormatError, match="'nopassword'"):
        ui_credentials(_parse("--gradio-auth", "nopassword"))


def test_disable_tls_verify_says_it_has_no_effect():
    warnings = flag_warnings(_parse("--disable-tls-verify"), cuda_available=True, xformers_available=True)
    assert any("--disable-tls-verify has no effect" in w for w in warnings)
    assert not any("disable-tls-verify" in w for w in flag_warnings(_parse(), cuda_available=True,
                                                                     xformers_available=True))
