#!/usr/bin/env bash
# Servers the end-to-end tests start (and stop) on localhost, from Debian's packages:
# docker-registry, the CNCF distribution registry (tests/e2e/oci.rs). The MLflow tracking
# server comes from PyPI with the venv (requirements.txt).
set -euo pipefail
if [ ! -x /usr/bin/docker-registry ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends docker-registry
fi
