"""Where the script is in a launcher's command line, and how to run it under ``provenance.launch``.

A launcher (torchrun, ``accelerate launch``, deepspeed) reads its own options, then a script (or a
module, or a program), then the script's arguments. Finding the script needs to know which of
its options take a value: ``--nnodes 2 x.py`` and ``--standalone x.py`` differ only in that. Each
launcher's table is its real argument parser's, read from the parser when the launcher is
importable and otherwise written down here from the version named beside it.
"""

from __future__ import annotations

import argparse
import importlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from provenance.launch import MODULE

PYTHON = re.compile(r"python(\d+(\.\d+)*)?")  # what a Python interpreter's program is named


@dataclass(frozen=True)
class Launcher:
    """The options of a launcher that takes ``[options] SCRIPT ARGS...``."""

    name: str
    valued: frozenset[str]  # the options that take a value
    flags: frozenset[str]  # the options that take none
    module: frozenset[str]  # the flags that make the script a module
    program: frozenset[str]  # the flags that make it a program run as it is
    refused: frozenset[str] = frozenset()  # flags under which no rank runs a command of ours
    add_module: str = "-m"  # how to say "a module" where the user gave a script
    abbrev: bool = True  # argparse's allow_abbrev: a unique prefix of a long option is it
    subcommand: tuple[str, ...] = ()  # the words between the program and its options


def _both(*names: str) -> frozenset[str]:
    """Each name with ``_`` and with ``-`` after the leading dashes, as these launchers accept."""
    return frozenset(
        spelled for name in names for spelled in (name, "--" + name[2:].replace("_", "-"))
    )


# torch.distributed.run.get_args_parser as pytorch's source has it at commit 010929fd (2025);
# torchrun is its console script. Older versions have fewer options, under the same names.
TORCHRUN = Launcher(
    "torchrun",
    valued=_both(
        "--nnodes", "--nproc_per_node", "--rdzv_backend", "--rdzv_endpoint", "--rdzv_id",
        "--rdzv_conf", "--max_restarts", "--monitor_interval", "--start_method",
        "--event_log_handler", "--role", "--log_dir", "--redirects", "--tee",
        "--local_ranks_filter", "--node_rank", "--master_addr", "--master_port", "--local_addr",
        "--logs_specs", "--numa_binding", "--signals_to_handle",
    ) | {"-r", "-t"},
    flags=_both("--standalone", "--module", "--no_python", "--run_path", "--help") | {"-m", "-h"},
    module=frozenset({"-m", "--module"}),
    program=_both("--no_python"),
    # --run-path runs the script in torchrun's own worker process, not a command of ours.
    refused=_both("--run_path"),
)  # fmt: skip

# accelerate.commands.launch.launch_command_parser, accelerate 1.16.0. Its parser takes each
# option with ``_`` or ``-`` and no abbreviation (allow_abbrev=False).
ACCELERATE = Launcher(
    "accelerate launch",
    valued=_both(
        "--aws_access_key_id", "--aws_secret_access_key", "--config_file",
        "--deepspeed_config_file", "--deepspeed_exclusion_filter", "--deepspeed_hostfile",
        "--deepspeed_inclusion_filter", "--deepspeed_moe_layer_cls_names",
        "--deepspeed_multinode_launcher", "--dynamo_backend", "--dynamo_mode", "--env",
        "--fp8_amax_compute_algo", "--fp8_amax_history_len", "--fp8_backend",
        "--fp8_enable_fsdp_float8_all_gather", "--fp8_format", "--fp8_interval", "--fp8_margin",
        "--fp8_override_linear_precision", "--fp8_pad_inner_dim", "--fsdp_activation_checkpointing",
        "--fsdp_activation_checkpointing_offload", "--fsdp_auto_wrap_policy",
        "--fsdp_backward_prefetch", "--fsdp_cpu_ram_efficient_loading", "--fsdp_forward_prefetch",
        "--fsdp_min_num_params", "--fsdp_offload_params", "--fsdp_reshard_after_forward",
        "--fsdp_sharding_strategy", "--fsdp_state_dict_type", "--fsdp_sync_module_states",
        "--fsdp_transformer_layer_cls_to_wrap", "--fsdp_use_orig_params", "--fsdp_version",
        "--gpu_ids", "--gradient_accumulation_steps", "--gradient_clipping", "--log_dir",
        "--machine_rank", "--main_process_ip", "--main_process_port", "--main_training_function",
        "--max_restarts", "--megatron_lm_attention_backend", "--megatron_lm_attention_dropout",
        "--megatron_lm_attention_softmax_in_fp32", "--megatron_lm_calculate_per_token_loss",
        "--megatron_lm_context_parallel_size", "--megatron_lm_decoder_last_pipeline_num_layers",
        "--megatron_lm_eod_mask_loss", "--megatron_lm_expert_model_parallel_size",
        "--megatron_lm_expert_tensor_parallel_size", "--megatron_lm_gradient_clipping",
        "--megatron_lm_hidden_dropout", "--megatron_lm_no_load_optim",
        "--megatron_lm_no_save_optim", "--megatron_lm_num_micro_batches",
        "--megatron_lm_optimizer_cpu_offload", "--megatron_lm_overlap_cpu_optimizer_d2h_h2d",
        "--megatron_lm_pp_degree", "--megatron_lm_recompute_activations",
        "--megatron_lm_recompute_granularity", "--megatron_lm_recompute_method",
        "--megatron_lm_recompute_num_layers", "--megatron_lm_sequence_parallelism",
        "--megatron_lm_tp_degree", "--megatron_lm_use_custom_fsdp",
        "--megatron_lm_use_distributed_optimizer", "--megatron_lm_use_precision_aware_optimizer",
        "--megatron_lm_use_rotary_position_embeddings", "--mixed_precision",
        "--monitor_interval", "--mpirun_hostfile", "--num_cpu_threads_per_process",
        "--num_machines", "--num_processes", "--offload_optimizer_device",
        "--offload_optimizer_nvme_path", "--offload_param_device", "--offload_param_nvme_path",
        "--parallelism_config_cp_backend", "--parallelism_config_cp_comm_strategy",
        "--parallelism_config_cp_size", "--parallelism_config_dp_replicate_size",
        "--parallelism_config_dp_shard_size", "--parallelism_config_sp_attn_implementation",
        "--parallelism_config_sp_backend", "--parallelism_config_sp_seq_length",
        "--parallelism_config_sp_seq_length_is_variable", "--parallelism_config_sp_size",
        "--parallelism_config_tp_size", "--rdzv_backend", "--rdzv_conf", "--role", "--tee",
        "--vm", "--zero3_init_flag", "--zero3_save_16bit_model", "--zero_stage",
    ) | {"-t"},
    flags=_both(
        "--cpu", "--debug", "--downcast_bf16", "--dynamo_use_dynamic", "--dynamo_use_fullgraph",
        "--dynamo_use_regional_compilation", "--enable_cpu_affinity",
        "--fp8_use_autocast_during_eval", "--help", "--module", "--multi_gpu", "--no_python",
        "--no_tpu_cluster", "--quiet", "--same_network", "--tpu", "--tpu_cluster",
        "--tpu_use_sudo", "--use_deepspeed", "--use_fsdp", "--use_megatron_lm",
        "--use_parallelism_config",
    ) | {"-h", "-m", "-q"},
    module=frozenset({"-m", "--module"}),
    program=_both("--no_python"),
    abbrev=False,
    subcommand=("launch",),
)  # fmt: skip

# deepspeed.launcher.runner.parse_args, deepspeed 0.19.8 (the ``deepspeed`` script). Its module
# flag has no short form, and its options only the spelling given (``--num_gpus``).
DEEPSPEED = Launcher(
    "deepspeed",
    valued=frozenset({
        "-H", "--hostfile", "-i", "--include", "-e", "--exclude", "--num_nodes", "--num_gpus",
        "--num_accelerators", "--master_port", "--master_addr", "--node_rank", "--launcher",
        "--launcher_args", "--enable_each_rank_log", "--autotuning", "--bind_core_list",
        "--ssh_port", "--venv_script", "--log_level",
    }),
    flags=frozenset({
        "-h", "--help", "--module", "--no_python", "--no_local_rank", "--no_ssh",
        "--no_ssh_check", "--force_multi", "--save_pid", "--bind_cores_to_rank", "-q", "--quiet",
    }),
    module=frozenset({"--module"}),
    program=frozenset({"--no_python"}),
    add_module="--module",
)  # fmt: skip

# The launcher a program name stands for (``accelerate`` only with its ``launch`` command).
BY_PROGRAM = {"torchrun": TORCHRUN, "deepspeed": DEEPSPEED, "accelerate": ACCELERATE}
# The launcher a module run by ``python -m`` stands for.
BY_MODULE = {"torch.distributed.run": TORCHRUN}
# Where the real parser is, when the launcher is importable here.
_PARSERS = {
    "torchrun": ("torch.distributed.run", "get_args_parser"),
    "accelerate launch": ("accelerate.commands.launch", "launch_command_parser"),
}


def options_of(launcher: Launcher) -> Launcher:
    """``launcher`` with its options read from its real parser where that can be imported."""
    where = _PARSERS.get(launcher.name)
    if where is None:
        return launcher
    try:
        parser = getattr(importlib.import_module(where[0]), where[1])()
        actions: Iterable[argparse.Action] = parser._actions
    except Exception:  # noqa: BLE001 -- not installed or broken: the table written here holds
        return launcher
    valued = {s for a in actions if a.nargs != 0 for s in a.option_strings}
    flags = {s for a in actions if a.nargs == 0 for s in a.option_strings}
    if not valued and not flags:
        return launcher
    return Launcher(
        launcher.name,
        frozenset(valued),
        frozenset(flags),
        launcher.module,
        launcher.program,
        launcher.refused,
        launcher.add_module,
        bool(getattr(parser, "allow_abbrev", True)),
        launcher.subcommand,
    )


def rewrite(
    launcher: Launcher,
    words: Sequence[str],
    as_python: Callable[[str], tuple[list[str], str] | None],
) -> list[str] | None:
    """``words`` (what follows the launcher's name) with the script put under
    ``provenance.launch``, every option of the launcher kept as it was; None where the command
    cannot be read or runs nothing of Python that can be recorded from inside.

    ``as_python`` gives, for a program run as it is (``--no-python``), the interpreter its ``#!``
    names (as words) and the file, or None when it is not a Python script.
    """
    found = _script_at(launcher, words)
    if found is None:
        return None
    at, given = found
    if given & launcher.refused or at >= len(words):
        return None
    module, program = bool(given & launcher.module), bool(given & launcher.program)
    script, rest = words[at], list(words[at + 1 :])
    if module and program:
        return None  # the launcher refuses it too
    if program:
        found_python = as_python(script)
        if found_python is None:
            return None
        interpreter, path = found_python
        return [*words[:at], *interpreter, "-m", MODULE, path, *rest]
    if module:
        return [*words[:at], MODULE, "-m", script, *rest]
    return [*words[:at], launcher.add_module, MODULE, script, *rest]


def _script_at(launcher: Launcher, words: Sequence[str]) -> tuple[int, set[str]] | None:
    """Where the script is in ``words`` and the flags given before it (by their full name);
    None when an option is not the launcher's, so where the script is cannot be told."""
    given: set[str] = set()
    at = 0
    while at < len(words):
        word = words[at]
        if word == "--":
            return at + 1, given
        if word.startswith("--"):
            name, is_set, _ = word.partition("=")
            option = _long(launcher, name)
            if option is None:
                return None
            if option in launcher.flags:
                if is_set:
                    return None  # argparse refuses a value given to a flag
                given.add(option)
            elif not is_set:
                at += 1  # the value is the next word
        elif word.startswith("-") and len(word) > 1:
            for place, letter in enumerate(word[1:], 1):
                option = "-" + letter
                if option in launcher.valued:
                    at += 0 if word[place + 1 :] else 1  # -r3 or -r 3
                    break
                if option not in launcher.flags:
                    return None
                given.add(option)
        else:
            return at, given
        at += 1
    return None


def _long(launcher: Launcher, name: str) -> str | None:
    """The long option ``name`` stands for, as the launcher's argparse reads it."""
    known = launcher.valued | launcher.flags
    if name in known:
        return name
    if not launcher.abbrev:
        return None
    matches = {option for option in known if option.startswith(name)}
    return matches.pop() if len(matches) == 1 else None
