# The README's ten-minute tour works verbatim: its ```sql blocks, taken from
# the section whose heading contains "tour", run in order in one psql
# session (as a reader pastes them) with ON_ERROR_STOP, on a fresh cluster
# set up as the demo's (database iceml, pg_cron's database), in a scratch
# directory (the tour writes a picture there).  Any error fails the test.
use strict;
use warnings;
use Test::More;
use FindBin;
use File::Temp qw(tempdir);
use Cwd qw(abs_path);

my $repo = abs_path("$FindBin::Bin/../..");
open my $fh, '<', "$repo/README.md" or die "README.md: $!";
my @lines = <$fh>;
close $fh;

# the tour section: from its heading to the next heading of the same level
my ($in, $level, $block, @blocks) = (0, 0, undef);
for my $line (@lines) {
	if ($line =~ /^(#+)\s/) {
		my $l = length $1;
		if (!$in && $line =~ /tour/i) { ($in, $level) = (1, $l); next }
		last if $in && $l <= $level && !defined $block;
	}
	next unless $in;
	if (!defined $block && $line =~ /^```sql\s*$/) { $block = ''; next }
	if (defined $block && $line =~ /^```\s*$/) { push @blocks, $block; undef $block; next }
	$block .= $line if defined $block;
}
ok(@blocks >= 5, 'the README has a tour with ' . scalar(@blocks) . ' sql blocks');

# a fresh cluster of its own, configured as the demo's
system("$repo/test/harness/cluster.sh start tour fresh >/dev/null") == 0 or BAIL_OUT('tour cluster did not start');
my %env = map { /^export (.*)$/ ? (map { /^(\w+)='?([^']*)'?$/ ? ($1, $2) : () } split / /, $1) : () }
	split /\n/, `$repo/test/harness/cluster.sh env tour`;
local @ENV{keys %env} = values %env;

my $dir = tempdir(CLEANUP => 1);
chmod 0777, $dir;
my $script = "$dir/tour.sql";
open my $out, '>', $script or die;
print $out join("\n", @blocks);
close $out;
my $log = `cd $dir && psql -X -v ON_ERROR_STOP=1 -d iceml -f $script 2>&1`;
my $rc = $? >> 8;
is($rc, 0, 'the tour runs without an error') or diag($log);
unlike($log, qr/ERROR:/, 'no ERROR in its output');
like($log, qr/NOTICE:  blocked: feature group "tour_chips_1" rejected a row/, 'it shows a blocked bad row');
like($log, qr/pipeline \d+: step deploy/, 'the pipeline ran to its last step');
ok(-s "$dir/tour_learning_curve.svg", 'it wrote the learning curve picture');
open my $svg, '<', "$dir/tour_learning_curve.svg";
my $first = <$svg>;
like($first // '', qr/^<svg xmlns=/, 'an SVG file, nothing around it');

system("$repo/test/harness/cluster.sh stop tour >/dev/null");
done_testing();
