#!/usr/bin/env bash
# The iceml demo: installs what is missing, builds, starts the embedded demo
# cluster (it stays up afterwards: `make psql` to explore, `make stop` to stop)
# and runs test/harness/demo.sql in database iceml.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
h=test/harness
"$h/deps.sh"
"$h/cluster.sh" install
"$h/cluster.sh" start demo
eval "$("$h/cluster.sh" env demo)"
psql -X -v ON_ERROR_STOP=1 -d iceml -f "$h/demo.sql"
echo
echo "iceml demo done. The demo cluster is still running: 'make psql' opens psql on it, 'make stop' stops it."
