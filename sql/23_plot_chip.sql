--
-- iceml.plot_chip(band): an SVG picture of one square band, grey from the
-- band's min to max dB, with a colour bar; the pixels are an embedded PNG.
--
\set VERBOSITY default

CREATE TEMP TABLE pic AS
SELECT iceml.plot_chip(band_1) AS svg FROM iceml.synthesize_statoil(1, 3);

-- well-formed XML, an <svg> root, compact
SELECT xml_is_well_formed_document(svg) AS valid_xml,
       svg LIKE '<svg xmlns="http://www.w3.org/2000/svg"%' AS svg_root,
       length(svg) < 12000 AS compact,
       svg LIKE '%linearGradient%' AND svg LIKE '%>dB</text>%' AS has_colour_bar
  FROM pic;
-- the embedded image is a PNG of 75 x 75 pixels
SELECT substr(png, 1, 8) = '\x89504e470d0a1a0a'::bytea AS png_signature,
       get_byte(png, 19) AS width, get_byte(png, 23) AS height
  FROM (SELECT decode(substring(svg FROM 'base64,([A-Za-z0-9+/=]+)"'), 'base64') AS png
          FROM pic) AS t;
-- any square size; the title gives the size and the dB range
SELECT substring(iceml.plot_chip('{-20,-10,0,10}') FROM '<title>(.*)</title>') AS title;
SELECT substring(iceml.plot_chip('{5}') FROM '<title>(.*)</title>') AS one_pixel;

SET ROLE iceml_reader;
SELECT length(iceml.plot_chip('{1,2,3,4}')) > 0 AS reader_can_plot;
RESET ROLE;

-- malformed input
SELECT iceml.plot_chip('{1,2,3}');
SELECT iceml.plot_chip('{1,NULL,3,4}');
SELECT iceml.plot_chip('{}');
