#!/usr/bin/env bash
#########################################################
# Your settings for webui.sh (sourced by it; edit here, not in webui.sh).
# Uncomment a line to use it. Values set in the environment are used when the line stays commented.
#########################################################

# Flags for the web UI, exactly as with A1111, e.g. "--listen --port 7861 --api --medvram"
#export COMMANDLINE_ARGS=""

# Python used to create the venv (default: the newest of python3.12, 3.11, 3.10, 3.13, python3 that is >= 3.10).
# A1111's name python_cmd works too.
#export PYTHON="python3.11"

# Virtual environment folder (default: venv next to webui.sh). "-" = no venv: use PYTHON with its own packages.
# A1111's name venv_dir works too.
#export VENV_DIR="venv"

# git executable used for version info and extension updates
#export GIT="git"

# Script started by webui.sh
#export LAUNCH_SCRIPT="launch.py"

# Command that installs torch (run as: python -m $TORCH_COMMAND); default: the torch pins of requirements.txt.
# TORCH_INDEX_URL adds a wheel index, e.g. https://download.pytorch.org/whl/cpu for a CPU-only machine.
#export TORCH_COMMAND="pip install torch torchvision --extra-index-url https://download.pytorch.org/whl/cu130"
#export TORCH_INDEX_URL=""

# Requirements file installed by launch.py when something in it is missing (default: requirements.txt)
#export REQS_FILE="requirements.txt"

# pip mirror, e.g. in China: https://pypi.tuna.tsinghua.edu.cn/simple
#export INDEX_URL=""

# Mirror for the first-start checkpoint download from Hugging Face, e.g. in China: https://hf-mirror.com
#export HF_ENDPOINT="https://hf-mirror.com"

# Proxy for downloads (pip and the checkpoint download both honour these)
#export https_proxy="http://127.0.0.1:7890"
#export http_proxy="http://127.0.0.1:7890"

# Do not preload TCMalloc on Linux
#export NO_TCMALLOC="True"

###########################################
