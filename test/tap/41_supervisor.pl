# The job supervisor (iceml preloaded, as the harness runs it): nobody calls
# iceml.wait(), iceml.train() or anything else that moves the queue here;
# every check below reads the catalog with a plain SELECT.
#   - a server crash (pg_ctl stop -m immediate) mid-training leaves the run
#     failed with the reason right after the restart;
#   - a queue longer than iceml.max_workers drains by itself, never more
#     than the budget training at once;
#   - sessions that name themselves 'iceml train ...' take no worker slot.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $db = $IcemlTap::db = 'iceml_supervisor';
my %gil = (user => 'iceml_tap_gil');

# the embedded server, as the harness exports it (test/harness/cluster.sh env)
my ($data, $pgbin) = ($ENV{ICEML_CLUSTER_DATA}, $ENV{ICEML_PGBIN});
my $cluster = $ENV{ICEML_CLUSTER} // 'test';
sub as_server { return ($> == 0 ? ('runuser', '-u', 'postgres', '--') : ()); }

sub set_max_workers {
	my ($n) = @_;
	psql("ALTER SYSTEM SET iceml.max_workers = $n", db => 'postgres');
	psql('SELECT pg_reload_conf()', db => 'postgres');
	poll('SHOW iceml.max_workers', qr/^$n$/, 10);
}

is(psql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'iceml supervisor'}, db => 'postgres'), '1',
	'one supervisor runs for the whole cluster');

psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql(q{
	CREATE EXTENSION iceml;
	DROP ROLE IF EXISTS iceml_tap_gil;
	CREATE ROLE iceml_tap_gil LOGIN IN ROLE iceml_user;
});
psql(q{
	SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},
	  {"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
	  ARRAY['id'], validation => 'NONE');
	INSERT INTO iceml_fs.chips_1 SELECT id, band_1, band_2, inc_angle, is_iceberg FROM iceml.synthesize_statoil(96, 5);
	SELECT iceml.create_training_dataset('chips', 'iceml_fs.chips_1', 'is_iceberg', seed => 3);
}, %gil);

# ---- a crash mid-training: failed with the reason, right after restart ----
my $r = psql(q{SELECT iceml.train('crash', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 400, "batch_size": 8}')}, %gil);
like(poll("SELECT status || ' ' || epoch FROM iceml.runs WHERE id = $r", qr/^running [1-9]/, 60), qr/^running [1-9]/,
	'the run is training');
ok(system(join(' ', as_server(), "$pgbin/pg_ctl -D '$data' -m immediate -w stop >/dev/null 2>&1")) == 0,
	'pg_ctl stop -m immediate');
system("test/harness/cluster.sh start $cluster >/dev/null 2>&1") == 0 or BAIL_OUT('the server did not start again');
like(poll("SELECT status || ': ' || error FROM iceml.runs WHERE id = $r", qr/^failed/, 30),
	qr/^failed: the worker \(pid \d+\) ended without finishing the run: the server restarted or crashed while it ran; iceml\.resume\($r\) continues/,
	'after the restart the supervisor marked the run failed, with the reason, before anyone asked');

# ---- a queue longer than the budget drains by itself ----------------------
set_max_workers(2);
psql(q{
	BEGIN;
	SELECT iceml.train('queue ' || i, 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 1, "batch_size": 16, "threads": 1}')
	  FROM generate_series(1, 6) i;
	COMMIT;
}, %gil);
is(poll(q{SELECT count(*) FILTER (WHERE status = 'succeeded') || '/' || count(*) FROM iceml.runs WHERE experiment LIKE 'queue %'},
		qr{^6/6$}, 240), '6/6', 'six runs on a budget of two all trained, nobody waiting on them');
is(psql(q{SELECT max((SELECT count(*) FROM iceml.runs b WHERE b.experiment LIKE 'queue %'
	                     AND b.started_at <= a.started_at AND b.finished_at > a.started_at))
	         FROM iceml.runs a WHERE a.experiment LIKE 'queue %'}), '2', 'two trained at once, never more');

# ---- a session's application_name is not a worker slot ---------------------
set_max_workers(1);
psql('DROP ROLE IF EXISTS iceml_tap_nobody; CREATE ROLE iceml_tap_nobody LOGIN', db => 'postgres');
for my $i (1 .. 3) {
	system("PGAPPNAME='iceml train 9999$i' psql -XAtq -U iceml_tap_nobody -d postgres -c 'SELECT pg_sleep(120)' >/dev/null 2>&1 &");
}
# and one that renames itself in SQL
system(q{psql -XAtq -U iceml_tap_nobody -d postgres -c "SET application_name = 'iceml train 99990'; SELECT pg_sleep(120)" >/dev/null 2>&1 &});
is(poll(q{SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'iceml train 9999%'}, qr/^4$/, 20), '4',
	'four sessions call themselves iceml trainers');
my $s = psql(q{SELECT iceml.train('spoofed', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 1, "threads": 1}')}, %gil);
is(poll("SELECT status FROM iceml.runs WHERE id = $s", qr/^(succeeded|failed|cancelled)$/, 120), 'succeeded',
	'with a budget of one worker the run still trains');
psql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'iceml train 9999%'}, db => 'postgres');

psql('ALTER SYSTEM RESET iceml.max_workers', db => 'postgres');
psql('SELECT pg_reload_conf()', db => 'postgres');
psql("DROP DATABASE $db", db => 'postgres');

# ---- without preloading: no supervisor, the lazy path moves the queue -----
# a cluster of its own (cluster.sh preloads iceml; this one is restarted without)
my $lazy = "${cluster}_lazy";
system("test/harness/cluster.sh start $lazy fresh >/dev/null 2>&1") == 0 or BAIL_OUT('no second cluster');
my %env = map { /^export (.*)$/ ? (map { /^(\w+)='?([^']*)'?$/ ? ($1 => $2) : () } split / /, $1) : () }
	split /\n/, `test/harness/cluster.sh env $lazy`;
sub lazy_psql {
	my ($sql) = @_;
	local @ENV{keys %env} = values %env;
	return psql($sql, db => 'iceml');
}
lazy_psql(q{ALTER SYSTEM SET shared_preload_libraries = 'pg_cron'; ALTER SYSTEM SET iceml.max_workers = 1});
system("test/harness/cluster.sh start $lazy >/dev/null 2>&1") == 0 or BAIL_OUT('the second cluster did not restart');
is(lazy_psql(q{SELECT current_setting('shared_preload_libraries') || ' ' || count(*) FROM pg_stat_activity
	            WHERE backend_type = 'iceml supervisor'}), 'pg_cron 0', 'iceml not preloaded: no supervisor');
lazy_psql(q{
	CREATE EXTENSION iceml;
	SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},
	  {"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
	  ARRAY['id'], validation => 'NONE');
	INSERT INTO iceml_fs.chips_1 SELECT id, band_1, band_2, inc_angle, is_iceberg FROM iceml.synthesize_statoil(64, 5);
	SELECT iceml.create_training_dataset('chips', 'iceml_fs.chips_1', 'is_iceberg', seed => 3);
});
lazy_psql(q{SELECT iceml.train('lazy ' || i, 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 1, "threads": 1}')
	          FROM generate_series(1, 3) i});
is(lazy_psql(q{SELECT string_agg(iceml.wait(id, '120 s'), ',' ORDER BY id) FROM iceml.runs}),
	'succeeded,succeeded,succeeded', 'three runs on a budget of one: trainers and iceml.wait() start the queued ones');
system("test/harness/cluster.sh stop $lazy >/dev/null 2>&1");
done_testing();
