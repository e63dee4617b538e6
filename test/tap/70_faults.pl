# Fault injection: a backend killed with SIGKILL in the middle of an ingest,
# of a deploy and of a predict-heavy load, and a training worker killed in
# the middle of an epoch.  The postmaster then restarts every backend (crash
# recovery); afterwards no feature row is half-written, the catalogs are
# consistent and no run is left 'running'.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $db = $IcemlTap::db = 'iceml_faults';
psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql(q{
	CREATE EXTENSION iceml;
	DROP ROLE IF EXISTS iceml_tap_fay;
	CREATE ROLE iceml_tap_fay LOGIN IN ROLE iceml_user;
});
my %fay = (user => 'iceml_tap_fay');
psql(q{
	SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},
	  {"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
	  ARRAY['id'], expectations => '[{"name":"label","features":["is_iceberg"],"rules":[{"name":"HAS_MIN","level":"ERROR","min":0},{"name":"HAS_MAX","level":"ERROR","max":1}]}]');
	INSERT INTO iceml_fs.chips_1 SELECT id, band_1, band_2, inc_angle, is_iceberg FROM iceml.synthesize_statoil(160, 11);
	SELECT iceml.create_training_dataset('chips', 'iceml_fs.chips_1', 'is_iceberg', seed => 2);
}, %fay);

# the pid of the backend running a statement that matches $like
sub backend_of {
	my ($like) = @_;
	return poll("SELECT pid FROM pg_stat_activity WHERE datname = '$db' AND state = 'active' AND query LIKE '$like'"
	            . " AND pid <> pg_backend_pid() LIMIT 1",
		qr/^\d+$/, 30);
}
sub crash_and_wait {
	my ($pid, $what) = @_;
	ok($pid =~ /^\d+$/ && kill('KILL', $pid), "backend $pid killed during $what");
	poll('SELECT 1', qr/^1$/, 60);
}
sub consistent {
	my ($what) = @_;
	is(psql(q{SELECT count(*) FROM iceml_fs.chips_1 WHERE band_1 IS NULL OR array_length(band_1, 1) <> 5625
	                                                 OR array_length(band_2, 1) <> 5625}), '0',
		"$what: no half-written feature row");
	is(psql(q{SELECT count(*) FROM iceml.feature_group_commits c
	           WHERE c.rows_inserted > 0 AND c.operation = 'INSERT'
	             AND NOT EXISTS (SELECT FROM iceml.feature_groups g WHERE g.id = c.feature_group_id)}), '0',
		"$what: every commit belongs to a feature group");
	is(psql(q{SELECT count(*) FROM iceml.deployments d
	           WHERE NOT EXISTS (SELECT FROM iceml.models m WHERE m.id = d.model_id)
	              OR NOT EXISTS (SELECT FROM iceml.deployment_owners o WHERE o.name = d.name)}), '0',
		"$what: every deployment names a model and an owned name");
}

# ---- ingest: a large document, killed mid-load --------------------------------
my $rows = psql('SELECT count(*) FROM iceml_fs.chips_1');
my $commits = psql('SELECT count(*) FROM iceml.feature_group_commits');
# a server file of 3000 records (about 270 MB), written by the server
my $file = "/tmp/iceml_faults_$$.json";
psql(qq{COPY (SELECT '[' || string_agg(format('{"id":"k%s","band_1":[%s],"band_2":[%s],"inc_angle":%s,"is_iceberg":%s}',
	         id, array_to_string(band_1, ','), array_to_string(band_2, ','), coalesce(inc_angle::text, '"na"'), is_iceberg), ',') || ']'
	   FROM iceml.synthesize_statoil(3000, 12)) TO '$file' WITH (FORMAT text)});
system("psql -XAtq -d $db -c \"SELECT * FROM iceml.ingest_statoil('iceml_fs.chips_1', path => '$file')\" >/dev/null 2>&1 &");
my $pid = backend_of('%ingest_statoil%');
select(undef, undef, undef, 1.0);
crash_and_wait($pid, 'ingest');
is(psql('SELECT count(*) FROM iceml_fs.chips_1'), $rows, 'the killed ingest left no row behind');
is(psql('SELECT count(*) FROM iceml.feature_group_commits'), $commits, 'and no commit row');
consistent('after the ingest');
unlink $file;

# ---- a model and a deployment to work with -------------------------------------
my $run = psql(q{SELECT iceml.train('faults', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 1, "batch_size": 16}')}, %fay);
is(psql("SELECT iceml.wait($run, '120 s')", %fay), 'succeeded', 'a model');
my $run2 = psql(q{SELECT iceml.train('faults', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 1, "batch_size": 16, "seed": 9, "deploy": "never"}')}, %fay);
is(psql("SELECT iceml.wait($run2, '120 s')", %fay), 'succeeded', 'a second model');
my $m1 = psql("SELECT model_id FROM iceml.deployed_models WHERE name = 'faults'");
my $m2 = psql("SELECT model_id FROM iceml.runs WHERE id = $run2");
my $q = q{SELECT round(iceml_predict('faults', band_1, band_2, inc_angle)::numeric, 6) FROM iceml_fs.chips_1 ORDER BY id LIMIT 1};
my $before = psql($q);

# ---- deploy: killed between the deployment row and the commit -----------------
my $history = psql('SELECT count(*) FROM iceml.deployments');
system("psql -XAtq -U iceml_tap_fay -d $db -c \"BEGIN; SELECT iceml.deploy('faults', $m2); SELECT pg_sleep(30); COMMIT;\" >/dev/null 2>&1 &");
$pid = backend_of('%pg_sleep(30)%');
crash_and_wait($pid, 'a deploy');
is(psql('SELECT count(*) FROM iceml.deployments'), $history, 'the killed deploy left no history row');
is(psql("SELECT model_id FROM iceml.deployed_models WHERE name = 'faults'"), $m1, 'the deployed model is unchanged');
is(psql($q), $before, 'and predicts as before');
consistent('after the deploy');

# ---- predict-heavy load: one of four sessions killed ---------------------------
my $load = q{SELECT count(iceml_predict('faults', band_1, band_2, inc_angle)) FROM iceml_fs.chips_1, generate_series(1, 200)};
system("psql -XAtq -U iceml_tap_fay -d $db -c \"$load\" >/dev/null 2>&1 &") for 1 .. 4;
$pid = backend_of('%generate_series(1, 200)%');
select(undef, undef, undef, 1.0);
crash_and_wait($pid, 'a predict-heavy load');
is(psql($q), $before, 'predictions after the crash equal those before');
is(psql("SELECT model_id FROM iceml.deployed_models WHERE name = 'faults'"), $m1, 'the deployment is unchanged');
consistent('after the predict load');

# ---- a training worker killed mid-epoch ---------------------------------------
my $k = psql(q{SELECT iceml.train('faults', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 40, "batch_size": 8, "deploy": "never"}')}, %fay);
poll("SELECT epoch >= 1 FROM iceml.runs WHERE id = $k", qr/^t$/, 60);
$pid = psql("SELECT worker_pid FROM iceml.runs WHERE id = $k");
crash_and_wait($pid, 'training');
like(poll("SELECT iceml.wait($k, '0 s')", qr/^failed$/, 30), qr/^failed$/, 'the run is failed, not left running');
is(psql(q{SELECT count(*) FROM iceml.runs WHERE status = 'running'}), '0', 'no run is left running');
is(psql("SELECT count(*) FROM iceml.models WHERE run_id = $k"), '0', 'the killed run stored no model');
consistent('after the training worker');

psql("DROP DATABASE $db", db => 'postgres');
psql('DROP ROLE iceml_tap_fay', db => 'postgres');
done_testing();
