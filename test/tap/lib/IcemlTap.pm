# Helpers for the TAP tests that drive the embedded test cluster from
# outside (PGHOST/PGPORT from the harness): run SQL as a role, poll until
# a query answers as expected, restart the server.
package IcemlTap;
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;
use File::Temp qw(tempfile);
use Exporter 'import';
our @EXPORT = qw(psql poll restart psql_on start_nodes);

# the database each test works in; set it before the first psql()
our $db;
my $harness = File::Spec->rel2abs(dirname(__FILE__) . '/../../harness');
my $cluster = $ENV{ICEML_CLUSTER} // 'test';

# Run SQL (warnings and worse only) as user (postgres by default) in db (the
# test's by default); in list context also the exit status.
sub psql {
	my ($sql, %o) = @_;
	my $user = $o{user} // 'postgres';
	my $in = $o{db} // $db;
	my ($fh, $fn) = tempfile(UNLINK => 1);
	print $fh "SET client_min_messages = warning;\n", $sql;
	close $fh;
	my $out = `psql -XAtq -v ON_ERROR_STOP=1 -U $user -d $in -f $fn 2>&1`;
	my $rc = $? >> 8;
	chomp $out;
	return wantarray ? ($rc, $out) : $out;
}

# Poll a query five times a second until its answer matches, for at most secs.
sub poll {
	my ($sql, $want, $secs) = @_;
	my $got = '';
	for (1 .. $secs * 5) {
		$got = psql($sql);
		return $got if $got =~ $want;
		select(undef, undef, undef, 0.2);
	}
	return $got;
}

# psql() on another embedded cluster (test/harness/cluster.sh start NAME),
# as its superuser, in its iceml database unless db says otherwise.
sub psql_on {
	my ($name, $sql, %o) = @_;
	my $env = `$harness/cluster.sh env $name`;
	my ($host) = $env =~ /PGHOST='([^']+)'/;
	my ($port) = $env =~ /PGPORT=(\d+)/;
	local $ENV{PGHOST} = $host;
	local $ENV{PGPORT} = $port;
	return psql($sql, db => $o{db} // 'iceml');
}

# Fresh node clusters (test/harness/cluster.sh start NAME fresh) with iceml
# and a login role iceml_tap_node (an iceml_user) in their iceml database;
# returns name => the conninfo a coordinator's add_node takes, as that role.
sub start_nodes {
	my (@names) = @_;
	my %conninfo;
	for my $n (@names) {
		system("$harness/cluster.sh start $n fresh >/dev/null") == 0
			or die "node cluster $n did not start";
		psql_on($n, q{
			CREATE EXTENSION iceml;
			CREATE ROLE iceml_tap_node LOGIN IN ROLE iceml_user;
		});
		my $c = `$harness/cluster.sh conninfo $n`;
		chomp $c;
		$c =~ s/user=postgres/user=iceml_tap_node/;
		$conninfo{$n} = $c;
	}
	return %conninfo;
}

sub restart {
	system("test/harness/cluster.sh stop $cluster >/dev/null 2>&1");
	system("test/harness/cluster.sh start $cluster >/dev/null 2>&1") == 0
		or die 'cluster did not restart';
}

1;
