#!/usr/bin/env bash
# Installs what the end-to-end tests (tests/e2e/, tests/deploy/) need: the official `openai` npm
# client, ajv, ajv-formats, @langchain/openai, @langchain/core, kubernetes-models and yaml, into tests/node_modules (git-ignored), and
# from Debian tmux (the `inferd chat` terminal test) and chromium (the chat page test, headless). Cached: does nothing when all of it is there.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install-e2e-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm packages, pinned: the openai client (e2e tests), ajv and ajv-formats (the structured-output
# test validates outputs against their JSON Schemas), LangChain.js's OpenAIEmbeddings
# (@langchain/openai with its peer @langchain/core: the embeddings test), and for the deployment
# kit's test (tests/deploy) the Kubernetes schemas (kubernetes-models) and a YAML parser. One npm
# install for all of them (an install of some would prune the others).
NPM_PACKAGES=(
  openai@6.30.1            # the newest major that runs on Node 20 (7.x needs Node 22)
  ajv@8.20.0
  ajv-formats@3.0.1
  kubernetes-models@5.1.0
  yaml@2.9.1
  @langchain/openai@1.3.1  # the newest that runs on Node 20 with openai 6.x (1.4 wants openai 6.32)
  @langchain/core@1.1.39
)
have_all=1
for spec in "${NPM_PACKAGES[@]}"; do
  name=${spec%@*} version=${spec##*@}
  if ! [ -f "tests/node_modules/$name/package.json" ] ||
    ! grep -q "\"version\": \"$version\"" "tests/node_modules/$name/package.json"; then
    have_all=0
  fi
done
if [ $have_all -eq 1 ]; then exit 0; fi
npm install --prefix tests --no-save --no-package-lock --no-audit --no-fund --ignore-scripts \
  --loglevel=error "${NPM_PACKAGES[@]}"
echo "install-e2e-deps: ${NPM_PACKAGES[*]}"
