#!/usr/bin/env bash
# Installs what the end-to-end tests (tests/e2e/, tests/deploy/) need: the official `openai` and
# `@anthropic-ai/sdk` npm clients, ajv, ajv-formats, kubernetes-models, yaml and LangChain.js's
# OpenAI models (ChatOpenAI, OpenAIEmbeddings), into tests/node_modules (git-ignored), and from Debian tmux (the `inferd chat`
# terminal test) and chromium (the chat page test, headless). Cached: does nothing when all of it
# is there.
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

# npm packages, pinned: the openai client (e2e tests), the Anthropic client (the messages suite), ajv and ajv-formats (the structured-output
# test validates outputs against their JSON Schemas), and for the deployment kit's test
# (tests/deploy) the Kubernetes schemas (kubernetes-models) and a YAML parser, and LangChain.js's
# ChatOpenAI and OpenAIEmbeddings (@langchain/openai, @langchain/core) for the Responses API and
# embeddings tests. One npm install for
# all of them (an install of some would prune the others).
NPM_PACKAGES=(
  openai@6.30.1            # the newest major that runs on Node 20 (7.x needs Node 22)
  @anthropic-ai/sdk@1.17.0 # the Messages API's official client (e2e messages suite)
  ajv@8.20.0
  ajv-formats@3.0.1
  kubernetes-models@5.1.0
  yaml@2.9.1
  @langchain/openai@1.3.1  # ChatOpenAI with useResponsesApi; the newest on Node 20 whose openai is 6.30.1
  @langchain/core@1.1.49
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
