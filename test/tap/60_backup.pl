# Backups restore: pg_dump -Fc of a database with iceml data (feature
# groups with expectations, validations, statistics, quarantine, training
# datasets, architectures, runs, metrics, checkpoints, models, deployments,
# a study, the inference log, a pipeline run, a node and a sharded group) and pg_restore into a fresh database give the
# same catalogs, deployments that predict the same values, expectation
# triggers that still enforce, and sequences that continue.
#
# pg_restore loads extension configuration tables in foreign-key order
# (else in name order), with the extension's triggers already in place:
# iceml.deployments comes after iceml.models only because of its foreign
# key, and its trigger, which checks the model, must accept restored rows.
use strict;
use warnings;
use File::Temp qw(tempdir);
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $src = $IcemlTap::db = 'iceml_backup_src';
my $dst = 'iceml_backup_dst';
my $alice = 'iceml_tap_bk_alice';
my @nodes = ('iceml_backup_node1', 'iceml_backup_node2');

for my $d ($src, $dst) {
	psql("DROP DATABASE IF EXISTS $d", db => 'postgres');
	psql("CREATE DATABASE $d", db => 'postgres');
}
psql(qq{
	CREATE EXTENSION iceml;
	DROP ROLE IF EXISTS $alice;
	CREATE ROLE $alice LOGIN IN ROLE iceml_user;
});

# ---- the data: everything a user of iceml writes --------------------------
my ($rc, $out) = psql(q{
	SELECT iceml.create_feature_group('chips',
	    '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},
	      {"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
	    ARRAY['id'],
	    expectations => '[{"name":"label_is_binary","features":["is_iceberg"],
	                       "rules":[{"name":"HAS_MIN","level":"ERROR","min":0},{"name":"HAS_MAX","level":"ERROR","max":1}]},
	                      {"name":"steep","features":["inc_angle"],"rules":[{"name":"HAS_MAX","level":"WARNING","max":40}]}]',
	    validation => 'WARNING');
	INSERT INTO iceml_fs.chips_1 SELECT id, band_1, band_2, inc_angle, is_iceberg FROM iceml.synthesize_statoil(120, 7);
	SELECT * FROM iceml.ingest_statoil('iceml_fs.chips_1',
	    document => '[{"id":"bad","band_1":[1,2],"band_2":[1,2],"inc_angle":30,"is_iceberg":0}]', on_error => 'quarantine');
	SELECT iceml.compute_statistics('iceml_fs.chips_1');
	SELECT iceml.create_training_dataset('chips', 'iceml_fs.chips_1', 'is_iceberg',
	    splits => '{"train":0.7,"validation":0.15,"test":0.15}', seed => 5);
	SELECT iceml.create_architecture('bk_cnn', (SELECT spec FROM iceml.architectures WHERE name = 'tiny_cnn'));
}, user => $alice);
is($rc, 0, 'feature group, ingest, statistics, training dataset, architecture') or diag($out);

my $run = psql(q{SELECT iceml.train('bk', 'iceml_td.chips_1', 'bk_cnn', '{"epochs": 1, "batch_size": 16}')}, user => $alice);
is(psql("SELECT iceml.wait($run, '180 s')", user => $alice), 'succeeded', 'a run trained');
my $study = psql(q{SELECT iceml.tune('bk_study', 'iceml_td.chips_1', 'tiny_cnn',
	'{"learning_rate":{"type":"DISCRETE","values":[0.001,0.003]}}', 'grid', 2, 2,
	hyperparams => '{"epochs": 1, "batch_size": 16}')}, user => $alice);
is(psql("SELECT iceml.wait($study, '300 s')", user => $alice), 'succeeded', 'a study of two trials');
# a second model of experiment bk, deployed by id: a deployment chain
my $run2 = psql(q{SELECT iceml.train('bk', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 1, "batch_size": 16, "seed": 3, "deploy": "never"}')},
	user => $alice);
is(psql("SELECT iceml.wait($run2, '180 s')", user => $alice), 'succeeded', 'a second run');
psql("SELECT iceml.deploy('bk', (SELECT model_id FROM iceml.runs WHERE id = $run2))", user => $alice);
is(psql(q{SELECT count(*) FROM iceml.deployments WHERE name = 'bk'}), '2', 'two deployments of bk');

# a pipeline run with its steps
my $pipe = psql(q{SELECT iceml.run_pipeline('bkp', '{"feature_group": {"name": "pchips"},
	"ingest": {"synthetic": {"n": 80, "seed": 3}},
	"training_dataset": {"splits": {"train": 0.7, "validation": 0.15, "test": 0.15}, "seed": 1},
	"train": {"architecture": "tiny_cnn", "hyperparams": {"epochs": 1, "batch_size": 16}}}')}, user => $alice);
is(psql("SELECT iceml.wait($pipe, '180 s')", user => $alice), 'succeeded', 'a pipeline run');

# two nodes (other databases of this server) and a feature group sharded over them
my ($sock) = `psql -XAtq -U postgres -d postgres -c "SHOW unix_socket_directories"` =~ /^([^,\n]+)/;
my $port = psql('SHOW port');
for my $n (@nodes) {
	psql("DROP DATABASE IF EXISTS $n", db => 'postgres');
	psql("CREATE DATABASE $n", db => 'postgres');
	psql('CREATE EXTENSION iceml', db => $n);
}
($rc, $out) = psql(qq{
	CREATE EXTENSION postgres_fdw;
	SELECT iceml.add_node('n1', 'host=$sock port=$port dbname=$nodes[0] user=postgres');
	SELECT iceml.add_node('n2', 'host=$sock port=$port dbname=$nodes[1] user=postgres');
});
is($rc, 0, 'two nodes') or diag($out);
($rc, $out) = psql(q{SELECT iceml.create_feature_group('spread',
	    '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},
	      {"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
	    ARRAY['id'], nodes => ARRAY['n1', 'n2']);
	INSERT INTO iceml_fs.spread_1 SELECT id, band_1, band_2, inc_angle, is_iceberg FROM iceml.synthesize_statoil(10, 2);}, user => $alice);
is($rc, 0, 'a feature group sharded over them') or diag($out);

# inference log rows, written by the monitor worker
psql(q{SET iceml.log_inferences = 1;
	SELECT count(iceml_predict('bk', band_1, band_2, inc_angle)) FROM iceml_fs.chips_1 WHERE id <> 'bad';});
is(poll('SELECT count(*) FROM iceml.inference_log', qr/^120$/, 30), '120', 'inference log rows flushed');

# a node's copy of a model (scale-out: what a coordinator ships)
psql(q{SELECT iceml.receive_model(id, iceml._model_content_hash(weights, channels), weights, channels)
         FROM iceml.models ORDER BY id LIMIT 1});
# a study whose trials trained on the nodes, and calls predicted on the
# nodes collected into this database's log (scale-out)
psql("GRANT USAGE ON FOREIGN SERVER iceml_node_n1, iceml_node_n2 TO $alice");
my $remote = psql(q{SELECT iceml.tune('bk_nodes', 'iceml_td.chips_1', 'tiny_cnn',
	'{"learning_rate":{"type":"DISCRETE","values":[0.001,0.003]}}', 'grid', 2, 2,
	hyperparams => '{"epochs": 1, "batch_size": 16, "deploy": "never"}', nodes => ARRAY['n1', 'n2'])}, user => $alice);
is(psql("SELECT iceml.wait($remote, '300 s')", user => $alice), 'succeeded', 'a study whose trials ran on the nodes');
psql(q{ALTER SYSTEM SET iceml.log_inferences = 1; SELECT pg_reload_conf();});
psql(q{SELECT count(p) FROM (SELECT id, iceml_predict('bk', band_1, band_2, inc_angle) AS p FROM iceml_fs.spread_1) s}, user => $alice);
my $logged = 0;
for (1 .. 150) {
	$logged = 0;
	$logged += psql('SELECT count(*) FROM iceml.inference_log', db => $_) for @nodes;
	last if $logged == 10;
	select(undef, undef, undef, 0.2);
}
psql(q{ALTER SYSTEM RESET iceml.log_inferences; SELECT pg_reload_conf();});
is($logged, 10, 'the nodes logged the calls they predicted');
is(psql('SELECT iceml.collect_inferences()', user => $alice), '10', 'collected here');

# every catalog the extension dumps must be non-empty, so the round trip
# tests each of them
my @tables = split /\n/, psql(q{
	SELECT c::regclass FROM pg_extension e, unnest(e.extconfig) c
	 WHERE e.extname = 'iceml' AND (SELECT relkind FROM pg_class WHERE oid = c) = 'r' ORDER BY 1::text});
my @seqs = split /\n/, psql(q{
	SELECT c::regclass FROM pg_extension e, unnest(e.extconfig) c
	 WHERE e.extname = 'iceml' AND (SELECT relkind FROM pg_class WHERE oid = c) = 'S' ORDER BY 1::text});
ok(@tables >= 14, scalar(@tables) . ' catalog tables');
# every table with a serial id has its sequence dumped too
is(psql(q{
	SELECT string_agg(s.oid::regclass::text, ', ') FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
	 WHERE d.deptype = 'a' AND d.refobjid IN (SELECT unnest(extconfig) FROM pg_extension WHERE extname = 'iceml')
	   AND NOT s.oid = ANY ((SELECT extconfig FROM pg_extension WHERE extname = 'iceml')::oid[])}), '',
	'every owned sequence of a catalog is dumped');
# pg_cron schedules only in cron.database_name ('iceml' on the embedded
# cluster), not in this database: iceml.schedules stays empty here and is
# still compared below
my %unfilled = map { $_ => 1 } qw(iceml.schedules);
for my $t (@tables) {
	next if $unfilled{$t};
	my $where = $t eq 'iceml.architectures' ? 'WHERE NOT builtin' : '';
	is(scalar psql("SELECT count(*) > 0 FROM $t $where"), 't', "$t has rows to dump");
}

# A dump taken while a run trains: its row says running, with a worker of
# the source database (which the restored database never has).
psql("UPDATE iceml.runs SET status = 'running', worker_pid = 2147483647, worker_start = now(), finished_at = NULL WHERE id = $run2");

# A digest of every catalog's rows.  runs.database is the oid of the
# database a run was queued in: it names the source database, not the copy.
sub digest {
	my ($db, $t) = @_;
	my $where = $t eq 'iceml.architectures' ? 'WHERE NOT builtin' : '';
	return scalar psql("SELECT count(*) || ' ' || coalesce(md5(string_agg((to_jsonb(x) - 'database')::text, '|' ORDER BY (to_jsonb(x) - 'database')::text)), '-')
	               FROM $t x $where", db => $db);
}
my %before = map { $_ => digest($src, $_) } @tables;
my %seq_before = map { $_ => scalar psql("SELECT last_value || ' ' || is_called FROM $_") } @seqs;
my $predict = q{SELECT string_agg(id || ':' || iceml_predict('bk', band_1, band_2, inc_angle), ',' ORDER BY id)
                  FROM iceml_fs.chips_1 WHERE id <> 'bad'};
my $by_model = q{SELECT string_agg(m.id || ':' || (SELECT sum(iceml_predict(m.id, c.band_1, c.band_2, c.inc_angle))
                                                   FROM iceml_fs.chips_1 c WHERE c.id <> 'bad'), ',' ORDER BY m.id)
                   FROM iceml.models m};
my $pred_before = psql($predict);
my $models_before = psql($by_model);

# ---- dump and restore -------------------------------------------------------
my $dir = tempdir(CLEANUP => 1);
chmod 0777, $dir;
my $dump = "$dir/iceml.dump";
$out = `pg_dump -Fc -U postgres -d $src -f $dump 2>&1`;
is($?, 0, 'pg_dump -Fc') or diag($out);
# the roles a run and a pipeline run act as are dumped by name, so a
# restore on another cluster (other oids) gives them to the same roles
my $runs_sql = `pg_restore -a -t runs -t pipeline_runs -f - $dump 2>&1`;
my $alice_oid = psql("SELECT '$alice'::regrole::oid");
like($runs_sql, qr/\t\Q$alice\E\t\Q$alice\E\t/, 'iceml.runs names the roles of a run in the dump');
unlike($runs_sql, qr/\t$alice_oid\t/, 'and never by their oids');
$out = `pg_restore -U postgres -d $dst --exit-on-error $dump 2>&1`;
is($?, 0, 'pg_restore into a fresh database') or diag($out);

$IcemlTap::db = $dst;
for my $t (@tables) {
	is(digest($dst, $t), $before{$t}, "$t: same rows after restore");
}
for my $s (@seqs) {
	is(psql("SELECT last_value || ' ' || is_called FROM $s"), $seq_before{$s}, "$s: same position after restore");
}
is(psql($predict), $pred_before, 'the restored deployment predicts the same values');
is(psql($by_model), $models_before, 'every restored model predicts the same values');
is(psql('SELECT count(*) FROM iceml_fs.spread_1', user => $alice), '10', 'the restored sharded group reads its rows from the nodes');
like(psql(q{SELECT string_agg(name || ' ' || server || ' ' || iceml_version, ',' ORDER BY name) FROM iceml.nodes}),
	qr/^n1 \S+ 0\.\d+\.\d+,n2 \S+ 0\.\d+\.\d+$/, 'and iceml.nodes lists the nodes with their servers');

# the run that was training: its worker is not there, so it ends failed
is(psql("SELECT iceml.wait($run2, '60 s')", user => $alice), 'failed', 'a run caught training by the dump ends failed');
like(psql("SELECT error FROM iceml.runs WHERE id = $run2"), qr/ended without finishing the run/, 'with the reason');

# expectations still enforce
($rc, $out) = psql(q{\set VERBOSITY verbose
	INSERT INTO iceml_fs.chips_1 SELECT 'bk_x', band_1, band_2, inc_angle, 5 FROM iceml_fs.chips_1 LIMIT 1;}, user => $alice);
like($out, qr/ERROR:  23514: .*label_is_binary/, 'an expectation refuses a bad row (23514)');
($rc, $out) = psql(q{SET client_min_messages = error;
	INSERT INTO iceml_fs.chips_1 SELECT 'bk_y', band_1, band_2, 45, 1 FROM iceml_fs.chips_1 LIMIT 1;
	SELECT count(*) FROM iceml.validations WHERE 'bk_y' = ANY (failing_keys);}, user => $alice);
is($out, '1', 'a WARNING rule still records its finding');

# sequences continue: a new run, a new deployment
my $max = psql('SELECT greatest((SELECT max(id) FROM iceml.runs), (SELECT max(id) FROM iceml.studies))');
my $run3 = psql(q{SELECT iceml.train('bk', 'iceml_td.chips_1', 'bk_cnn', '{"epochs": 1, "batch_size": 16, "deploy": "always"}')},
	user => $alice);
ok($run3 > $max, "the next run id ($run3) follows the restored ones (up to $max)");
is(psql("SELECT iceml.wait($run3, '180 s')", user => $alice), 'succeeded', 'and trains in the restored database');
is(psql(q{SELECT count(*) FROM iceml.deployments WHERE name = 'bk'}), '3', 'deployed after the restored ones');
is(psql(q{SELECT iceml.deploy('bk', 'rollback') = (SELECT model_id FROM iceml.runs WHERE id = } . $run2 . ')', user => $alice),
	't', 'rollback follows the restored deployment chain');

$IcemlTap::db = 'postgres';
psql("DROP DATABASE $_") for ($src, $dst, @nodes);
psql("DROP ROLE $alice");
done_testing();
