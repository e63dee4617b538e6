# The engine's speed does not depend on the server's environment: a server
# started with OPENBLAS_CORETYPE set to a slow core still runs the kernel
# set and OpenBLAS core chosen for the CPU (iceml.version() says which), and
# a server told to run a kernel set the engine lacks (ICEML_KERNELS) refuses
# by name, in version() and in a training run, instead of running another.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $repo = "$FindBin::Bin/../..";
my $cluster = "$repo/test/harness/cluster.sh";
my $node = 'engine_env';

# psql on the extra cluster, as its superuser, in its iceml database
sub epsql { return psql_on($node, @_) }

sub start_with {
	my ($fresh, %env) = @_;
	local @ENV{keys %env} = values %env;
	system("$cluster start $node $fresh >/dev/null") == 0 or BAIL_OUT("cluster $node did not start");
}

my $db = $IcemlTap::db = 'iceml_engine_env_tap';
psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql('CREATE EXTENSION iceml');
my $here = psql('SELECT iceml.version()');
my ($kernels) = $here =~ /; kernels (generic|avx2|avx512)[ ,]/;
ok(defined $kernels, "the test cluster names its kernel set ($here)");

# a machine that sets a slow core for every OpenBLAS user
start_with('fresh', OPENBLAS_CORETYPE => 'Prescott');
epsql('CREATE EXTENSION iceml');
my $there = epsql('SELECT iceml.version()');
like($there, qr/; kernels \Q$kernels\E, OpenBLAS core /, 'the same kernel set as without OPENBLAS_CORETYPE');
SKIP: {
	skip 'no AVX2 here: OpenBLAS keeps its own choice', 1 if $kernels eq 'generic';
	unlike($there, qr/OpenBLAS core Prescott/, "the core is chosen for the CPU, not Prescott ($there)");
}
system("$cluster stop $node >/dev/null");

# a kernel set that does not exist
start_with('', ICEML_KERNELS => 'avx9');
like(epsql('SELECT iceml.version()'), qr/; ICEML_KERNELS: "avx9" is not a kernel set \(generic, avx2 or avx512; this cpu runs: generic/,
	'version() reports the refusal');
epsql(q{
	SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"int"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"is_iceberg","type":"smallint"}]', ARRAY['id'], validation => 'NONE');
	INSERT INTO iceml_fs.chips_1 SELECT i, array_fill((-20 + i % 3)::real, ARRAY[5625]), array_fill(-25::real, ARRAY[5625]), (i % 2)::smallint
	  FROM generate_series(1, 20) i;
	SELECT iceml.create_training_dataset('chips', 'iceml_fs.chips_1', 'is_iceberg');
});
my $run = epsql(q{SELECT iceml.train('refused', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 1, "batch_size": 4}')});
like($run, qr/^\d+$/, 'the run is queued');
is(epsql("SELECT iceml.wait($run, '120 s')"), 'failed', 'the worker refuses to train with it');
like(epsql("SELECT error FROM iceml.runs WHERE id = $run"), qr/ICEML_KERNELS: "avx9" is not a kernel set/,
	'with the reason');
system("$cluster stop $node >/dev/null");

done_testing();
