/*
 * plot.c - iceml.plot_chip(band): an SVG picture of one square band.
 *
 * The pixels travel as a grey-scale PNG embedded in the SVG as a data URI, so
 * a 75 x 75 chip is about 8 kB of text whatever its content (one <rect> per
 * pixel run would be 20 times more for speckled images).  The PNG is written
 * here, uncompressed (deflate "stored" blocks): it needs nothing but CRC-32
 * (PostgreSQL's traditional CRC-32 is PNG's) and Adler-32.  Grey levels map the band's own min .. max in dB linearly to
 * black .. white; the colour bar beside the image gives the dB scale.
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/pg_crc.h"

#include "iceml_pgarray.h"
#include "iceml_sar.h"

PG_FUNCTION_INFO_V1(plot_chip);

/* The picture is drawn this many SVG units wide and high, whatever n. */
#define PLOT_SIZE	300

static void
PutBE32(StringInfo s, uint32 v)
{
	appendStringInfoChar(s, (char) (v >> 24));
	appendStringInfoChar(s, (char) (v >> 16));
	appendStringInfoChar(s, (char) (v >> 8));
	appendStringInfoChar(s, (char) v);
}

/* One PNG chunk: length, type, data, CRC of type and data */
static void
PngChunk(StringInfo png, const char *type, const unsigned char *data, size_t len)
{
	uint32		crc;

	PutBE32(png, (uint32) len);
	appendBinaryStringInfo(png, type, 4);
	if (len > 0)
		appendBinaryStringInfo(png, (const char *) data, len);
	/* PNG's CRC is the traditional CRC-32 that PostgreSQL provides */
	INIT_TRADITIONAL_CRC32(crc);
	COMP_TRADITIONAL_CRC32(crc, type, 4);
	COMP_TRADITIONAL_CRC32(crc, data, len);
	FIN_TRADITIONAL_CRC32(crc);
	PutBE32(png, crc);
}

/* An 8-bit grey PNG of side x side pixels */
static void
GreyPng(StringInfo png, const unsigned char *pix, int side)
{
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	unsigned char ihdr[13];
	StringInfoData raw,
				z;
	uint32		a = 1,
				b = 0;
	size_t		off;

	/* the scan lines, each with filter type 0 */
	initStringInfo(&raw);
	for (int y = 0; y < side; y++)
	{
		appendStringInfoChar(&raw, 0);
		appendBinaryStringInfo(&raw, (const char *) pix + (size_t) y * side, side);
	}
	for (int i = 0; i < raw.len; i++)
	{
		a = (a + (unsigned char) raw.data[i]) % 65521;
		b = (b + a) % 65521;
	}

	/* zlib stream of stored blocks */
	initStringInfo(&z);
	appendStringInfoChar(&z, 0x78);
	appendStringInfoChar(&z, 0x01);
	off = 0;
	do
	{
		size_t		n = raw.len - off > 65535 ? 65535 : raw.len - off;
		bool		last = off + n == (size_t) raw.len;

		appendStringInfoChar(&z, last ? 1 : 0);
		appendStringInfoChar(&z, (char) (n & 0xff));
		appendStringInfoChar(&z, (char) (n >> 8));
		appendStringInfoChar(&z, (char) (~n & 0xff));
		appendStringInfoChar(&z, (char) ((~n >> 8) & 0xff));
		appendBinaryStringInfo(&z, raw.data + off, n);
		off += n;
	} while (off < (size_t) raw.len);
	PutBE32(&z, (b << 16) | a);

	memset(ihdr, 0, sizeof(ihdr));
	ihdr[0] = (unsigned char) (side >> 24);
	ihdr[1] = (unsigned char) (side >> 16);
	ihdr[2] = (unsigned char) (side >> 8);
	ihdr[3] = (unsigned char) side;
	memcpy(ihdr + 4, ihdr, 4);
	ihdr[8] = 8;				/* bit depth */
	ihdr[9] = 0;				/* grey */

	appendBinaryStringInfo(png, (const char *) sig, 8);
	PngChunk(png, "IHDR", ihdr, sizeof(ihdr));
	PngChunk(png, "IDAT", (unsigned char *) z.data, z.len);
	PngChunk(png, "IEND", NULL, 0);
	pfree(raw.data);
	pfree(z.data);
}

static void
AppendBase64(StringInfo out, const unsigned char *p, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (size_t i = 0; i < len; i += 3)
	{
		uint32		v = (uint32) p[i] << 16;
		size_t		k = len - i;

		if (k > 1)
			v |= (uint32) p[i + 1] << 8;
		if (k > 2)
			v |= p[i + 2];
		appendStringInfoChar(out, tab[(v >> 18) & 63]);
		appendStringInfoChar(out, tab[(v >> 12) & 63]);
		appendStringInfoChar(out, k > 1 ? tab[(v >> 6) & 63] : '=');
		appendStringInfoChar(out, k > 2 ? tab[v & 63] : '=');
	}
}

Datum
plot_chip(PG_FUNCTION_ARGS)
{
	int			side;
	const float *x = IcemlSquareImageArg(PG_GETARG_ARRAYTYPE_P(0), "plot_chip", "band", &side);
	size_t		npix = (size_t) side * side;
	IcemlBandStats st;
	double		span;
	unsigned char *pix;
	StringInfoData png,
				svg;
	const int	bar_x = PLOT_SIZE + 20;

	iceml_band_stats(x, (int) npix, &st);
	span = st.max - st.min;
	pix = palloc(npix);
	for (size_t i = 0; i < npix; i++)
		pix[i] = span > 0 ? (unsigned char) (255.0 * (x[i] - st.min) / span + 0.5) : 128;

	initStringInfo(&png);
	GreyPng(&png, pix, side);

	initStringInfo(&svg);
	appendStringInfo(&svg,
					 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n"
					 "<title>band of %d x %d pixels, %.2f .. %.2f dB</title>\n"
					 "<defs><linearGradient id=\"iceml-grey\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
					 "<stop offset=\"0\" stop-color=\"#000\"/><stop offset=\"1\" stop-color=\"#fff\"/>"
					 "</linearGradient></defs>\n"
					 "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n"
					 "<image x=\"10\" y=\"10\" width=\"%d\" height=\"%d\" preserveAspectRatio=\"none\" "
					 "style=\"image-rendering:pixelated\" href=\"data:image/png;base64,",
					 PLOT_SIZE + 90, PLOT_SIZE + 20, PLOT_SIZE + 90, PLOT_SIZE + 20,
					 side, side, st.min, st.max, PLOT_SIZE, PLOT_SIZE);
	AppendBase64(&svg, (unsigned char *) png.data, png.len);
	appendStringInfo(&svg,
					 "\"/>\n"
					 "<rect x=\"%d\" y=\"10\" width=\"14\" height=\"%d\" fill=\"url(#iceml-grey)\" stroke=\"#000\" stroke-width=\"0.5\"/>\n"
					 "<g font-family=\"sans-serif\" font-size=\"10\" fill=\"#000\">\n"
					 "<text x=\"%d\" y=\"18\">%.1f</text>\n"
					 "<text x=\"%d\" y=\"%d\">%.1f</text>\n"
					 "<text x=\"%d\" y=\"%d\">%.1f</text>\n"
					 "<text x=\"%d\" y=\"%d\">dB</text>\n"
					 "</g>\n</svg>\n",
					 bar_x, PLOT_SIZE,
					 bar_x + 18, st.max,
					 bar_x + 18, 10 + PLOT_SIZE / 2 + 3, (st.min + st.max) / 2,
					 bar_x + 18, 10 + PLOT_SIZE, st.min,
					 bar_x + 18, 10 + PLOT_SIZE / 2 + 16);
	pfree(pix);
	pfree(png.data);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(svg.data, svg.len));
}
