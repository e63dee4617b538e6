# Studies run for real in background workers: a random search with two
# trials at once, the original pipeline's search over a statoil_cnn
# template, ASHA stopping weak trials early, an ablation study with an
# invalid component, cancelling a study, and another role seeing none of it.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $db = $IcemlTap::db = 'iceml_studies';
my %dana = (user => 'iceml_tap_dana');

psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql(q{
	CREATE EXTENSION iceml;
	DROP ROLE IF EXISTS iceml_tap_dana; DROP ROLE IF EXISTS iceml_tap_erin;
	CREATE ROLE iceml_tap_dana LOGIN IN ROLE iceml_user;
	CREATE ROLE iceml_tap_erin LOGIN IN ROLE iceml_user;
});
# icebergs have a bright centre, half of them dimmer: not trivially separable
psql(q{
	SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"int"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"is_iceberg","type":"smallint"}]', ARRAY['id'], validation => 'NONE');
	SELECT setseed(0.17);
	INSERT INTO iceml_fs.chips_1
	SELECT i, (SELECT array_agg(CASE WHEN i % 2 = 1 AND (j - 1) / 75 BETWEEN 33 AND 41 AND (j - 1) % 75 BETWEEN 33 AND 41
	                                 THEN -16 + (i % 4) * 3 + random()::real * 6 ELSE -24 + random()::real * 6 END) FROM generate_series(1, 5625) j),
	          (SELECT array_agg(-29 + random()::real * 3) FROM generate_series(1, 5625) j),
	          (i % 2)::smallint
	  FROM generate_series(1, 128) i;
	SELECT iceml.create_training_dataset('chips', 'iceml_fs.chips_1', 'is_iceberg', seed => 1);
}, %dana);

# ---- random search, two trials at once ---------------------------------
my $study = psql(q{SELECT iceml.tune('lr', 'iceml_td.chips_1', 'tiny_cnn',
	'{"learning_rate": {"type": "DOUBLE", "range": [0.0003, 0.03], "scale": "log"}, "batch_size": {"type": "DISCRETE", "values": [8, 16]}}',
	'random', trials => 4, parallel => 2, hyperparams => '{"epochs": 3}')}, %dana);
like($study, qr/^\d+$/, 'tune returns a study id');
is(psql("SELECT iceml.wait($study, '180 s')", %dana), 'succeeded', 'the random search succeeded');
is(psql("SELECT count(*) FILTER (WHERE status = 'succeeded') || '/' || count(*) FROM iceml.runs WHERE study_id = $study"),
	'4/4', 'four trials, each a run of the study');
# how many trials ran at once, from their start and end times
is(psql(qq{SELECT max((SELECT count(*) FROM iceml.runs b WHERE b.study_id = $study
	                     AND b.started_at <= a.started_at AND b.finished_at > a.started_at))
	         FROM iceml.runs a WHERE a.study_id = $study}), '2', 'two trials ran at once, never more');
is(psql(qq{SELECT s.best_run = (SELECT r.id FROM iceml.runs r JOIN iceml.models m ON m.id = r.model_id
	                             WHERE r.study_id = s.id ORDER BY (m.metrics->>'log_loss')::float8, r.id LIMIT 1)
	          AND s.best_model = (SELECT model_id FROM iceml.runs WHERE id = s.best_run)
	         FROM iceml.studies s WHERE s.id = $study}), 't', 'the study records the trial with the lowest validation log loss and its model');
is(psql(qq{SELECT count(DISTINCT hyperparams->'learning_rate') FROM iceml.runs WHERE study_id = $study}), '4',
	'each trial trained with its own learning rate');
# trials do not deploy one by one; the study deploys its best (deploy if_better)
is(psql(qq{SELECT string_agg(d.strategy || ':' || (d.model_id = s.best_model), ',')
	         FROM iceml.deployments d, iceml.studies s WHERE d.name = 'lr' AND s.id = $study}), 'if_better:true',
	'the study deployed its best trial, once');

# ---- the original pipeline's search: kernel, pool and dropout of the first two blocks
my $pipeline = psql(q{
	SELECT iceml.tune('pipeline', 'iceml_td.chips_1',
	    (SELECT jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(spec,
	        '{layers,0,kernel}', '"$kernel"'), '{layers,3,kernel}', '"$kernel"'),
	        '{layers,1,size}', '"$pool"'), '{layers,4,size}', '"$pool"'),
	        '{layers,2,rate}', '"$dropout"'), '{layers,5,rate}', '"$dropout"')::text
	       FROM iceml.architectures WHERE name = 'statoil_cnn'),
	    '{"kernel": {"type": "DISCRETE", "values": [3, 4]}, "pool": {"type": "DISCRETE", "values": [2, 3]},
	      "dropout": {"type": "DOUBLE", "range": [0.1, 0.5]}}',
	    'random', trials => 10, parallel => 2, hyperparams => '{"epochs": 1, "batch_size": 32}')}, %dana);
is(psql("SELECT iceml.wait($pipeline, '600 s')", %dana), 'succeeded', "the pipeline's 10-trial search on statoil_cnn succeeded");
is(psql(qq{SELECT count(*) FILTER (WHERE status = 'succeeded')
	              || ' ' || count(DISTINCT spec->'layers'->0->'kernel')
	              || ' ' || count(DISTINCT spec->'layers'->1->'size')
	              || ' ' || bool_and((spec->'layers'->2->>'rate')::float8 BETWEEN 0.1 AND 0.5
	                                 AND spec->'layers'->2->'rate' = spec->'layers'->5->'rate')
	         FROM iceml.runs WHERE study_id = $pipeline}), '10 2 2 true',
	'ten trials over both kernels and pools, dropout in range on both blocks');

# ---- ASHA: rungs at 1 and 3 epochs of a 9-epoch budget, one trial at a time
my $asha = psql(q{SELECT iceml.tune('asha', 'iceml_td.chips_1', 'tiny_cnn',
	'{"learning_rate": {"type": "DOUBLE", "range": [0.00001, 0.1], "scale": "log"}}',
	'asha', trials => 6, parallel => 1, hyperparams => '{"epochs": 9, "batch_size": 16, "asha_min_epochs": 1}')}, %dana);
is(psql("SELECT iceml.wait($asha, '300 s')", %dana), 'succeeded', 'the ASHA study succeeded');
my $stopped = psql(qq{SELECT count(*) FROM iceml.study_trials WHERE study = $asha AND status = 'stopped'});
cmp_ok($stopped, '>=', 1, "ASHA stopped weak trials early ($stopped of 6)");
is(psql(qq{SELECT bool_and(epochs_run IN (1, 3) AND model IS NULL) FROM iceml.study_trials
	         WHERE study = $asha AND status = 'stopped'}), 't', 'stopped trials ended at a rung and keep no model');
my $epochs = psql(qq{SELECT sum(epochs_run) FROM iceml.study_trials WHERE study = $asha});
cmp_ok($epochs, '<', 54, "ASHA trained $epochs epochs instead of 6 x 9 = 54");
is(psql(qq{SELECT best FROM iceml.study_trials WHERE study = $asha AND status = 'succeeded'
	         ORDER BY val_log_loss LIMIT 1}), 't', 'the best finished trial is the study\'s');

# ---- ablation ------------------------------------------------------------
my $abl = psql(q{SELECT iceml.ablation_study('ablate', 'iceml_td.chips_1', 'tiny_cnn',
	'{"layer_groups": ["dropout"], "layers": ["out"], "features": ["band_2"]}', '{"epochs": 2}', parallel => 2)}, %dana);
is(psql("SELECT iceml.wait($abl, '180 s')", %dana), 'succeeded', 'the ablation study succeeded');
is(psql(qq{SELECT string_agg(kind || ':' || coalesce(component, '-') || ':' || status, ' ' ORDER BY run)
	         FROM iceml.ablation_results WHERE study = $abl}),
	'baseline:-:succeeded layer_group:dropout:succeeded layer:out:failed feature:band_2:succeeded',
	'a baseline and one trial per component; the invalid one failed');
like(psql(qq{SELECT error FROM iceml.ablation_results WHERE study = $abl AND component = 'out'}),
	qr/last layer must be a dense layer with 1 unit/, 'the invalid component says why');
is(psql(qq{SELECT bool_and(abs(delta - (value - (SELECT value FROM iceml.ablation_results WHERE study = $abl AND kind = 'baseline'))) < 1e-12)
	              AND bool_and(value > 0)
	         FROM iceml.ablation_results WHERE study = $abl AND status = 'succeeded'}), 't',
	'each trial has its validation log loss and its delta from the baseline');
is(psql(q{SELECT count(*) FROM iceml.deployments WHERE name = 'ablate'}), '0', 'ablation trials deploy nothing');

# ---- cancel a study: every unfinished trial ends -------------------------
my $long = psql(q{SELECT iceml.tune('long', 'iceml_td.chips_1', 'tiny_cnn',
	'{"learning_rate": {"type": "DISCRETE", "values": [0.001, 0.002, 0.003]}}', 'grid', parallel => 1,
	hyperparams => '{"epochs": 200, "batch_size": 8}')}, %dana);
poll("SELECT count(*) FROM iceml.runs WHERE study_id = $long AND status = 'running' AND epoch >= 1", qr/^1$/, 60);
# ---- another role sees none of it, and cannot cancel it
is(psql(qq{SELECT (SELECT count(*) FROM iceml.studies) + (SELECT count(*) FROM iceml.study_trials)
	              + (SELECT count(*) FROM iceml.ablation_results)}, user => 'iceml_tap_erin'), '0',
	"another role sees no study, trial or ablation result of dana's");
my ($rc, $out) = psql("SELECT iceml.cancel($long)", user => 'iceml_tap_erin');
like($out, qr/does not exist/, 'and cannot cancel her study');
is(psql("SELECT iceml.cancel($long)", %dana), 't', 'dana cancels her study');
is(psql("SELECT iceml.wait($long, '60 s')", %dana), 'cancelled', 'the study is cancelled');
is(poll(qq{SELECT string_agg(status, ',' ORDER BY id) FROM iceml.runs WHERE study_id = $long}, qr/^cancelled,cancelled,cancelled$/, 60),
	'cancelled,cancelled,cancelled', 'the running trial stopped and the queued ones never started');

# why any trial failed, for the log
diag(psql(q{SELECT string_agg(format('run %s (%s): %s', id, trial, error), E'\n' ORDER BY id)
              FROM iceml.runs WHERE status = 'failed' AND trial <> 'layer:out'}));
psql("DROP DATABASE $db", db => 'postgres');
done_testing();
