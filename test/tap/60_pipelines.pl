# Pipelines in background workers, seen from outside: run_pipeline returns
# at once, the steps run in order as the caller and are recorded, a re-run
# of the same config duplicates nothing, a failing step is recorded with
# its SQLSTATE, cancel stops a pipeline and its training run, tune stands
# for train, retrain_on_drift skips training without a drift verdict, and
# roles see and touch only their own pipeline runs.
#
# Runs against the embedded test cluster, in a database of its own.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;
use Cwd qw(abs_path);

my $db = $IcemlTap::db = 'iceml_pipe';

psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql(q{
	SET client_min_messages = warning;
	CREATE EXTENSION iceml;
	DROP ROLE IF EXISTS iceml_tap_pia; DROP ROLE IF EXISTS iceml_tap_pete;
	CREATE ROLE iceml_tap_pia LOGIN IN ROLE iceml_user;
	CREATE ROLE iceml_tap_pete LOGIN IN ROLE iceml_user;
});

my $config = q{'{"feature_group": {"name": "pchips", "expectations": [{"name": "angle_range", "features": ["inc_angle"], "rules": [{"name": "HAS_MAX", "level": "ERROR", "max": 50}]}]},
	"ingest": {"synthetic": {"n": 200, "seed": 3, "bad": 3}}, "on_error": "quarantine",
	"training_dataset": {"splits": {"train": 0.7, "validation": 0.15, "test": 0.15}, "seed": 1},
	"train": {"architecture": "tiny_cnn", "hyperparams": {"epochs": 2, "batch_size": 16, "lr_schedule": "cosine", "warmup_epochs": 1}}}'};

# ---- a whole pipeline: the call returns at once, the worker runs the steps
my $out = psql(qq{
	BEGIN;
	SELECT iceml.run_pipeline('pp', $config);
	SELECT status FROM iceml.pipeline_runs ORDER BY id DESC LIMIT 1;
	COMMIT;
}, user => 'iceml_tap_pia');
my ($id, $status) = split /\n/, $out;
is($status, 'queued', 'run_pipeline returns at once, the run queued until commit');
my ($rc, $waited) = psql("SET client_min_messages = notice; SELECT iceml.wait($id, '180 s')", user => 'iceml_tap_pia');
like($waited, qr/succeeded$/, 'the pipeline succeeded');
like($waited, qr/pipeline $id: train \(run \d+\): epoch 2\/2: train_loss [\d.]+, val_loss [\d.]+, val_acc [\d.]+, eta/,
	'wait reports the training epochs with an estimate of the time left');
like($waited, qr/pipeline $id: step deploy succeeded/, 'and each step as it ends');
is(psql("SELECT string_agg(step || ' ' || status, ', ' ORDER BY ordinal) FROM iceml.pipeline_steps WHERE run_id = $id"),
	'ingest succeeded, validate succeeded, statistics succeeded, training_dataset succeeded, train succeeded, evaluate succeeded, deploy succeeded',
	'every step succeeded, in order');
is(psql("SELECT rows_in || ' ' || \"rows\" || ' ' || (detail->>'quarantined') FROM iceml.pipeline_steps WHERE run_id = $id AND step = 'ingest'"),
	'203 200 3', 'ingest: 203 records read, 200 inserted, the 3 bad ones quarantined');
is(psql("SELECT count(*) FROM iceml.quarantine WHERE feature_group = 'iceml_fs.pchips_1'::regclass", user => 'iceml_tap_pia'),
	'3', 'the bad records are in the quarantine');
like(psql("SELECT detail->>'quarantine_reasons' FROM iceml.pipeline_steps WHERE run_id = $id AND step = 'validate'"),
	qr/angle_range/, 'validate names the expectation that refused a record');
is(psql("SELECT owner || ' ' || (SELECT relowner::regrole FROM pg_class WHERE oid = 'iceml_fs.pchips_1'::regclass) FROM iceml.pipeline_runs WHERE id = $id"),
	'iceml_tap_pia iceml_tap_pia', 'the run and the feature group belong to the caller');
my $model = psql("SELECT detail->>'model_id' FROM iceml.pipeline_steps WHERE run_id = $id AND step = 'train'");
like($model, qr/^\d+$/, 'the train step records its model');
is(psql("SELECT model_id FROM iceml.deployed_models WHERE name = 'pp'"), $model,
	'deploy (if_better, nothing deployed before) deployed it under the pipeline name');
like(psql("SELECT (detail->>'log_loss')::float8 > 0 AND (detail->>'n')::int = 30 FROM iceml.pipeline_steps WHERE run_id = $id AND step = 'evaluate'"),
	qr/^t$/, 'evaluate measured the test split');

# ---- the same config again: nothing duplicated, nothing retrained --------
$out = psql(qq{SELECT iceml.run_pipeline('pp', $config)}, user => 'iceml_tap_pia');
is(psql("SELECT iceml.wait($out, '180 s')", user => 'iceml_tap_pia'), 'succeeded', 'the re-run succeeded');
is(psql("SELECT count(*) FROM iceml_fs.pchips_1", user => 'iceml_tap_pia'), '200', 'no feature row duplicated');
is(psql("SELECT count(*) FROM iceml.training_datasets WHERE name = 'pp'"), '1', 'no new training dataset version for unchanged data');
is(psql("SELECT string_agg(step || ' ' || status, ', ' ORDER BY ordinal) FROM iceml.pipeline_steps WHERE run_id = $out AND step IN ('statistics', 'train', 'deploy')"),
	'statistics skipped, train succeeded, deploy skipped', 'statistics current, model reused, nothing to deploy');
is(psql("SELECT (detail->>'reused') || ' ' || (detail->>'model_id') FROM iceml.pipeline_steps WHERE run_id = $out AND step = 'train'"),
	"true $model", 'the train step reused the first model');
is(psql("SELECT count(*) FROM iceml.runs WHERE experiment = 'pp'"), '1', 'one training run in all');

# ---- a server file: loaded once, skipped while the group is unchanged -----
my $file = abs_path("$FindBin::Bin/../data/statoil_small.json");
my $fcfg = qq{'{"feature_group": {"name": "pfile"}, "ingest": {"path": "$file"}, "training_dataset": {"splits": {"train": 0.5, "test": 0.5}},
	"train": {"architecture": "tiny_cnn", "hyperparams": {"epochs": 1}}, "deploy": "never"}'};
my $f1 = psql("SELECT iceml.run_pipeline('pfile', $fcfg)");
psql("SELECT iceml.wait($f1, '60 s')");
my $rows = psql("SELECT count(*) FROM iceml_fs.pfile_1");
my $f2 = psql("SELECT iceml.run_pipeline('pfile', $fcfg)");
psql("SELECT iceml.wait($f2, '60 s')");
like(psql("SELECT status || ': ' || (detail->>'reason') FROM iceml.pipeline_steps WHERE run_id = $f2 AND step = 'ingest'"),
	qr/^skipped: pipeline run $f1 loaded the same source/, 'the same file into the unchanged group is not loaded again');
is(psql("SELECT count(*) FROM iceml_fs.pfile_1"), $rows, 'no row duplicated or quarantined as a duplicate');

# ---- a failing step: recorded with its SQLSTATE, the rest skipped --------
$out = psql(q{SELECT iceml.run_pipeline('pbad', '{"feature_group": {"name": "pbad"},
	"ingest": {"synthetic": {"n": 20, "seed": 5, "bad": 1}}, "on_error": "abort",
	"train": {"architecture": "tiny_cnn", "hyperparams": {"epochs": 1}}}')}, user => 'iceml_tap_pia');
is(psql("SELECT iceml.wait($out, '60 s')", user => 'iceml_tap_pia'), 'failed', 'a bad record with on_error abort fails the run');
like(psql("SELECT status || ' ' || sqlstate || ' ' || error FROM iceml.pipeline_steps WHERE run_id = $out AND step = 'ingest'"),
	qr/^failed 22P02 invalid Statoil record 0 \(id "bad_5_0"\): "band_1" has 100 values/, 'the ingest step failed with its SQLSTATE and message');
is(psql("SELECT string_agg(DISTINCT status, ',') FROM iceml.pipeline_steps WHERE run_id = $out AND step <> 'ingest'"),
	'skipped', 'the later steps are skipped');
like(psql("SELECT error FROM iceml.pipeline_runs WHERE id = $out"), qr/^step ingest failed: .* \(SQLSTATE 22P02\)$/,
	'the run says which step failed and why');
is(psql("SELECT to_regclass('iceml_fs.pbad_1') IS NULL AND NOT EXISTS (SELECT FROM iceml.feature_groups WHERE name = 'pbad')"), 't',
	'nothing half-written: the failed step, group creation included, was rolled back');

# ---- roles: each sees and touches its own pipeline runs only ------------
is(psql("SELECT count(*) FROM iceml.pipeline_runs", user => 'iceml_tap_pete'), '0', 'pete sees none of pia\'s pipeline runs');
is(psql("SELECT count(*) FROM iceml.pipeline_steps", user => 'iceml_tap_pete'), '0', 'nor their steps');
($rc, $out) = psql("SELECT iceml.cancel($id)", user => 'iceml_tap_pete');
like($out, qr/does not exist/, 'pete cannot cancel pia\'s pipeline run');
($rc, $out) = psql("UPDATE iceml.pipeline_runs SET status = 'queued'", user => 'iceml_tap_pia');
like($out, qr/permission denied/, 'pia cannot write the catalog herself');

# ---- cancel: the pipeline stops and so does its training run -------------
my $long = psql(q{SELECT iceml.run_pipeline('pp_long', '{"training_dataset": {"table": "iceml_td.pp_1"},
	"train": {"architecture": "tiny_cnn", "hyperparams": {"epochs": 200, "batch_size": 8}}}')}, user => 'iceml_tap_pia');
like(poll("SELECT status FROM iceml.pipeline_steps WHERE run_id = $long AND step = 'train'", qr/running/, 60),
	qr/running/, 'the long pipeline is training');
is(psql("SELECT iceml.cancel($long)", user => 'iceml_tap_pia'), 't', 'cancel asks it to stop');
is(psql("SELECT iceml.wait($long, '60 s')", user => 'iceml_tap_pia'), 'cancelled', 'the pipeline ends cancelled');
is(psql("SELECT r.status FROM iceml.runs r, iceml.pipeline_steps s WHERE s.run_id = $long AND s.step = 'train' AND r.id = (s.detail->>'run')::bigint"),
	'cancelled', 'and so does its training run');

# ---- tune instead of train, on an existing training dataset -------------
$out = psql(q{SELECT iceml.run_pipeline('pp_tune', '{"training_dataset": {"table": "iceml_td.pp_1"},
	"tune": {"architecture": "tiny_cnn", "strategy": "grid", "parallel": 2,
	         "search_space": {"learning_rate": {"type": "DISCRETE", "values": [0.001, 0.003]}},
	         "hyperparams": {"epochs": 1}}, "deploy": "never"}')}, user => 'iceml_tap_pia');
is(psql("SELECT iceml.wait($out, '180 s')", user => 'iceml_tap_pia'), 'succeeded', 'a tuning pipeline succeeded');
like(psql("SELECT (detail->>'study') || ' ' || (detail->>'model_id') FROM iceml.pipeline_steps WHERE run_id = $out AND step = 'tune'"),
	qr/^\d+ \d+$/, 'the tune step records its study and the best model');
is(psql("SELECT string_agg(step || ' ' || status, ', ' ORDER BY ordinal) FROM iceml.pipeline_steps WHERE run_id = $out AND step IN ('ingest', 'training_dataset', 'deploy')"),
	'ingest skipped, training_dataset skipped, deploy skipped', 'the given dataset skips the steps before it; deploy never');

# ---- retrain_on_drift: no verdict on a handful of calls, no training -----
$out = psql(q{SELECT iceml.run_pipeline('pp', '{"training_dataset": {"table": "iceml_td.pp_1"},
	"train": {"architecture": "tiny_cnn", "hyperparams": {"epochs": 3}},
	"retrain_on_drift": {"model": "pp", "psi_threshold": 0.2, "min_samples": 500}}')}, user => 'iceml_tap_pia');
is(psql("SELECT iceml.wait($out, '60 s')", user => 'iceml_tap_pia'), 'succeeded', 'a drift-conditional pipeline succeeded');
like(psql("SELECT (detail->>'decision') || ': ' || (detail->>'reason') FROM iceml.pipeline_steps WHERE run_id = $out AND step = 'drift_check'"),
	qr/^skip: 0 logged calls .* fewer than min_samples 500/, 'drift_check decided not to retrain, and why');
is(psql("SELECT string_agg(step || ' ' || status, ', ' ORDER BY ordinal) FROM iceml.pipeline_steps WHERE run_id = $out AND step IN ('train', 'evaluate', 'deploy')"),
	'train skipped, evaluate skipped, deploy skipped', 'so nothing was trained or deployed');

# ---- ... and drift on enough calls: it retrains ----------------------------
# brighter band_1 (+6 dB) on every chip of the dataset: 200 logged calls
# (iceml.log_inferences is a superuser's setting; the calls are pia's)
psql(q{
	SET iceml.log_inferences = 1;
	SET ROLE iceml_tap_pia;
	SELECT count(iceml_predict('pp', ARRAY(SELECT x + 6 FROM unnest(band_1) x)::real[], band_2)) FROM iceml_td.pp_1;
});
is(poll("SELECT count(*) FROM iceml.inference_log WHERE name = 'pp'", qr/^200$/, 30), '200', 'the monitor worker logged the calls');
# what is deployed under 'pp' now serves with test-time augmentation: the
# deploy step must weigh that, not the bare model
psql("SELECT iceml.deploy('pp', $model, tta => true)", user => 'iceml_tap_pia');
my $served = psql("SELECT round((iceml.evaluate('pp', 'iceml_td.pp_1', 'test')->>'log_loss')::numeric, 6)", user => 'iceml_tap_pia');
my $bare = psql("SELECT round((iceml.evaluate($model, 'iceml_td.pp_1', 'test')->>'log_loss')::numeric, 6)", user => 'iceml_tap_pia');
isnt($served, $bare, "evaluate by id measures the bare model ($bare), by name the deployment as it serves ($served)");
$out = psql(q{SELECT iceml.run_pipeline('pp', '{"training_dataset": {"table": "iceml_td.pp_1"},
	"train": {"architecture": "tiny_cnn", "hyperparams": {"epochs": 3}},
	"retrain_on_drift": {"model": "pp", "psi_threshold": 0.2, "min_samples": 100}}')}, user => 'iceml_tap_pia');
is(psql("SELECT iceml.wait($out, '120 s')", user => 'iceml_tap_pia'), 'succeeded', 'the drift-conditional pipeline succeeded again');
like(psql("SELECT (detail->>'decision') || ' ' || (detail->>'calls') || ' ' || ((detail->'psi'->>'band_1_mean')::float8 > 0.2) FROM iceml.pipeline_steps WHERE run_id = $out AND step = 'drift_check'"),
	qr/^train 200 true$/, 'drift_check saw the drift on 200 calls, with the PSI figures, and decided to train');
is(psql("SELECT string_agg(step || ' ' || status, ', ' ORDER BY ordinal) FROM iceml.pipeline_steps WHERE run_id = $out AND step IN ('train', 'evaluate')"),
	'train succeeded, evaluate succeeded', 'so it trained and evaluated a new model');

is(psql("SELECT round((detail->>'deployed_log_loss')::numeric, 6) FROM iceml.pipeline_steps WHERE run_id = $out AND step = 'deploy'"),
	$served, 'deploy (if_better) compared the new model with the deployment as it serves (TTA), not its bare model');

# ---- the worker's own bookkeeping fails: the run says so -----------------
# (a fault injected by a superuser's trigger: recording the success fails)
psql(q{
	CREATE FUNCTION public.iceml_tap_fault() RETURNS trigger LANGUAGE plpgsql AS
	$$BEGIN RAISE EXCEPTION 'injected fault'; END$$;
	CREATE TRIGGER iceml_tap_fault BEFORE UPDATE ON iceml.pipeline_runs FOR EACH ROW
	    WHEN (NEW.status = 'succeeded' AND NEW.name = 'pp_fault') EXECUTE FUNCTION public.iceml_tap_fault();
});
$out = psql(q{SELECT iceml.run_pipeline('pp_fault', '{"training_dataset": {"table": "iceml_td.pp_1"},
	"train": {"architecture": "tiny_cnn", "hyperparams": {"epochs": 1}}, "deploy": "never"}')}, user => 'iceml_tap_pia');
is(psql("SELECT iceml.wait($out, '120 s')", user => 'iceml_tap_pia'), 'failed', 'a run whose bookkeeping fails ends failed');
like(psql("SELECT error FROM iceml.pipeline_runs WHERE id = $out"), qr/^the pipeline worker stopped: injected fault/,
	'with the error that stopped the worker, recorded by the worker itself');
psql(q{DROP TRIGGER iceml_tap_fault ON iceml.pipeline_runs; DROP FUNCTION public.iceml_tap_fault()});

# ---- the pictures, checked as a person would ------------------------------
# each is well-formed XML, and headless Chromium draws it at its own size
# with something on it; one of each is kept under .iceml/pictures/
use IcemlPicture;
my $pictures = abs_path("$FindBin::Bin/../..") . '/.iceml/pictures';
mkdir abs_path("$FindBin::Bin/../..") . '/.iceml';
mkdir $pictures;
my $study = psql("SELECT (detail->>'study') FROM iceml.pipeline_steps s JOIN iceml.pipeline_runs r ON r.id = s.run_id WHERE r.name = 'pp_tune' AND s.step = 'tune'");
my %pictures = (
	learning_curve => "SELECT iceml.plot_learning_curve((SELECT min(id) FROM iceml.runs WHERE experiment = 'pp'))",
	roc => "SELECT iceml.plot_roc('pp', 'iceml_td.pp_1', 'test')",
	study => "SELECT iceml.plot_study($study)",
	pipeline => "SELECT iceml.plot_pipeline($id)",
	chip => "SELECT iceml.plot_chip(band_1) FROM iceml_td.pp_1 ORDER BY id LIMIT 1",
);
for my $name (sort keys %pictures) {
	my $sql = $pictures{$name};
	is(psql("SELECT xml_is_well_formed_document(($sql))", user => 'iceml_tap_pia'), 't', "$name: well-formed XML");
	my $svg = psql($sql, user => 'iceml_tap_pia');
	like($svg, qr/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/, "$name: an SVG document");
	if ($name ne 'chip') {
		like($svg, qr/<title>[^<]+<\/title>/, "$name: has a title");
		like($svg, qr/<text[^>]*>[^<]*\d/, "$name: has tick labels or figures");
	}
	open my $fh, '>', "$pictures/$name.svg" or die;
	print $fh $svg;
	close $fh;
	my ($w, $h) = svg_size($svg);
	ok($w && $h, "$name: drawn at ${w} x ${h}");
	is(screenshot("$pictures/$name.svg", "$pictures/$name.png", $w, $h), 0, "$name: Chromium took a screenshot");
	my $png = png_summary("$pictures/$name.png");
	is($png && "$png->{width} x $png->{height}", "$w x $h", "$name: the screenshot has the picture's size");
	ok($png && $png->{nonwhite} > 0.01 && $png->{colours} >= 8,
		sprintf("$name: the screenshot is not blank (%.1f%% drawn, %d colours)",
			100 * ($png ? $png->{nonwhite} : 0), $png ? $png->{colours} : 0));
}
# the pictures read as the caller: pete sees none of pia's runs
($rc, $out) = psql("SELECT iceml.plot_pipeline($id)", user => 'iceml_tap_pete');
like($out, qr/pipeline run $id does not exist/, 'pete cannot draw pia\'s pipeline run');

psql("DROP DATABASE $db", db => "postgres") unless $ENV{ICEML_KEEP};
done_testing();
