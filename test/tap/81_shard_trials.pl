# A study's trials on the nodes: the test cluster is the coordinator, two
# more embedded clusters (trial_a, trial_b) are its nodes.  A grid search
# whose trials train on both nodes' workers, with epochs, models, the best
# trial and its deployment on the coordinator; a remote trial cancelled;
# a node stopped mid-study (its trials fail naming it, the others finish,
# the study finishes); the caller's rights decide where trials may run.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $repo = "$FindBin::Bin/../..";
my $cluster = "$repo/test/harness/cluster.sh";
my @nodes = ('trial_a', 'trial_b');

sub npsql { return psql_on(@_) }

my %conninfo = eval { start_nodes(@nodes) } or BAIL_OUT("node clusters did not start: $@");

my $db = $IcemlTap::db = 'iceml_trials';
psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql(q{
	CREATE EXTENSION iceml;
	CREATE EXTENSION postgres_fdw;
	DROP ROLE IF EXISTS iceml_tap_tess;
	CREATE ROLE iceml_tap_tess LOGIN IN ROLE iceml_user;
});
my %tess = (user => 'iceml_tap_tess');
is(psql("SELECT iceml.add_node('a', '$conninfo{trial_a}'); SELECT iceml.add_node('b', '$conninfo{trial_b}');"),
	"a\nb", 'two node clusters added');

psql(q{
	SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]', ARRAY['id']);
	INSERT INTO iceml_fs.chips_1 SELECT * FROM iceml.synthesize_statoil(128, 5);
	SELECT iceml.create_training_dataset('chips', 'iceml_fs.chips_1', 'is_iceberg', seed => 1);
}, %tess);
my $grid = q{'{"learning_rate": {"type": "DISCRETE", "values": [0.001, 0.002, 0.003, 0.004]}}'};
my $two = q{'{"learning_rate": {"type": "DISCRETE", "values": [0.001, 0.002]}}'};

# ---- whose rights: USAGE on the node's foreign server ----------------------
my ($rc, $out) = psql("SELECT iceml.tune('dist', 'iceml_td.chips_1', 'tiny_cnn', $grid, 'grid', parallel => 2, hyperparams => '{\"epochs\": 3}', nodes => ARRAY['a', 'b'])", %tess);
like($out, qr/ERROR:  permission denied to run trials on node "a"/, 'without USAGE on the node\'s server a role places no trials there');
is(psql('SELECT count(*) FROM iceml.studies'), '0', 'and nothing is queued');
psql('GRANT USAGE ON FOREIGN SERVER iceml_node_a, iceml_node_b TO iceml_tap_tess');

# ---- a study whose trials train on both nodes ---------------------------------
my $study = psql("SELECT iceml.tune('dist', 'iceml_td.chips_1', 'tiny_cnn', $grid, 'grid', parallel => 2, hyperparams => '{\"epochs\": 3}', nodes => ARRAY['a', 'b'])", %tess);
like($study, qr/^\d+$/, 'tune(..., nodes => ...) returns a study id');
is(psql("SELECT iceml.wait($study, '300 s')", %tess), 'succeeded', 'the distributed study succeeded');
is(psql("SELECT string_agg(t.node || ':' || r.status, ' ' ORDER BY r.id) FROM iceml.runs r JOIN iceml.remote_trials t ON t.run_id = r.id WHERE r.study_id = $study", %tess),
	'a:succeeded b:succeeded a:succeeded b:succeeded', 'four trials, placed round robin on the two nodes, all succeeded');
is(psql("SELECT count(*) FROM iceml.remote_trials WHERE study_id = $study AND node_run IS NOT NULL AND queued_at IS NOT NULL"), '4',
	'each was queued as a run on its node');
is(psql("SELECT count(*) || '/' || count(DISTINCT run_id) FROM iceml.run_metrics WHERE run_id IN (SELECT id FROM iceml.runs WHERE study_id = $study) AND val_loss IS NOT NULL", %tess),
	'12/4', 'their epochs are logged on the coordinator, three per trial with validation metrics');
is(psql("SELECT string_agg(DISTINCT status || ':' || epoch || '/' || epochs || ':' || percent, ',') FROM iceml.progress WHERE study = $study", %tess),
	'succeeded:3/3:100.0', 'progress on the coordinator shows them');
is(psql("SELECT count(*) FROM iceml.runs r JOIN iceml.models m ON m.id = r.model_id AND m.run_id = r.id WHERE r.study_id = $study AND octet_length(m.weights) > 1000 AND m.metrics ? 'log_loss' AND m.owner = 'iceml_tap_tess'"),
	'4', 'each trial\'s model is in the coordinator\'s catalog, with its weights and metrics, owned by the caller');
is(psql(qq{SELECT s.best_run = (SELECT r.id FROM iceml.runs r JOIN iceml.models m ON m.id = r.model_id
	                             WHERE r.study_id = s.id ORDER BY (m.metrics->>'log_loss')::float8, r.id LIMIT 1)
	          AND s.best_model = (SELECT model_id FROM iceml.runs WHERE id = s.best_run)
	         FROM iceml.studies s WHERE s.id = $study}), 't', 'the study records its best trial as for local trials');
is(psql(qq{SELECT string_agg(d.strategy || ':' || (d.model_id = s.best_model), ',') FROM iceml.deployments d, iceml.studies s
	         WHERE d.name = 'dist' AND s.id = $study}), 'if_better:true', 'and deploys it');
is(psql(q{SELECT count(*) FILTER (WHERE p > 0 AND p < 1) FROM (SELECT iceml_predict('dist', band_1, band_2, inc_angle) p FROM iceml_fs.chips_1 LIMIT 5) q}, %tess),
	'5', 'the model trained on a node predicts on the coordinator');
for my $n (@nodes) {
	like(poll_on($n, q{SELECT n_tup_ins >= 6 FROM pg_stat_user_tables WHERE relid = 'iceml.run_metrics'::regclass}, qr/^t$/, 20), qr/^t$/,
		"${n}'s own workers trained trials (their epochs were written there)");
	is(npsql($n, q{SELECT count(*) || '/' || (SELECT count(*) FROM iceml.models) || '/' || (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = 'iceml_td')
	               FROM iceml.runs}), '0/0/0', "$n forgot the trials: no runs, models or dataset copy left");
}

# ---- a pipeline's tune step places its trials on the nodes it names -----------
my $pipe = psql(q{SELECT iceml.run_pipeline('pn', '{"training_dataset": {"table": "iceml_td.chips_1"},
	"tune": {"architecture": "tiny_cnn", "strategy": "grid", "parallel": 2, "nodes": ["b"], "hyperparams": {"epochs": 2},
	         "search_space": {"learning_rate": {"type": "DISCRETE", "values": [0.001, 0.002]}}}, "deploy": "never"}')}, %tess);
like($pipe, qr/^\d+$/, 'a pipeline whose tune step names a node is queued');
like(psql("SELECT iceml.wait($pipe, '300 s')", %tess), qr/succeeded$/, 'and succeeds');
is(psql("SELECT (s.detail->'nodes')::text || ' ' || string_agg(t.node || ':' || r.status, ' ' ORDER BY r.id)
           FROM iceml.pipeline_steps s JOIN iceml.runs r ON r.study_id = (s.detail->>'study')::bigint
           JOIN iceml.remote_trials t ON t.run_id = r.id
          WHERE s.run_id = $pipe AND s.step = 'tune' GROUP BY s.detail", %tess),
	'["b"] b:succeeded b:succeeded', 'its trials trained on that node, and the step says where');
like(psql("SELECT (detail->>'log_loss')::float8 > 0 AND status = 'succeeded' FROM iceml.pipeline_steps WHERE run_id = $pipe AND step = 'evaluate'", %tess),
	qr/^t$/, 'the best trial\'s model, trained on the node, is evaluated on the coordinator');

# ---- ASHA decides on the coordinator and stops trials on their nodes -------------
my $asha = psql(q{SELECT iceml.tune('asha', 'iceml_td.chips_1', 'tiny_cnn',
	'{"learning_rate": {"type": "DOUBLE", "range": [0.00001, 0.03], "scale": "log"}}',
	'asha', trials => 6, parallel => 2, hyperparams => '{"epochs": 9, "batch_size": 16, "asha_min_epochs": 1}', nodes => ARRAY['a', 'b'])}, %tess);
is(psql("SELECT iceml.wait($asha, '300 s')", %tess), 'succeeded', 'an ASHA study on the nodes succeeded');
my $stopped = psql(qq{SELECT count(*) FROM iceml.study_trials WHERE study = $asha AND status = 'stopped'});
cmp_ok($stopped, '>=', 1, "ASHA stopped trials on their nodes ($stopped of 6)");
is(psql(qq{SELECT string_agg(DISTINCT epochs_run::text, ',') FROM iceml.study_trials WHERE study = $asha AND status = 'stopped' AND epochs_run NOT IN (1, 3)}), '',
	'each stopped trial ended at its rung (epoch 1 or 3), as a local trial does: it waited there on its node for the decision');
is(psql(qq{SELECT count(*) FROM iceml.study_trials WHERE study = $asha AND status = 'succeeded' AND epochs_run <> 9}), '0',
	'the trials let go on ran all 9 epochs');
is(psql(qq{SELECT bool_and(model IS NULL) FROM iceml.study_trials WHERE study = $asha AND status = 'stopped'}), 't',
	'stopped trials keep no model');
is(psql(qq{SELECT count(*) FROM iceml.study_trials WHERE study = $asha AND status NOT IN ('succeeded', 'stopped')}), '0',
	'every other trial succeeded');

# ---- cancel a remote trial ------------------------------------------------------
my $long = psql("SELECT iceml.tune('cx', 'iceml_td.chips_1', 'tiny_cnn', $two, 'grid', parallel => 2, hyperparams => '{\"epochs\": 500}', nodes => ARRAY['a', 'b'])", %tess);
is(poll("SELECT count(*) FROM iceml.progress WHERE study = $long AND status = 'running' AND epoch >= 1", qr/^2$/, 120), '2',
	'both trials train on their nodes, their epochs seen on the coordinator');
my $on_a = psql("SELECT t.run_id FROM iceml.remote_trials t WHERE t.study_id = $long AND t.node = 'a'");
is(psql("SELECT iceml.cancel($on_a)", %tess), 't', 'cancel a trial running on node a');
is(psql("SELECT iceml.wait($on_a, '60 s')", %tess), 'cancelled', 'it ends cancelled on the coordinator');
is(poll_on('trial_a', q{SELECT count(*) FROM iceml.runs}, qr/^0$/, 30), '0', 'and on node a it was cancelled and forgotten');
is(psql("SELECT status FROM iceml.runs r JOIN iceml.remote_trials t ON t.run_id = r.id WHERE t.study_id = $long AND t.node = 'b'"),
	'running', 'the trial on node b goes on');
is(psql("SELECT iceml.cancel($long)", %tess), 't', 'cancel the study');
is(psql("SELECT iceml.wait($long, '60 s')", %tess), 'cancelled', 'the study ends cancelled');
is(poll_on('trial_b', q{SELECT count(*) FROM iceml.runs}, qr/^0$/, 30), '0', 'its trial on node b was cancelled there too');

# ---- a node that goes away mid-study ------------------------------------------
my $nd = psql("SELECT iceml.tune('nd', 'iceml_td.chips_1', 'tiny_cnn', $grid, 'grid', parallel => 2, hyperparams => '{\"epochs\": 25}', nodes => ARRAY['a', 'b'])", %tess);
is(poll("SELECT count(*) FROM iceml.progress p JOIN iceml.remote_trials t ON t.run_id = p.run WHERE p.study = $nd AND t.node = 'b' AND p.epoch >= 1", qr/^1$/, 120), '1',
	'a trial trains on node b');
system("$cluster stop trial_b >/dev/null");
is(psql("SELECT iceml.wait($nd, '300 s')", %tess), 'succeeded', 'the study still finishes');
is(psql("SELECT string_agg(t.node || ':' || r.status, ' ' ORDER BY r.id) FROM iceml.runs r JOIN iceml.remote_trials t ON t.run_id = r.id WHERE r.study_id = $nd", %tess),
	'a:succeeded b:failed a:succeeded b:failed', 'the trials on node b failed, those on node a finished');
my $errors = psql("SELECT string_agg(r.error, E'\\n' ORDER BY r.id) FROM iceml.runs r JOIN iceml.remote_trials t ON t.run_id = r.id WHERE r.study_id = $nd AND t.node = 'b'", %tess);
my @errors = split /\n/, $errors;
is(scalar(grep { /^node "b": / || /could not connect to node "b"/ } @errors), 2, 'each failed trial names node b and the reason') or diag($errors);
is(psql("SELECT (SELECT node FROM iceml.remote_trials WHERE run_id = s.best_run) FROM iceml.studies s WHERE s.id = $nd"), 'a',
	'the best trial is one that finished');
system("$cluster start trial_b >/dev/null") == 0 or BAIL_OUT('node b did not restart');
like(npsql('trial_b', q{SELECT count(*) || ' ' || (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = 'iceml_td') FROM iceml.runs}),
	qr/^[12] 1$/, 'node b, back, still holds what the failed trials left: their runs and the dataset copy');
# resumed: node b still has the run, its checkpoints and the dataset copy
my $failed_b = psql("SELECT t.run_id FROM iceml.remote_trials t WHERE t.study_id = $nd AND t.node = 'b' AND t.node_run IS NOT NULL ORDER BY t.run_id LIMIT 1");
my $node_run = psql("SELECT node_run FROM iceml.remote_trials WHERE run_id = $failed_b");
my $done_before = npsql('trial_b', "SELECT max(epoch) FROM iceml.run_metrics WHERE run_id = $node_run");
like($done_before, qr/^\d+$/, "node b had trained $done_before epochs of it before it stopped");
is(psql("SELECT iceml.resume($failed_b)", %tess), $failed_b, 'a trial that failed with node b is resumed');
is(psql("SELECT iceml.wait($failed_b, '300 s')", %tess), 'succeeded', 'and succeeds');
is(psql("SELECT node_run FROM iceml.remote_trials WHERE run_id = $failed_b"), $node_run,
	'as the same run on node b, from its checkpoint there, not queued afresh');
is(psql("SELECT count(*) || ' ' || max(epoch) FROM iceml.run_metrics WHERE run_id = $failed_b", %tess), '25 25',
	'the coordinator has all its 25 epochs');
my $next = psql("SELECT iceml.tune('nx', 'iceml_td.chips_1', 'tiny_cnn', $two, 'grid', parallel => 1, hyperparams => '{\"epochs\": 1}', nodes => ARRAY['b'])", %tess);
is(psql("SELECT iceml.wait($next, '300 s')", %tess), 'succeeded', 'the next study of the same role on node b succeeds');
is(npsql('trial_b', q{SELECT count(*) || ' ' || (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = 'iceml_td') FROM iceml.runs}),
	'0 0', 'and its trial had node b forget the leftovers first: no run or copy left there');
is(psql("SELECT count(*) FILTER (WHERE forgotten_at IS NULL) || '/' || count(*) FROM iceml.remote_trials WHERE node = 'b' AND node_run IS NOT NULL"),
	'0/' . psql("SELECT count(*) FROM iceml.remote_trials WHERE node = 'b' AND node_run IS NOT NULL"), 'the coordinator records every trial on b as forgotten there');

# ---- cleanup ---------------------------------------------------------------------
is(psql(q{SELECT iceml.drop_node('a'); SELECT iceml.drop_node('b'); SELECT count(*) FROM iceml.nodes}), "\n\n0", 'nodes dropped');
system("$cluster stop @nodes >/dev/null");
done_testing();

sub poll_on {
	my ($n, $sql, $want, $secs) = @_;
	my $got = '';
	for (1 .. $secs * 5) {
		$got = npsql($n, $sql);
		return $got if $got =~ $want;
		select(undef, undef, undef, 0.2);
	}
	return $got;
}
