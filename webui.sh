#!/usr/bin/env bash
#################################################################################
# Start the web UI on Linux/macOS (A1111's webui.sh behaviour):
#   - reads settings from webui-user.sh next to this file (COMMANDLINE_ARGS, VENV_DIR, PYTHON, ...);
#   - refuses to run as root unless -f is given (the flag is also accepted by launch.py);
#   - creates the virtual environment VENV_DIR (default: venv; "-" = no venv, use PYTHON as it is);
#   - on Linux preloads TCMalloc when available (set NO_TCMALLOC=1 to skip);
#   - runs launch.py and starts it again while the restart marker tmp/restart exists.
# Every path is quoted: installs under folders with spaces or non-ASCII names work.
#################################################################################

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"

if [[ -f "$SCRIPT_DIR/webui-user.sh" ]]; then
    # shellcheck source=webui-user.sh
    source "$SCRIPT_DIR/webui-user.sh"
fi

can_run_as_root=0
for arg in "$@"; do
    if [[ "$arg" == "-f" ]]; then
        can_run_as_root=1
    fi
done

delimiter="################################################################"

fail() {
    printf "\n%s\n\e[1m\e[31mERROR: %s\e[0m\n%s\n" "$delimiter" "$1" "$delimiter" >&2
    exit 1
}

printf "\n%s\n\e[1m\e[32mStable Diffusion web UI\e[0m\n%s\n" "$delimiter" "$delimiter"

if [[ $(id -u) -eq 0 && $can_run_as_root -eq 0 ]]; then
    fail "This script must not be launched as root, aborting... (add -f to allow it, e.g. in a container)"
fi

if [[ "$(getconf LONG_BIT 2>/dev/null)" == "32" ]]; then
    fail "Unsupported: running on a 32-bit OS; torch needs a 64-bit system"
fi

cd "$SCRIPT_DIR" || fail "cannot enter $SCRIPT_DIR"

# A1111's webui-user.sh names are lower case (venv_dir, python_cmd); the upper-case ones win when both are set.
VENV_DIR="${VENV_DIR:-${venv_dir:-venv}}"
LAUNCH_SCRIPT="${LAUNCH_SCRIPT:-launch.py}"
export ERROR_REPORTING=FALSE
export PIP_IGNORE_INSTALLED=0

python_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 10) else 1)' >/dev/null 2>&1
}

PYTHON="${PYTHON:-${python_cmd:-}}"
if [[ -n "$PYTHON" ]]; then
    if ! "$PYTHON" -c 'import sys' >/dev/null 2>&1; then
        fail "PYTHON is set to \"$PYTHON\", which cannot be run; fix PYTHON in webui-user.sh"
    fi
    if ! python_ok "$PYTHON"; then
        fail "\"$PYTHON\" is $("$PYTHON" -c 'import sys; print(sys.version.split()[0])'); Python 3.10 or newer is needed"
    fi
else
    for candidate in python3.12 python3.11 python3.10 python3.13 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            PYTHON="$candidate"
            break
        fi
    done
    if [[ -z "$PYTHON" ]]; then
        fail "Python 3.10 or newer was not found; install it (Debian/Ubuntu: sudo apt install python3 python3-venv) or set PYTHON in webui-user.sh"
    fi
fi

if [[ "$VENV_DIR" == "-" ]]; then
    python_exec="$PYTHON"
    printf "Not using a virtual environment (VENV_DIR=-): %s\n" "$PYTHON"
else
    if [[ "$VENV_DIR" != /* ]]; then
        VENV_DIR="$SCRIPT_DIR/$VENV_DIR"
    fi
    if [[ ! -x "$VENV_DIR/bin/python" ]]; then
        printf "Creating the virtual environment %s\n" "$VENV_DIR"
        if ! "$PYTHON" -m venv "$VENV_DIR"; then
            fail "Cannot create a virtual environment in \"$VENV_DIR\" with $PYTHON (Debian/Ubuntu: sudo apt install python3-venv)"
        fi
        "$VENV_DIR/bin/python" -m pip install --upgrade pip || printf "Warning: could not upgrade pip; continuing\n" >&2
    fi
    export VIRTUAL_ENV="$VENV_DIR"
    export PATH="$VENV_DIR/bin:$PATH"
    unset PYTHONHOME
    python_exec="$VENV_DIR/bin/python"
fi

# TCMalloc lowers memory fragmentation while loading large checkpoints (A1111 preloads it on Linux).
if [[ "$(uname -s)" == "Linux" && -z "${NO_TCMALLOC:-}" && "${LD_PRELOAD:-}" != *tcmalloc* ]]; then
    TCMALLOC="$(PATH="/sbin:/usr/sbin:$PATH" ldconfig -p 2>/dev/null \
        | awk '/libtcmalloc(_minimal)?\.so\.[0-9]+ /{print $NF; exit}')"
    if [[ -n "$TCMALLOC" ]]; then
        printf "Using TCMalloc: %s\n" "$TCMALLOC"
        export LD_PRELOAD="${TCMALLOC}${LD_PRELOAD:+:$LD_PRELOAD}"
    fi
fi

# The UI asks for a full restart by writing this file and exiting; SD_WEBUI_RESTART tells it that restarts work.
export SD_WEBUI_RESTART=tmp/restart
status=0
while true; do
    printf "Launching %s\n" "$LAUNCH_SCRIPT"
    "$python_exec" -u "$LAUNCH_SCRIPT" "$@"
    status=$?
    if [[ ! -f "$SCRIPT_DIR/tmp/restart" ]]; then
        break
    fi
    printf "Restarting...\n"
done
exit $status
