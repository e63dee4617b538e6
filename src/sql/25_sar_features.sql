
-- ====================================================================
-- 25: SAR feature functions (API.md section 3), src/featurestore/features.c over the
-- plain-C kernels of src/eo/sar.c.  Bands are one-dimensional real[] of
-- 1 .. 16777216 finite values (a 4096 x 4096 image at most), no NULLs.
-- ====================================================================

CREATE FUNCTION iceml.band_avg(a real[], b real[]) RETURNS real[]
    AS 'MODULE_PATHNAME', 'band_avg'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml.band_avg(real[], real[]) IS
    'element-wise (a + b) / 2 of two bands of the same length: the third channel (HH + HV) / 2 of the usual Statoil models';

CREATE FUNCTION iceml.to_linear(db real[]) RETURNS real[]
    AS 'MODULE_PATHNAME', 'to_linear'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml.to_linear(real[]) IS
    'backscatter from dB to linear power, 10^(dB/10), element-wise; values above about 385 dB overflow real and are refused';

CREATE FUNCTION iceml.to_db(linear real[]) RETURNS real[]
    AS 'MODULE_PATHNAME', 'to_db'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml.to_db(real[]) IS
    'backscatter from linear power to dB, 10 log10(x), element-wise; zero or negative values are refused (SQLSTATE 2201E)';

CREATE FUNCTION iceml.standardize(band real[]) RETURNS real[]
    AS 'MODULE_PATHNAME', 'standardize'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml.standardize(real[]) IS
    '(x - mean) / stddev with the band''s own mean and population stddev; a constant band (stddev 0) becomes all zeros';

CREATE FUNCTION iceml.lee_filter(band real[], "window" int DEFAULT 5) RETURNS real[]
    AS 'MODULE_PATHNAME', 'lee_filter'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml.lee_filter(real[], int) IS
    'classic Lee speckle filter of a square n x n band (row-major) with an odd window (1 .. min(n, 101)): m + k (x - m), k = max(0, v - s2) / v over the local mean m and variance v, the noise variance s2 being the mean local variance of the image; the window is clipped at the edges; O(n^2) whatever the window';

CREATE FUNCTION iceml.band_stats(band real[],
        OUT min real, OUT max real, OUT mean double precision, OUT stddev double precision)
    RETURNS record
    AS 'MODULE_PATHNAME', 'band_stats'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml.band_stats(real[]) IS
    'min, max, mean and population standard deviation (as stddev_pop) of a band';

GRANT EXECUTE ON FUNCTION
    iceml.band_avg(real[], real[]),
    iceml.to_linear(real[]),
    iceml.to_db(real[]),
    iceml.standardize(real[]),
    iceml.lee_filter(real[], int),
    iceml.band_stats(real[])
    TO iceml_reader;

CREATE FUNCTION iceml.synthesize_statoil(n int, seed int DEFAULT 0)
    RETURNS TABLE (id text, band_1 real[], band_2 real[], inc_angle real, is_iceberg smallint)
    AS 'MODULE_PATHNAME', 'synthesize_statoil'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    ROWS 1000;
COMMENT ON FUNCTION iceml.synthesize_statoil(int, int) IS
    'n synthetic 75 x 75 two-band SAR chips in the Statoil/C-CORE layout (dB bands, incidence angle, about 47% icebergs, inc_angle NULL for about 16% of ships), deterministic in (seed, row number): the first k rows are the same for every n >= k; ids are unique within a seed; 0 <= n <= 1000000';
GRANT EXECUTE ON FUNCTION iceml.synthesize_statoil(int, int) TO iceml_user;

CREATE FUNCTION iceml.plot_chip(band real[]) RETURNS text
    AS 'MODULE_PATHNAME', 'plot_chip'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml.plot_chip(real[]) IS
    'an SVG picture of one square n x n band (row-major, dB): grey levels from the band''s min (black) to max (white), with a dB colour bar; the pixels are an embedded uncompressed PNG (about 8 kB of text for a 75 x 75 chip)';
GRANT EXECUTE ON FUNCTION iceml.plot_chip(real[]) TO iceml_reader;
