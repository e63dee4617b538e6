# The incidence angle as a side input (issue 16), end to end: a training
# worker reads the dataset's inc_angle (NULL is a missing angle), stores the
# angle's standardisation with the model, and iceml_predict, evaluate and
# what_if pass the angle they receive.  The chips are pure noise and the
# label depends only on the angle (missing: a ship; above 38 degrees: an
# iceberg), so only a model that uses the angle can score.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $db = $IcemlTap::db = 'iceml_side';

psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql(q{
	SET client_min_messages = warning;
	CREATE EXTENSION iceml;
	DROP ROLE IF EXISTS iceml_tap_side;
	CREATE ROLE iceml_tap_side LOGIN IN ROLE iceml_user;
});
psql(q{
	SELECT iceml.create_feature_group('angles', '[{"name":"id","type":"int"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]', ARRAY['id'], validation => 'NONE');
	SELECT setseed(0.17);
	INSERT INTO iceml_fs.angles_1 (id, band_1, band_2, inc_angle)
	SELECT i, (SELECT array_agg(-24 + random()::real * 3) FROM generate_series(1, 5625) j),
	          (SELECT array_agg(-29 + random()::real * 2) FROM generate_series(1, 5625) j),
	          CASE WHEN i % 5 = 0 THEN NULL ELSE 30 + 16 * random()::real END
	  FROM generate_series(1, 200) i;
	UPDATE iceml_fs.angles_1 SET is_iceberg = CASE WHEN inc_angle > 38 THEN 1 ELSE 0 END;
	SELECT iceml.create_training_dataset('angles', 'iceml_fs.angles_1', 'is_iceberg', seed => 1);
	SELECT iceml.create_architecture('angle_net', '{"input": [3, 75, 75], "layers": [
	    {"type": "conv2d", "filters": 4, "kernel": 5, "stride": 5, "activation": "relu"},
	    {"type": "gap"}, {"type": "side", "name": "angle", "inputs": ["inc_angle"]},
	    {"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 1}]}');
}, user => 'iceml_tap_side');

my $run = psql(q{SELECT iceml.train('side', 'iceml_td.angles_1', 'angle_net',
                 '{"epochs": 30, "batch_size": 16, "learning_rate": 0.01}')}, user => 'iceml_tap_side');
like($run, qr/^\d+$/, 'a run with the angle as a side input is queued');
is(psql("SELECT iceml.wait($run, '300 s')", user => 'iceml_tap_side'), 'succeeded', 'it trains');

# the angle's standardisation travels with the model: mean and std of the
# present training angles (30 to 46 degrees, uniform: mean ~38, std ~4.6)
my ($mean, $std) = split /\|/, psql(qq{SELECT m.normalisation->'side'->'inc_angle'->>'mean', m.normalisation->'side'->'inc_angle'->>'std'
                                      FROM iceml.models m JOIN iceml.runs r ON r.model_id = m.id WHERE r.id = $run});
ok(defined $std && $mean > 36 && $mean < 40 && $std > 3.5 && $std < 5.5,
	"the model keeps the training angles' mean and std ($mean, $std)");

# evaluate passes each row's angle: only the angle explains the labels
my $acc = psql(q{SELECT (iceml.evaluate('side', 'iceml_td.angles_1', 'test')->>'accuracy')::float8}, user => 'iceml_tap_side');
cmp_ok($acc, '>=', 0.9, "evaluate with the dataset's angles: accuracy $acc");

# iceml_predict: the same chip at a steep angle, a shallow one and none
my ($high, $low, $none) = split /\|/, psql(q{
	SELECT round(iceml_predict('side', band_1, band_2, 45)::numeric, 3),
	       round(iceml_predict('side', band_1, band_2, 31)::numeric, 3),
	       round(iceml_predict('side', band_1, band_2)::numeric, 3)
	  FROM iceml_fs.angles_1 WHERE id = 1}, user => 'iceml_tap_side');
cmp_ok($high, '>', 0.5, "iceml_predict at 45 degrees: an iceberg ($high)");
cmp_ok($low, '<', 0.5, "at 31 degrees: a ship ($low)");
cmp_ok($none, '<', 0.5, "without an angle: a ship, as the training data's missing angles ($none)");

# the batched paths pass each chip's angle: predict_table (the relation's
# inc_angle column) and predict_batch (an array of angles) give iceml_predict's
# values, to float rounding
is(psql(q{
	SELECT count(*) FILTER (WHERE abs(t.probability - iceml_predict('side', a.band_1, a.band_2, a.inc_angle)) > 1e-5)
	       || ' of ' || count(*)
	  FROM iceml.predict_table('side', 'iceml_fs.angles_1') t JOIN iceml_fs.angles_1 a ON a.id::text = t.key},
	user => 'iceml_tap_side'), '0 of 200', 'predict_table passes each row\'s angle (NULL as missing)');
is(psql(q{
	WITH c AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(band_1 ORDER BY id) AS b1,
	                  array_agg(band_2 ORDER BY id) AS b2, array_agg(inc_angle ORDER BY id) AS ang
	             FROM iceml_fs.angles_1 WHERE id <= 20)
	SELECT count(*) FILTER (WHERE abs(p - iceml_predict('side', a.band_1, a.band_2, a.inc_angle)) > 1e-5)
	  FROM c CROSS JOIN LATERAL unnest(iceml.predict_batch('side', c.b1, c.b2, c.ang)) WITH ORDINALITY u(p, k)
	  JOIN iceml_fs.angles_1 a ON a.id = c.ids[u.k]}, user => 'iceml_tap_side'), '0',
	'predict_batch passes its angles');
# test-time augmentation and an ensemble: every view and member gets the angle
my $model = psql(qq{SELECT model_id FROM iceml.runs WHERE id = $run});
psql(qq{SELECT iceml.deploy_ensemble('side_ens', ARRAY[$model], tta => true)}, user => 'iceml_tap_side');
my ($eh, $el) = split /\|/, psql(q{
	SELECT round(iceml_predict('side_ens', band_1, band_2, 45)::numeric, 3),
	       round(iceml_predict('side_ens', band_1, band_2, 31)::numeric, 3)
	  FROM iceml_fs.angles_1 WHERE id = 1}, user => 'iceml_tap_side');
ok($eh > 0.5 && $el < 0.5, "an augmented ensemble of the model still follows the angle ($eh at 45, $el at 31 degrees)");
is(psql(q{
	SELECT count(*) FILTER (WHERE abs(t.probability - iceml_predict('side_ens', a.band_1, a.band_2, a.inc_angle)) > 1e-5)
	  FROM iceml.predict_table('side_ens', 'iceml_fs.angles_1') t JOIN iceml_fs.angles_1 a ON a.id::text = t.key},
	user => 'iceml_tap_side'), '0', 'and scores tables in batches as row by row');
# what_if with another angle changes what the model is given
my $delta = psql(q{
	SELECT round((iceml.what_if('side', band_1, band_2, 31, '{"op": "inc_angle", "to": 45}')->>'delta')::numeric, 3)
	  FROM iceml_fs.angles_1 WHERE id = 1}, user => 'iceml_tap_side');
cmp_ok($delta, '>', 0.3, "what_if from 31 to 45 degrees raises the prediction by $delta");

# the recipe is the architecture's name: recipe_cnn brings its settings,
# which the caller's hyperparameters override one by one (rolled back: no run)
is(psql(q{
	BEGIN;
	SELECT iceml.train('recipe', 'iceml_td.angles_1', 'recipe_cnn', '{"epochs": 4}') AS id \gset
	SELECT concat_ws(' ', hyperparams->>'epochs', hyperparams->>'augment', hyperparams->>'learning_rate',
	                 hyperparams->>'lr_schedule', hyperparams->>'warmup_epochs', hyperparams->>'weight_decay')
	  FROM iceml.runs WHERE id = :id;
	ROLLBACK;}, user => 'iceml_tap_side'), '4 true 0.002 cosine 1 0.01',
	'recipe_cnn trains with the recipe unless told otherwise');
is(psql(q{
	BEGIN;
	SELECT iceml.train('plain', 'iceml_td.angles_1', 'tiny_cnn') AS id \gset
	SELECT concat_ws(' ', hyperparams->>'augment', hyperparams->>'lr_schedule') FROM iceml.runs WHERE id = :id;
	ROLLBACK;}, user => 'iceml_tap_side'), 'false constant', 'other architectures keep the plain defaults');

psql("DROP DATABASE $db", db => 'postgres');
done_testing();
