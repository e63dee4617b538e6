# Training runs in background workers, seen from outside: the call returns
# at once, a rolled-back call starts nothing, epochs are committed as they
# happen, cancel, a SIGKILLed worker and a server restart both end failed
# and resume finishes the run, and roles see only their own runs.
#
# Runs against the embedded test cluster (PGHOST/PGPORT from the harness),
# in a database of its own; restarts the server through cluster.sh.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $db = $IcemlTap::db = 'iceml_worker';

# ---- setup: a database, roles, and a small labelled chip table -----------
psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql(q{
	SET client_min_messages = warning;
	CREATE EXTENSION iceml;
	DROP ROLE IF EXISTS iceml_tap_alice; DROP ROLE IF EXISTS iceml_tap_bob; DROP ROLE IF EXISTS iceml_tap_carol;
	CREATE ROLE iceml_tap_alice LOGIN IN ROLE iceml_user;
	CREATE ROLE iceml_tap_bob LOGIN IN ROLE iceml_user;
	CREATE ROLE iceml_tap_carol LOGIN IN ROLE iceml_reader;
});
# alice owns the feature group and the dataset
psql(q{
	SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"int"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"is_iceberg","type":"smallint"}]', ARRAY['id'], validation => 'NONE');
	-- icebergs have a bright centre; everything is seeded, so runs repeat
	SELECT setseed(0.42);
	INSERT INTO iceml_fs.chips_1
	SELECT i, (SELECT array_agg(CASE WHEN i % 2 = 1 AND (j - 1) / 75 BETWEEN 33 AND 41 AND (j - 1) % 75 BETWEEN 33 AND 41
	                                 THEN -6 + random()::real * 4 ELSE -24 + random()::real * 3 END) FROM generate_series(1, 5625) j),
	          (SELECT array_agg(-29 + random()::real * 2) FROM generate_series(1, 5625) j),
	          (i % 2)::smallint
	  FROM generate_series(1, 160) i;
}, user => 'iceml_tap_alice');
my $td = psql(q{SELECT iceml.create_training_dataset('chips', 'iceml_fs.chips_1', 'is_iceberg', seed => 1)}, user => 'iceml_tap_alice');
is($td, 'iceml_td.chips_1', 'alice made a training dataset');

# ---- a tiny model trains to completion; the call returns before training -
my $run = psql(q{
	BEGIN;
	SELECT iceml.train('tap', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 3, "batch_size": 16}');
	-- still queued when the call returns: the worker starts at commit
	SELECT status FROM iceml.runs ORDER BY id DESC LIMIT 1;
	COMMIT;
}, user => 'iceml_tap_alice');
my ($id, $status) = split /\n/, $run;
is($status, 'queued', 'iceml.train returns at once, the run queued until commit');
is(psql("SELECT iceml.wait($id, '120 s')", user => 'iceml_tap_alice'), 'succeeded', 'tiny run succeeded');
is(psql("SELECT count(*) FROM iceml.run_metrics WHERE run_id = $id"), '3', 'one metrics row per epoch');
like(psql("SELECT m.parameters || ' ' || m.owner || ' ' || (m.lineage->>'training_dataset') FROM iceml.models m JOIN iceml.runs r ON r.model_id = m.id WHERE r.id = $id"),
	qr/^\d+ iceml_tap_alice iceml_td\.chips_1$/, 'the model has owner and lineage');

# ---- a rolled-back call starts nothing ------------------------------------
psql(q{BEGIN; SELECT iceml.train('rolled back', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 1}'); ROLLBACK;},
	user => 'iceml_tap_alice');
sleep 1;
is(psql(q{SELECT count(*) FROM iceml.runs WHERE experiment = 'rolled back'}), '0', 'rolled back: no run');
is(psql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'iceml train'}), '0', 'rolled back: no worker');

# ---- metrics appear while running; progress shows the worker; cancel -----
my $long = psql(q{SELECT iceml.train('long', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 400, "batch_size": 8}')},
	user => 'iceml_tap_alice');
like(poll("SELECT status || ' ' || (SELECT count(*) FROM iceml.run_metrics WHERE run_id = $long) FROM iceml.runs WHERE id = $long",
		qr/^running [1-9]/, 60), qr/^running [1-9]/, 'epochs are committed while the run goes on');
like(psql("SELECT p.worker_pid = a.pid AND a.application_name = 'iceml train $long' FROM iceml.progress p JOIN pg_stat_activity a ON a.pid = p.worker_pid WHERE p.run = $long"),
	qr/^t$/, 'iceml.progress shows the worker, which names itself in pg_stat_activity');

# bob cannot see or cancel alice's run
is(psql("SELECT count(*) FROM iceml.runs WHERE id = $long", user => 'iceml_tap_bob'), '0', 'bob does not see alice\'s run');
my ($rc, $out) = psql("SELECT iceml.cancel($long)", user => 'iceml_tap_bob');
like($out, qr/run or study $long does not exist/, 'bob cannot cancel alice\'s run');
($rc, $out) = psql(q{SELECT iceml.train('reader', 'iceml_td.chips_1', 'tiny_cnn')}, user => 'iceml_tap_carol');
like($out, qr/permission denied/, 'iceml_reader cannot train');

is(psql("SELECT iceml.cancel($long)", user => 'iceml_tap_alice'), 't', 'alice cancels her run');
is(psql("SELECT iceml.wait($long, '60 s')", user => 'iceml_tap_alice'), 'cancelled', 'the run ends cancelled');
is(psql("SELECT model_id IS NULL FROM iceml.runs WHERE id = $long"), 't', 'no model from a cancelled run');

# ---- a worker killed with SIGKILL: failed, then resumed to the end -------
my $k = psql(q{SELECT iceml.train('killed', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 40, "batch_size": 8}')},
	user => 'iceml_tap_alice');
poll("SELECT epoch >= 2 FROM iceml.runs WHERE id = $k", qr/^t$/, 60);
my $pid = psql("SELECT worker_pid FROM iceml.runs WHERE id = $k");
ok(kill('KILL', $pid), "worker $pid killed");
# the postmaster restarts every backend after a crash; wait for it
poll('SELECT 1', qr/^1$/, 60);
# the supervisor (or, without preloading, the next iceml.wait() or
# iceml.train()) marks runs whose worker is gone as failed
poll("SELECT iceml.wait($k, '0 s')", qr/^failed/, 30);
like(psql("SELECT status || ': ' || error FROM iceml.progress WHERE run = $k"),
	qr/^failed: the worker \(pid $pid\) ended without finishing the run/, 'a killed worker leaves the run failed with the reason');
is(psql("SELECT iceml.resume($k)", user => 'iceml_tap_alice'), $k, 'resume queues it again');
is(psql("SELECT iceml.wait($k, '180 s')", user => 'iceml_tap_alice'), 'succeeded', 'the resumed run finishes');
is(psql("SELECT count(*) || ' ' || max(epoch) FROM iceml.run_metrics WHERE run_id = $k"), '40 40', 'every epoch recorded once');

# ---- a server restart mid-run: failed, then resumed ----------------------
my $r = psql(q{SELECT iceml.train('restarted', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 40, "batch_size": 8}')},
	user => 'iceml_tap_alice');
poll("SELECT epoch >= 2 FROM iceml.runs WHERE id = $r", qr/^t$/, 60);
restart();
like(poll("SELECT iceml.wait($r, '0 s')", qr/^failed$/, 30), qr/^failed$/, 'a server restart leaves the run failed');
is(psql("SELECT iceml.resume($r)", user => 'iceml_tap_alice'), $r, 'resume after restart');
is(psql("SELECT iceml.wait($r, '180 s')", user => 'iceml_tap_alice'), 'succeeded', 'and it finishes');

# ---- sessions that call themselves iceml workers take no worker slot ------
# (any login role may set application_name; iceml.max_workers is 4 here)
psql("DROP ROLE IF EXISTS iceml_tap_nobody; CREATE ROLE iceml_tap_nobody LOGIN", db => 'postgres');
for my $i (1 .. 5) {
	system("PGAPPNAME='iceml train 9999$i' psql -XAtq -U iceml_tap_nobody -d postgres -c 'SELECT pg_sleep(60)' >/dev/null 2>&1 &");
}
poll(q{SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'iceml train 9999%'}, qr/^5$/, 20);
my $s = psql(q{SELECT iceml.train('spoofed', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 1}')}, user => 'iceml_tap_alice');
is(psql("SELECT iceml.wait($s, '120 s')", user => 'iceml_tap_alice'), 'succeeded',
	'five sessions named "iceml train ..." by a role with no iceml role do not stop training');
psql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'iceml train 9999%'}, db => 'postgres');

# ---- bad values in the training data: the worker names row, column, element --
psql(q{
	SELECT iceml.create_feature_group('badchips', '[{"name":"id","type":"int"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"is_iceberg","type":"smallint"}]', ARRAY['id'], validation => 'NONE');
	INSERT INTO iceml_fs.badchips_1
	SELECT i, array_fill(-20::real, ARRAY[5625]), array_fill(-25::real, ARRAY[5625]), (i % 2)::smallint FROM generate_series(1, 20) i;
	UPDATE iceml_fs.badchips_1 SET band_2[7] = 'NaN';
	SELECT iceml.create_training_dataset('badchips', 'iceml_fs.badchips_1', 'is_iceberg', seed => 1);
}, user => 'iceml_tap_alice');
my $bad = psql(q{SELECT iceml.train('bad', 'iceml_td.badchips_1', 'tiny_cnn', '{"epochs": 1}')}, user => 'iceml_tap_alice');
is(psql("SELECT iceml.wait($bad, '60 s')", user => 'iceml_tap_alice'), 'failed', 'a NaN in the training data fails the run');
like(psql("SELECT error FROM iceml.runs WHERE id = $bad"),
	qr/^training dataset iceml_td\.badchips_1, row \d+: "band_2" has a non-finite value \(NaN\) at index 7 \(SQLSTATE 22023\)/,
	'naming the dataset, row, column and element');
psql(q{UPDATE iceml_fs.badchips_1 SET band_2 = array_fill(-25::real, ARRAY[5625]), band_1 = band_1[1:100];
	SELECT iceml.create_training_dataset('badchips', 'iceml_fs.badchips_1', 'is_iceberg', seed => 1);},
	user => 'iceml_tap_alice');
$bad = psql(q{SELECT iceml.train('bad', 'iceml_td.badchips_2', 'tiny_cnn', '{"epochs": 1}')}, user => 'iceml_tap_alice');
is(psql("SELECT iceml.wait($bad, '60 s')", user => 'iceml_tap_alice'), 'failed', 'a band of the wrong size fails the run');
like(psql("SELECT error FROM iceml.runs WHERE id = $bad"),
	qr/^training dataset iceml_td\.badchips_2, row \d+: "band_1" has 100 values, not 5625 \(SQLSTATE 22023\) HINT: The architecture's input is 3x75x75\./,
	'naming the size the architecture takes');

# ---- a dataset dropped before the worker starts: a clear error in the run --
# (one transaction: the worker starts at commit, when the table is gone)
my $d = psql(q{SELECT iceml.create_training_dataset('gone', 'iceml_fs.chips_1', 'is_iceberg');
	BEGIN; SELECT iceml.train('gone', 'iceml_td.gone_1', 'tiny_cnn', '{"epochs": 1}'); DROP TABLE iceml_td.gone_1; COMMIT;},
	user => 'iceml_tap_alice');
($d) = $d =~ /(\d+)\s*$/;
is(psql("SELECT iceml.wait($d, '60 s')", user => 'iceml_tap_alice'), 'failed', 'a run whose dataset was dropped fails');
like(psql("SELECT error FROM iceml.runs WHERE id = $d"),
	qr/^the training dataset of run $d \(relation \d+\) no longer exists \(SQLSTATE 42P01\) HINT: /,
	'with the reason, its SQLSTATE and a hint');

psql("DROP DATABASE $db", db => 'postgres');
done_testing();
