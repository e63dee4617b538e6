# Code that runs as another role never trusts the caller's search_path.
#
# Every iceml role plants shadows of the types, functions and operators
# iceml's SQL uses: in a schema of its own placed first in its search_path
# (by ALTER ROLE ... SET search_path, so that background workers connecting
# as the role get it too) and, for types, in pg_temp.  Each shadow records
# current_user before doing what the original does.  The test then drives
# iceml's SQL surface as each role and asserts that no shadow ever ran as
# anyone but the role that planted it: a shadow running as the catalog
# owner (a superuser here) would be a path to superuser.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $db = $IcemlTap::db = 'iceml_hostile';
my @roles = qw(iceml_tap_h_user iceml_tap_h_reader iceml_tap_h_admin iceml_tap_h_other);

psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql(join('', map { "DROP ROLE IF EXISTS $_; " } @roles) . q{
	CREATE ROLE iceml_tap_h_user LOGIN IN ROLE iceml_user;
	CREATE ROLE iceml_tap_h_reader LOGIN IN ROLE iceml_reader;
	CREATE ROLE iceml_tap_h_admin LOGIN IN ROLE iceml_admin;
	CREATE ROLE iceml_tap_h_other LOGIN IN ROLE iceml_user;
}, db => 'postgres');

# the record of every shadow that ran, and as whom
psql(q{
	CREATE EXTENSION iceml;
	CREATE TABLE public.shadow_log (who name NOT NULL, what text NOT NULL);
	GRANT INSERT, SELECT ON public.shadow_log TO PUBLIC;
	CREATE FUNCTION public.shadow_rec(what text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
	BEGIN
		INSERT INTO public.shadow_log VALUES (current_user, what);
		RAISE WARNING 'SHADOW % %', current_user, what;
		RETURN true;
	END $$;
	GRANT EXECUTE ON FUNCTION public.shadow_rec(text) TO PUBLIC;
});

# The shadows of one role, in schema h_<role>.  Types: domains over the
# originals (their CHECK records); functions and operators: same signature,
# same result, plus the record.
my @types = qw(text jsonb float8 float4 int4 int8 int2 name oid regclass regrole bytea timestamptz json bool);
my @funcs = (
	['now()', 'timestamptz', 'pg_catalog.now()'],
	['clock_timestamp()', 'timestamptz', 'pg_catalog.clock_timestamp()'],
	['lower(t pg_catalog.text)', 'pg_catalog.text', 'pg_catalog.lower(t)'],
	['upper(t pg_catalog.text)', 'pg_catalog.text', 'pg_catalog.upper(t)'],
	['length(t pg_catalog.text)', 'pg_catalog.int4', 'pg_catalog.length(t)'],
	['abs(x pg_catalog.float8)', 'pg_catalog.float8', 'pg_catalog.abs(x)'],
	['hashtext(t pg_catalog.text)', 'pg_catalog.int4', 'pg_catalog.hashtext(t)'],
	['jsonb_typeof(j pg_catalog.jsonb)', 'pg_catalog.text', 'pg_catalog.jsonb_typeof(j)'],
	['jsonb_array_length(j pg_catalog.jsonb)', 'pg_catalog.int4', 'pg_catalog.jsonb_array_length(j)'],
	['current_setting(t pg_catalog.text)', 'pg_catalog.text', 'pg_catalog.current_setting(t)'],
	['to_regclass(t pg_catalog.text)', 'pg_catalog.regclass', 'pg_catalog.to_regclass(t)'],
	['quote_literal(t pg_catalog.text)', 'pg_catalog.text', 'pg_catalog.quote_literal(t)'],
	['trunc(x pg_catalog.numeric)', 'pg_catalog.numeric', 'pg_catalog.trunc(x)'],
);
my @ops = (
	['=', 'pg_catalog.text', 'pg_catalog.text', 'pg_catalog.bool', 'pg_catalog.texteq'],
	['=', 'pg_catalog.int8', 'pg_catalog.int8', 'pg_catalog.bool', 'pg_catalog.int8eq'],
	['=', 'pg_catalog.int4', 'pg_catalog.int4', 'pg_catalog.bool', 'pg_catalog.int4eq'],
	['=', 'pg_catalog.oid', 'pg_catalog.oid', 'pg_catalog.bool', 'pg_catalog.oideq'],
	['<>', 'pg_catalog.text', 'pg_catalog.text', 'pg_catalog.bool', 'pg_catalog.textne'],
	['<', 'pg_catalog.float8', 'pg_catalog.float8', 'pg_catalog.bool', 'pg_catalog.float8lt'],
	['>', 'pg_catalog.int4', 'pg_catalog.int4', 'pg_catalog.bool', 'pg_catalog.int4gt'],
	['->', 'pg_catalog.jsonb', 'pg_catalog.text', 'pg_catalog.jsonb', 'pg_catalog.jsonb_object_field'],
	['->>', 'pg_catalog.jsonb', 'pg_catalog.text', 'pg_catalog.text', 'pg_catalog.jsonb_object_field_text'],
	['?', 'pg_catalog.jsonb', 'pg_catalog.text', 'pg_catalog.bool', 'pg_catalog.jsonb_exists'],
	['||', 'pg_catalog.jsonb', 'pg_catalog.jsonb', 'pg_catalog.jsonb', 'pg_catalog.jsonb_concat'],
	['||', 'pg_catalog.text', 'pg_catalog.text', 'pg_catalog.text', 'pg_catalog.textcat'],
	['+', 'pg_catalog.int4', 'pg_catalog.int4', 'pg_catalog.int4', 'pg_catalog.int4pl'],
	['*', 'pg_catalog.float8', 'pg_catalog.float8', 'pg_catalog.float8', 'pg_catalog.float8mul'],
	['-', undef, 'pg_catalog.float8', 'pg_catalog.float8', 'pg_catalog.float8um'],
);

sub plant {
	my ($role) = @_;
	my $s = "h_$role";
	my $sql = "CREATE SCHEMA $s AUTHORIZATION $role; SET ROLE $role;\n";
	for my $t (@types) {
		$sql .= "CREATE DOMAIN $s.$t AS pg_catalog.$t CHECK (public.shadow_rec('domain $s.$t'));\n";
	}
	for my $f (@funcs) {
		my ($sig, $ret, $body) = @$f;
		(my $name = $sig) =~ s/\(.*//;
		$sql .= "CREATE FUNCTION $s.$sig RETURNS $ret LANGUAGE plpgsql VOLATILE AS \$f\$"
		  . "BEGIN PERFORM public.shadow_rec('function $s.$name'); RETURN $body; END\$f\$;\n";
	}
	my $i = 0;
	for my $o (@ops) {
		my ($op, $l, $r, $ret, $impl) = @$o;
		$i++;
		my $args = defined $l ? "a $l, b $r" : "b $r";
		my $call = defined $l ? "$impl(a, b)" : "$impl(b)";
		$sql .= "CREATE FUNCTION $s.op$i($args) RETURNS $ret LANGUAGE plpgsql VOLATILE AS \$f\$"
		  . "BEGIN PERFORM public.shadow_rec('operator $s.$op'); RETURN $call; END\$f\$;\n";
		$sql .= "CREATE OPERATOR $s.$op (" . (defined $l ? "LEFTARG = $l, " : '') . "RIGHTARG = $r, FUNCTION = $s.op$i);\n";
	}
	$sql .= "RESET ROLE;\n";
	$sql .= "GRANT USAGE ON SCHEMA $s TO PUBLIC;\n";
	$sql .= "ALTER ROLE $role IN DATABASE $db SET search_path = $s, pg_catalog, public;\n";
	my ($rc, $out) = psql($sql);
	is($rc, 0, "$role plants its shadows") or diag($out);
}
plant($_) for @roles;

# temporary domains shadow the types for one session (the review's attack)
my $temp_domains = join('', map {
	"CREATE DOMAIN pg_temp.$_ AS pg_catalog.$_ CHECK (public.shadow_rec('domain pg_temp.$_'));\n" } @types);

# the shadows work: a query of the role's own resolves them
my ($rc, $out) = psql("SELECT 'a'::text = 'a'::text, now() IS NOT NULL", user => 'iceml_tap_h_user');
like($out, qr/SHADOW iceml_tap_h_user/, 'a shadow fires for its own role\'s queries');

my %u = (user => 'iceml_tap_h_user');
sub drive {
	my ($name, $sql, %o) = @_;
	my ($rc, $out) = psql($temp_domains . $sql, %o);
	is($rc, 0, $name) or diag($out);
	return $out;
}

# ---- the feature store ------------------------------------------------------
drive('create_feature_group', q{
	SELECT iceml.create_feature_group('hchips', '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},
	  {"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
	  ARRAY['id'], expectations => '[{"name":"label","features":["is_iceberg"],"rules":[{"name":"HAS_MIN","level":"ERROR","min":0},{"name":"HAS_MAX","level":"ERROR","max":1}]}]');
}, %u);
drive('insert, ingest, expectations, statistics', q{
	INSERT INTO iceml_fs.hchips_1 SELECT id, band_1, band_2, inc_angle, is_iceberg FROM iceml.synthesize_statoil(96, 5);
	SELECT * FROM iceml.ingest_statoil('iceml_fs.hchips_1', document => '[{"id":"zz1","band_1":[' || array_to_string(array_fill(-20, ARRAY[5625]), ',') || '],"band_2":[' || array_to_string(array_fill(-25, ARRAY[5625]), ',') || '],"inc_angle":"na","is_iceberg":0}]');
	SELECT iceml.add_expectation('iceml_fs.hchips_1', '{"name":"angle","features":["inc_angle"],"rules":[{"name":"HAS_MIN","level":"WARNING","min":30}]}');
	SELECT iceml.set_validation('iceml_fs.hchips_1', 'WARNING');
	INSERT INTO iceml_fs.hchips_1 SELECT 'w' || id, band_1, band_2, 10, is_iceberg FROM iceml.synthesize_statoil(2, 6);
	SELECT iceml.drop_expectation('iceml_fs.hchips_1', 'angle');
	SELECT iceml.compute_statistics('iceml_fs.hchips_1');
	SELECT iceml.create_training_dataset('hchips', 'iceml_fs.hchips_1', 'is_iceberg',
	                                     splits => '{"train":0.7,"validation":0.15,"test":0.15}', seed => 3);
}, %u);

# ---- training, studies, deployment (background workers) ---------------------
my $run = drive('train', q{SELECT iceml.train('hexp', 'iceml_td.hchips_1', 'tiny_cnn', '{"epochs": 1, "batch_size": 16}')}, %u);
($run) = $run =~ /(\d+)\s*$/;
like(drive('wait', "SELECT iceml.wait($run, '120 s')", %u), qr/succeeded/, 'the run succeeded');
my $run2 = drive('train another', q{SELECT iceml.train('hexp', 'iceml_td.hchips_1', 'tiny_cnn', '{"epochs": 30, "batch_size": 8}')}, %u);
($run2) = $run2 =~ /(\d+)\s*$/;
drive('cancel', "SELECT iceml.cancel($run2); SELECT iceml.wait($run2, '60 s')", %u);
my $study = drive('tune', q{SELECT iceml.tune('htune', 'iceml_td.hchips_1', 'tiny_cnn',
	'{"learning_rate": {"type": "DOUBLE", "range": [0.001, 0.01], "scale": "log"}}', 'random', trials => 2, parallel => 2,
	hyperparams => '{"epochs": 1, "batch_size": 16}')}, %u);
($study) = $study =~ /(\d+)\s*$/;
like(drive('wait for the study', "SELECT iceml.wait($study, '180 s')", %u), qr/succeeded/, 'the study succeeded');
my $abl = drive('ablation_study', q{SELECT iceml.ablation_study('habl', 'iceml_td.hchips_1', 'tiny_cnn',
	'{"features": ["band_2"]}', '{"epochs": 1, "batch_size": 16}', parallel => 2)}, %u);
($abl) = $abl =~ /(\d+)\s*$/;
like(drive('wait for the ablation', "SELECT iceml.wait($abl, '180 s')", %u), qr/succeeded/, 'the ablation succeeded');
drive('create_architecture', q{SELECT iceml.create_architecture('hnet', (SELECT spec FROM iceml.architectures WHERE name = 'tiny_cnn'))}, %u);
drive('deploy', q{SELECT iceml.deploy('hexp'); SELECT iceml.deploy('hexp', (SELECT max(id) FROM iceml.models WHERE experiment = 'hexp'))}, %u);

# ---- inference and analysis, as the user and as a reader --------------------
psql('GRANT SELECT ON iceml_td.hchips_1 TO iceml_tap_h_reader', %u);
for my $who ('iceml_tap_h_user', 'iceml_tap_h_reader') {
	drive("predict, evaluate, what_if as $who", q{
		SELECT count(iceml_predict('hexp', band_1, band_2, inc_angle)) FROM iceml_td.hchips_1;
		SELECT iceml_predict((SELECT model_id FROM iceml.deployed_models WHERE name = 'hexp'),
		                     array_fill(0::real, ARRAY[5625]), array_fill(0::real, ARRAY[5625]));
		SELECT iceml.evaluate('hexp', 'iceml_td.hchips_1');
		SELECT count(*) FROM iceml.evaluate_slices('hexp', 'iceml_td.hchips_1', 'inc_angle');
		SELECT iceml.what_if('hexp', band_1, band_2, inc_angle, '{"op":"rotate","degrees":90}') FROM iceml_td.hchips_1 LIMIT 1;
		SELECT count(*) FROM iceml.progress;
		SELECT count(*) FROM iceml.model_summaries;
	}, user => $who);
}
drive('monitor', q{SELECT iceml.monitor('hexp')}, %u);
drive('admin deploys and cancels', q{
	SELECT iceml.deploy('hexp', 'most_recent');
	SELECT iceml.cancel(id) FROM iceml.runs WHERE status IN ('queued', 'running');
	SELECT iceml.transfer_deployment('hexp', 'iceml_tap_h_other');
}, user => 'iceml_tap_h_admin');
drive('another user', q{
	SELECT iceml.create_feature_group('hother', '[{"name":"id","type":"int"},{"name":"x","type":"real"}]', ARRAY['id']);
	INSERT INTO iceml_fs.hother_1 VALUES (1, 1.5);
	SELECT iceml.drop_feature_group('iceml_fs.hother_1');
}, user => 'iceml_tap_h_other');

# ---- pipelines, pictures, batched scoring, ensembles -------------------------
my $prun = drive('run_pipeline', q{SELECT iceml.run_pipeline('hpipe', '{"feature_group": {"name": "hpchips",
	"expectations": [{"name": "angle", "features": ["inc_angle"], "rules": [{"name": "HAS_MAX", "level": "ERROR", "max": 50}]}]},
	"ingest": {"synthetic": {"n": 80, "seed": 4, "bad": 2}}, "on_error": "quarantine",
	"training_dataset": {"splits": {"train": 0.7, "validation": 0.15, "test": 0.15}, "seed": 1},
	"train": {"architecture": "tiny_cnn", "hyperparams": {"epochs": 1, "batch_size": 16}}, "deploy": "always"}')}, %u);
($prun) = $prun =~ /(\d+)\s*$/;
like(drive('wait for the pipeline', "SELECT iceml.wait($prun, '180 s')", %u), qr/succeeded/, 'the pipeline succeeded');
drive('pictures', qq{
	SELECT length(iceml.plot_learning_curve($run)) > 0, length(iceml.plot_study($study)) > 0,
	       length(iceml.plot_pipeline($prun)) > 0, length(iceml.plot_roc('hexp', 'iceml_td.hchips_1')) > 0;
}, %u);
drive('ensembles and batched scoring', q{
	SELECT iceml.deploy_ensemble('hens', ARRAY(SELECT id FROM iceml.models WHERE experiment = 'hexp' ORDER BY id LIMIT 2), tta => true);
	SELECT count(*) FROM iceml.predict_table('hens', 'iceml_td.hchips_1', key => 'id', inc_angle => 'inc_angle');
	SELECT count(*) FROM iceml.predict_table((SELECT model_id FROM iceml.deployed_models WHERE name = 'hexp'), 'iceml_td.hchips_1');
	SELECT cardinality(iceml.predict_batch('hexp', array_agg(band_1), array_agg(band_2))) FROM (SELECT band_1, band_2 FROM iceml_td.hchips_1 LIMIT 3) t;
	SELECT (iceml.split_predictions('hexp'::pg_catalog.text, 'iceml_td.hchips_1')).labels IS NOT NULL;
	SELECT (iceml.dataset_columns('iceml_td.hchips_1', 'test')).label;
	SELECT count(*) FROM iceml.predict_cache();
	SELECT iceml.predict_cache_reset() >= 0;
}, %u);

# ---- a node's side of a coordinator's trial: the data copy, the trial's
# run, its gate (released by the following session), adoption, forgetting
my $copy = 'trial_' . ('ab' x 16);
my $trial = drive("a coordinator's trial, as the node sees it", qq{
	BEGIN;
	SELECT iceml.receive_trial_data('$copy', (SELECT jsonb_agg(jsonb_build_object('name', attname, 'type', format_type(atttypid, atttypmod)) ORDER BY attnum)
	                                           FROM pg_attribute WHERE attrelid = 'iceml_td.hchips_1'::regclass AND attnum > 0 AND NOT attisdropped));
	INSERT INTO iceml_td.$copy SELECT * FROM iceml_td.hchips_1;
	SELECT iceml.run_trial('htrial', 'iceml_td.$copy', 'tiny_cnn', (SELECT spec FROM iceml.architectures WHERE name = 'tiny_cnn'),
	                       '{"epochs": 2, "batch_size": 16}', r.label, r.val_split, 't1',
	                       '{"coordinator_run": 1, "study": 1, "coordinator_lineage": {}}', NULL, '{1}') AS trial
	  FROM iceml.runs r WHERE r.id = $run \\gset
	COMMIT;
	-- this session follows the trial: wait for it at its gate, let it go on
	SELECT set_config('hostile.trial', :'trial', false) IS NOT NULL AS noted \\gset
	DO \$\$ DECLARE t bigint := current_setting('hostile.trial')::bigint; BEGIN
		FOR i IN 1 .. 600 LOOP
			EXIT WHEN EXISTS (SELECT FROM iceml.run_metrics WHERE run_id = t AND epoch = 1)
			       OR NOT EXISTS (SELECT FROM iceml.runs WHERE id = t AND status IN ('queued', 'running'));
			PERFORM pg_sleep(0.2);
		END LOOP;
	END \$\$;
	SELECT iceml.release_trial(:trial, 1) AS released, iceml.adopt_trial(:trial) AS adopted;
	SELECT iceml.wait(:trial, '120 s');
	SELECT iceml.forget_trial(:trial) AS forgot;
}, %u);
like($trial, qr/^t\|t\nsucceeded\nt$/m, 'the trial waited at its gate, was released and adopted, succeeded and was forgotten with its copy')
	or diag($trial);

# ---- the verdict -----------------------------------------------------------
my $ran = psql(q{SELECT count(*) FROM public.shadow_log});
cmp_ok($ran, '>', 0, "the shadows were in reach ($ran ran, each as its own role)");
is(psql(q{SELECT coalesce(string_agg(DISTINCT who || ': ' || what, ', '), 'none') FROM public.shadow_log l
           WHERE NOT (what LIKE '%h_' || who || '.%' OR what LIKE '%pg_temp.%' AND who::text LIKE 'iceml_tap_h_%')}),
	'none', 'no shadow ran as a role other than the one that planted it');
is(psql(q{SELECT count(*) FROM public.shadow_log l JOIN pg_roles r ON r.rolname = l.who WHERE r.rolsuper}),
	'0', 'no shadow ran as a superuser');
my $log = `cat "$ENV{ICEML_CLUSTER_LOG}" 2>/dev/null`;
unlike($log, qr/SHADOW postgres /, 'and the server log shows none in a background worker as the catalog owner');

psql("DROP DATABASE $db", db => 'postgres');
psql(join('', map { "DROP ROLE IF EXISTS $_; " } @roles), db => 'postgres');
done_testing();
