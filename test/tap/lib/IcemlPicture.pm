# Checking pictures as a person would: an SVG is rendered by headless
# Chromium, and the screenshot (a PNG) is read back here: its size, how much
# of it is not background, how many colours it has.
package IcemlPicture;
use strict;
use warnings;
use Compress::Zlib qw(uncompress);
use Exporter 'import';
our @EXPORT = qw(svg_size screenshot png_summary);

# width and height of the outermost <svg> element
sub svg_size {
	my ($svg) = @_;
	my ($tag) = $svg =~ /(<svg\b[^>]*>)/;
	return unless $tag;
	my ($w) = $tag =~ /\bwidth="(\d+)"/;
	my ($h) = $tag =~ /\bheight="(\d+)"/;
	return ($w, $h);
}

# Render svg_file with headless Chromium at the SVG's own size into png_file;
# returns Chromium's exit status.
sub screenshot {
	my ($svg_file, $png_file, $w, $h) = @_;
	unlink $png_file;
	my $home = "/tmp/iceml-chromium-$$";
	mkdir $home;
	my $rc = system("HOME=$home timeout 90 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars"
		. " --window-size=$w,$h --screenshot=$png_file file://$svg_file >/dev/null 2>&1");
	system("rm -rf $home");
	return $rc >> 8;
}

# {width, height, nonwhite (fraction of pixels that are not near white),
#  colours (distinct colours, coarsely)} of an 8-bit RGB or RGBA PNG.
sub png_summary {
	my ($file) = @_;
	open my $fh, '<:raw', $file or return;
	local $/;
	my $png = <$fh>;
	close $fh;
	return unless substr($png, 0, 8) eq "\x89PNG\r\n\x1a\n";
	my ($pos, $idat, %ihdr) = (8, '');
	while ($pos < length $png) {
		my ($len, $type) = unpack('N a4', substr($png, $pos, 8));
		my $data = substr($png, $pos + 8, $len);
		if ($type eq 'IHDR') {
			@ihdr{qw(w h depth ctype)} = unpack('N N C C', $data);
		} elsif ($type eq 'IDAT') {
			$idat .= $data;
		}
		$pos += 12 + $len;
	}
	return unless $ihdr{depth} == 8 && ($ihdr{ctype} == 2 || $ihdr{ctype} == 6);
	my $bpp = $ihdr{ctype} == 6 ? 4 : 3;
	my $raw = uncompress($idat) // return;
	my $stride = $ihdr{w} * $bpp;
	my @prev = (0) x $stride;
	my ($nonwhite, %colours) = (0);
	for my $y (0 .. $ihdr{h} - 1) {
		my $off = $y * ($stride + 1);
		my $filter = ord substr($raw, $off, 1);
		my @line = unpack('C*', substr($raw, $off + 1, $stride));
		for my $i (0 .. $stride - 1) {
			my $a = $i >= $bpp ? $line[$i - $bpp] : 0;
			my $b = $prev[$i];
			my $c = $i >= $bpp ? $prev[$i - $bpp] : 0;
			my $p;
			if ($filter == 0) { $p = 0 }
			elsif ($filter == 1) { $p = $a }
			elsif ($filter == 2) { $p = $b }
			elsif ($filter == 3) { $p = ($a + $b) >> 1 }
			else {
				my $pa = abs($b - $c);
				my $pb = abs($a - $c);
				my $pc = abs($a + $b - 2 * $c);
				$p = ($pa <= $pb && $pa <= $pc) ? $a : ($pb <= $pc ? $b : $c);
			}
			$line[$i] = ($line[$i] + $p) & 0xff;
		}
		for (my $i = 0; $i < $stride; $i += $bpp) {
			my ($r, $g, $bl) = @line[$i .. $i + 2];
			$nonwhite++ if $r < 235 || $g < 235 || $bl < 235;
			$colours{($r >> 4) . ',' . ($g >> 4) . ',' . ($bl >> 4)} = 1;
		}
		@prev = @line;
	}
	return { width => $ihdr{w}, height => $ihdr{h},
		nonwhite => $nonwhite / ($ihdr{w} * $ihdr{h}), colours => scalar keys %colours };
}

1;
