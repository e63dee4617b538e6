#!/usr/bin/env bash
# The iceml demo: installs what is missing, builds, starts the embedded demo
# cluster (it stays up afterwards: `make psql` to explore, `make stop` to stop)
# and runs test/harness/demo.sql in database iceml: the whole pipeline on
# synthetic chips (or on a Kaggle file: make demo DATA=path/to/train.json),
# a small tune, an ablation study, a report, pictures, a pg_cron schedule.
#
# It never drops anything but its own objects (the feature group demo_chips,
# the schedule demo_nightly), re-created by name on each run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
h=test/harness
# DATA is also PGXS's list of files to install: take it, and keep `make
# demo DATA=...` from handing it to the build's own make
data_file=${DATA:-}
unset DATA MAKEFLAGS MAKEOVERRIDES MFLAGS
"$h/deps.sh"
"$h/cluster.sh" install
"$h/cluster.sh" start demo
eval "$("$h/cluster.sh" env demo)"

if [ -n "$data_file" ]; then
	[ -r "$data_file" ] || { echo "iceml demo: cannot read DATA=$data_file" >&2; exit 1; }
	path=$(realpath "$data_file")
	# the server reads the file itself: it must be able to
	if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -r "$path"; then
		echo "iceml demo: the server (user postgres) cannot read $path; copy it somewhere readable" >&2
		exit 1
	fi
	ingest=$(printf '{"path": "%s"}' "$(printf %s "$path" | sed 's/\\/\\\\/g; s/"/\\"/g')")
	source="the Kaggle file $path"
else
	ingest='{"synthetic": {"n": 2000, "seed": 7, "bad": 6}}'
	source='2,000 synthetic chips and 6 deliberately bad records'
fi
pictures=$repo/.iceml/demo/pictures
mkdir -p "$pictures"

# an extension installed by an older iceml (same version number, fewer
# functions) is replaced only where that destroys nothing
have=$(psql -X -At -d iceml -c "SELECT to_regprocedure('iceml.run_pipeline(text,jsonb)') IS NOT NULL
                                  FROM pg_extension WHERE extname = 'iceml'")
if [ "$have" = f ]; then
	held=$(psql -X -At -d iceml -c "SELECT (SELECT count(*) FROM iceml.feature_groups) + (SELECT count(*) FROM iceml.models)")
	if [ "$held" != 0 ]; then
		echo "iceml demo: database iceml on the demo cluster has an older iceml holding feature groups or models;" >&2
		echo "the demo will not drop them. Keep what you need, then: make stop && rm -rf .iceml/demo && make demo" >&2
		exit 1
	fi
	psql -X -q -d iceml -c "SET client_min_messages = warning" -c "DROP EXTENSION iceml CASCADE"
fi

start=$(date +%s)
psql -X -v ON_ERROR_STOP=1 -d iceml -v ingest="$ingest" -v source="$source" -v pictures="$pictures" <"$h/demo.sql"
echo
echo "iceml demo done in $(( $(date +%s) - start )) s. The pictures are in $pictures."
echo "The demo cluster is still running: 'make psql' opens psql on it, 'make stop' stops it."
