# Pipelines scheduled with pg_cron on the embedded cluster: the job runs as
# the role that scheduled it, in its database, really runs within a minute
# and is recorded with its cron job id; an 'N seconds' schedule repeats
# within the minute; nobody schedules as someone else or removes another
# role's schedule; clear errors where pg_cron cannot be used.
#
# pg_cron keeps its jobs in cron.database_name ('iceml' on the embedded
# cluster), so this test works in that database.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $db = $IcemlTap::db = 'iceml';

psql(q{
	SET client_min_messages = warning;
	CREATE EXTENSION IF NOT EXISTS iceml;
	DROP ROLE IF EXISTS iceml_tap_sam; DROP ROLE IF EXISTS iceml_tap_sue;
	CREATE ROLE iceml_tap_sam LOGIN IN ROLE iceml_user;
	CREATE ROLE iceml_tap_sue LOGIN IN ROLE iceml_user;
});

my $config = q{'{"feature_group": {"name": "schips"}, "ingest": {"synthetic": {"n": 120, "seed": 9}},
	"training_dataset": {"splits": {"train": 0.7, "validation": 0.15, "test": 0.15}},
	"train": {"architecture": "tiny_cnn", "hyperparams": {"epochs": 1, "batch_size": 16}}}'};

# ---- clear errors where pg_cron cannot be used ---------------------------
# (pg_cron's scheduler does not pick up jobs after its extension is dropped
# and created again while it runs: the extension is never dropped here, so
# the first check runs on a fresh cluster only)
my ($rc, $out);
SKIP: {
	skip 'pg_cron already installed in database iceml (not a fresh cluster)', 1
		if psql("SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'") ne '0';
	($rc, $out) = psql("\\set VERBOSITY verbose\nSELECT iceml.schedule_pipeline('sched', '* * * * *', $config)", user => 'iceml_tap_sam');
	like($out, qr/ERROR:  55000: extension pg_cron is not installed in database "iceml".*HINT:  CREATE EXTENSION pg_cron/s,
		'without the extension: 55000 with a hint');
}
psql("DROP DATABASE IF EXISTS iceml_cronless", db => 'postgres');
psql("CREATE DATABASE iceml_cronless", db => 'postgres');
psql("CREATE EXTENSION iceml", db => 'iceml_cronless');
($rc, $out) = psql("\\set VERBOSITY verbose\nSELECT iceml.schedule_pipeline('sched', '* * * * *', $config)", db => 'iceml_cronless');
like($out, qr/ERROR:  0A000: pg_cron keeps its jobs in database "iceml", not in "iceml_cronless".*HINT:  Schedule pipelines in database "iceml"/s,
	'in another database: 0A000 with a hint');
psql("DROP DATABASE iceml_cronless", db => 'postgres');

psql("CREATE EXTENSION IF NOT EXISTS pg_cron");
($rc, $out) = psql("SELECT iceml.schedule_pipeline('sched', '* * * * *', '{\"train\": {}}')", user => 'iceml_tap_sam');
like($out, qr/invalid pipeline config at \$: needs "feature_group"/, 'a bad config is refused before pg_cron is asked');
($rc, $out) = psql("SELECT iceml.schedule_pipeline('sched', '90 seconds', $config)", user => 'iceml_tap_sam');
like($out, qr/invalid pipeline schedule "90 seconds": seconds must be between 1 and 59/, 'seconds out of range');
($rc, $out) = psql("SELECT iceml.schedule_pipeline('sched', 'every tuesday', $config)", user => 'iceml_tap_sam');
like($out, qr/invalid schedule: every tuesday/, 'pg_cron refuses a schedule it cannot read');
is(psql("SELECT count(*) FROM cron.job"), '0', 'nothing was scheduled');

# ---- a schedule: the pg_cron job runs as sam, in this database ----------
my $base = psql("SELECT coalesce(max(id), 0) FROM iceml.pipeline_runs");
my $job = psql("SELECT iceml.schedule_pipeline('sched', '20 seconds', $config)", user => 'iceml_tap_sam');
like($job, qr/^\d+$/, 'schedule_pipeline returns the pg_cron job id');
is(psql("SELECT username || ' ' || database || ' ' || command FROM cron.job WHERE jobid = $job"),
	q{iceml_tap_sam iceml SELECT iceml.run_scheduled_pipeline('sched')}, 'the job runs as sam in this database');
is(psql("SELECT name || ' ' || schedule || ' ' || cron_job || ' ' || runs FROM iceml.pipeline_schedules", user => 'iceml_tap_sam'),
	"sched 20 seconds $job 0", 'iceml.pipeline_schedules lists it');
is(psql("SELECT count(*) FROM iceml.pipeline_schedules", user => 'iceml_tap_sue'), '0', 'sue does not see it');

# the next minute's tick starts it; the minute holds more 20-second runs
my $got = poll("SELECT count(*) FILTER (WHERE status = 'succeeded') >= 1 FROM iceml.pipeline_runs WHERE id > $base AND cron_job = $job", qr/^t$/, 100);
is($got, 't', 'the scheduled pipeline ran and succeeded (waited at most 100 s)');
is(psql("SELECT owner || ' ' || name FROM iceml.pipeline_runs WHERE id > $base AND cron_job = $job ORDER BY id LIMIT 1"),
	'iceml_tap_sam sched', 'recorded in iceml.pipeline_runs with its cron job id, as sam');
$got = poll("SELECT count(*) >= 2 FROM iceml.pipeline_runs WHERE id > $base AND cron_job = $job", qr/^t$/, 60);
is($got, 't', 'an N-seconds schedule runs again within its minute');
like(psql("SELECT last_status || ' ' || (runs >= 1) FROM iceml.pipeline_schedules", user => 'iceml_tap_sam'),
	qr/^(queued|running|succeeded) true$/, 'the schedule shows its last run');

# ---- nobody runs or removes another role's schedule ----------------------
($rc, $out) = psql("SELECT iceml.run_scheduled_pipeline('sched')", user => 'iceml_tap_sue');
like($out, qr/role "iceml_tap_sue" has no scheduled pipeline "sched"/, 'sue cannot run sam\'s schedule');
($rc, $out) = psql("SET client_min_messages = notice; SELECT iceml.unschedule_pipeline('sched')", user => 'iceml_tap_sue');
like($out, qr/has no scheduled pipeline "sched".*\nf$/s, 'sue cannot unschedule it: false, with a notice');
($rc, $out) = psql("SELECT cron.unschedule($job)", user => 'iceml_tap_sue');
isnt($rc, 0, 'nor remove its pg_cron job directly');
is(psql("SELECT count(*) FROM cron.job WHERE jobid = $job"), '1', 'sam\'s job is still there');
my $sue_job = psql("SELECT iceml.schedule_pipeline('sched', '0 3 * * *', $config)", user => 'iceml_tap_sue');
isnt($sue_job, $job, 'sue\'s schedule of the same name is a job of her own');
is(psql("SELECT username FROM cron.job WHERE jobid = $sue_job"), 'iceml_tap_sue', 'running as sue');
($rc, $out) = psql("INSERT INTO iceml.schedules (name, owner, role, database, schedule, config, cron_job) VALUES ('x', 'iceml_tap_sam', 10, 1, '* * * * *', '{}', 1)", user => 'iceml_tap_sue');
like($out, qr/permission denied/, 'users cannot write the schedules catalog');

# ---- unschedule ----------------------------------------------------------
is(psql("SELECT iceml.unschedule_pipeline('sched')", user => 'iceml_tap_sam'), 't', 'sam unschedules his pipeline');
is(psql("SELECT count(*) FROM cron.job WHERE jobid = $job"), '0', 'its pg_cron job is gone');
is(psql("SELECT iceml.unschedule_pipeline('sched')", user => 'iceml_tap_sue'), 't', 'sue unschedules hers');
is(psql("SELECT count(*) FROM cron.job"), '0', 'no job left');
# the last run of the minute may still be going: let it end
poll("SELECT count(*) FROM iceml.pipeline_runs WHERE status IN ('queued', 'running')", qr/^0$/, 60);

# ---- a server without pg_cron preloaded ----------------------------------
# (an embedded cluster of its own, restarted with iceml alone preloaded)
{
	my $cluster = "$FindBin::Bin/../harness/cluster.sh";
	system("$cluster start nocron fresh >/dev/null") == 0 or BAIL_OUT('cluster nocron did not start');
	my $env = `$cluster env nocron`;
	my ($host) = $env =~ /PGHOST='([^']+)'/;
	my ($port) = $env =~ /PGPORT=(\d+)/;
	local $ENV{PGHOST} = $host;
	local $ENV{PGPORT} = $port;
	psql("ALTER SYSTEM SET shared_preload_libraries = 'iceml'", db => 'postgres');
	system("$cluster start nocron >/dev/null") == 0 or BAIL_OUT('cluster nocron did not restart');
	is(psql('SHOW shared_preload_libraries', db => 'postgres'), 'iceml', 'a server with iceml and without pg_cron');
	psql(q{CREATE EXTENSION iceml; CREATE ROLE iceml_tap_sam LOGIN IN ROLE iceml_user;}, db => 'iceml');
	($rc, $out) = psql("\\set VERBOSITY verbose\nSELECT iceml.schedule_pipeline('sched', '* * * * *', $config)",
		db => 'iceml', user => 'iceml_tap_sam');
	like($out, qr/ERROR:  55000: pg_cron is not loaded, so iceml cannot schedule pipelines.*HINT:  Add pg_cron to shared_preload_libraries/s,
		'pg_cron not preloaded: 55000 with a hint');
	is(psql('SELECT count(*) FROM iceml.schedules', db => 'iceml'), '0', 'and nothing was recorded');
	system("$cluster stop nocron >/dev/null");
}

done_testing();
