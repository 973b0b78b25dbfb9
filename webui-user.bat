@echo off
rem Your settings for webui.bat. Examples:
rem   set PYTHON=C:\Users\me\AppData\Local\Programs\Python\Python311\python.exe
rem   set VENV_DIR=-                         (no venv: use PYTHON with its own packages)
rem   set COMMANDLINE_ARGS=--medvram --api --listen
rem   set INDEX_URL=https://pypi.tuna.tsinghua.edu.cn/simple      (pip mirror)
rem   set HF_ENDPOINT=https://hf-mirror.com                       (checkpoint download mirror)
rem   set https_proxy=http://127.0.0.1:7890
rem   set TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130  (CUDA build of torch; the default on Windows)

set PYTHON=
set GIT=
set VENV_DIR=
set COMMANDLINE_ARGS=

call "%~dp0webui.bat" %*
