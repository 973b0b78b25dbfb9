@echo off
rem ###########################################################################
rem Start the web UI on Windows (A1111's webui.bat behaviour). Settings go in webui-user.bat.
rem   PYTHON       python to create the venv with (default: python); quotes are optional
rem   VENV_DIR     venv folder (default: venv next to this file); "-" = no venv
rem   COMMANDLINE_ARGS, TORCH_COMMAND, REQS_FILE, INDEX_URL, HF_ENDPOINT: read by launch.py
rem Runs launch.py and starts it again while the restart marker tmp\restart exists.
rem Paths are always quoted, so folders with spaces, parentheses or non-ASCII names work.
rem ###########################################################################
setlocal EnableExtensions
cd /d "%~dp0"

if exist "%~dp0webui.settings.bat" call "%~dp0webui.settings.bat"

if not defined PYTHON set "PYTHON=python"
set "PYTHON=%PYTHON:"=%"
if not defined VENV_DIR set "VENV_DIR=%~dp0venv"
set "VENV_DIR=%VENV_DIR:"=%"
if not defined LAUNCH_SCRIPT set "LAUNCH_SCRIPT=launch.py"
if defined GIT set "GIT_PYTHON_GIT_EXECUTABLE=%GIT%"
set "SD_WEBUI_RESTART=tmp/restart"
set "ERROR_REPORTING=FALSE"
if not exist "%~dp0tmp" mkdir "%~dp0tmp"

"%PYTHON%" -c "import sys; sys.exit(0 if sys.version_info[:2] >= (3, 10) else 1)" >"%~dp0tmp\stdout.txt" 2>"%~dp0tmp\stderr.txt"
if errorlevel 1 goto :no_python

if "%VENV_DIR%"=="-" goto :launch
if exist "%VENV_DIR%\Scripts\python.exe" goto :activate_venv

echo Creating the virtual environment "%VENV_DIR%"
"%PYTHON%" -m venv "%VENV_DIR%" >"%~dp0tmp\stdout.txt" 2>"%~dp0tmp\stderr.txt"
if errorlevel 1 goto :no_venv
"%VENV_DIR%\Scripts\python.exe" -m pip install --upgrade pip
if errorlevel 1 echo Warning: could not upgrade pip; continuing

:activate_venv
set "PYTHON=%VENV_DIR%\Scripts\python.exe"
call "%VENV_DIR%\Scripts\activate.bat"
echo venv "%PYTHON%"

:launch
"%PYTHON%" "%LAUNCH_SCRIPT%" %*
set "STATUS=%ERRORLEVEL%"
if exist "%~dp0tmp\restart" goto :launch
if not "%STATUS%"=="0" pause
exit /b %STATUS%

:no_python
echo.
echo Could not run Python 3.10 or newer as "%PYTHON%".
echo Install Python 3.10-3.13 from https://www.python.org (tick "Add Python to PATH"),
echo or set PYTHON in webui-user.bat to the full path of python.exe.
goto :show_stdout_stderr

:no_venv
echo.
echo Unable to create the virtual environment in "%VENV_DIR%".
goto :show_stdout_stderr

:show_stdout_stderr
echo.
echo stdout:
type "%~dp0tmp\stdout.txt"
echo.
echo stderr:
type "%~dp0tmp\stderr.txt"
echo.
echo Launch unsuccessful. Exiting.
pause
exit /b 1
