# Shared helpers for scripts/run and scripts/test. Source, don't execute.

# Print the path of a Python >= 3.12, or explain what to install and fail.
find_python() {
  local candidates=("${NEXUS_PYTHON:-}" python3.13 python3.12 python3)
  local dir
  for dir in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]* /usr/local /usr; do
    [ -d "$dir" ] && candidates+=("$dir/bin/python3" "$dir/python3.13" "$dir/python3.12")
  done
  local candidate
  for candidate in "${candidates[@]}"; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' \
        >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "Nexus needs Python 3.12 or newer (Django 6.1). None was found." >&2
  echo "Install it (Debian: apt-get install python3.12 python3.12-venv, or" >&2
  echo "pyenv install 3.12) or point NEXUS_PYTHON at one." >&2
  return 1
}

# Create .venv if needed and install the given requirements file when it changed.
ensure_venv() {
  local requirements=$1
  if [ ! -x .venv/bin/python ] || \
      ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    local python
    python=$(find_python) || exit 1
    echo "Creating .venv with $("$python" --version)"
    rm -rf .venv
    "$python" -m venv .venv
  fi
  local stamp=".venv/.installed-$(basename "$requirements")"
  local digest
  digest=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
    echo "Installing $requirements into .venv ..."
    # Hide the harmless "Location ... is ignored" notes some pip configs print.
    .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v 'is ignored' || true
    .venv/bin/python -m pip install --quiet -r "$requirements" 2> >(grep -v 'is ignored' >&2)
    echo "$digest" > "$stamp"
  fi
}

# Compile routing/pipeline with mypyc when its sources changed since the last
# build (routing/pipeline_build.py; about a minute, once).
ensure_pipeline_build() {
  # NEXUS_PIPELINE=python: the build being replaced is not loaded (nor warned about).
  NEXUS_PIPELINE=python .venv/bin/python -m routing.dev.compile_pipeline --if-stale
}
