--
-- Pictures: SVG text with a title, axes, ticks and legend, well-formed XML.
-- (Pictures of real runs, studies and pipelines, and their rendering by a
-- browser, are checked by test/tap/60_pipelines.pl.)
--
SET client_min_messages = warning;
\set SHOW_CONTEXT never

SELECT iceml.svg_text('a < b & "c" > ''d''') AS escaped;

-- a chart of two series: well-formed, titled, with ticks and a legend
SELECT xml_is_well_formed_document(svg) AS well_formed,
       svg ~ '^<svg xmlns="http://www.w3.org/2000/svg" width="760" height="440"' AS svg_root,
       svg ~ '<title>Loss &amp; accuracy</title>' AS title,
       (SELECT count(*) FROM regexp_matches(svg, '<polyline', 'g')) AS lines,
       svg ~ '>0\.5</text>' AND svg ~ '>1\.0</text>' AS y_ticks,
       svg ~ '>validation</text>' AND svg ~ '>best</text>' AS legend
  FROM iceml.plot_xy('Loss & accuracy', 'epoch', 'loss',
        '[{"name": "training", "points": [[1, 0.9], [2, 0.7], [3, 0.6]]},
          {"name": "validation", "points": [[1, 0.95], [2, 0.8], [3, 0.75]], "style": "dashed"}]',
        '{"highlight": {"x": 3, "y": 0.75, "label": "best"}, "x_integer": true}') AS svg;
-- categorical ticks, a forced range and the chance line
SELECT xml_is_well_formed_document(svg) AS well_formed, svg ~ '>chance</text>' AS chance, svg ~ 'rotate\(-30' AS labels
  FROM iceml.plot_xy('t', 'x', 'y', '[{"name": "s", "points": [[0, 0.2], [1, 0.4]], "style": "points"}]',
                     '{"x_labels": [["baseline", 0], ["layer:conv1", 1]], "x_range": [-0.5, 1.5], "diagonal": true}') AS svg;
-- no points at all still draws the axes
SELECT xml_is_well_formed_document(iceml.plot_xy('empty', 'x', 'y', '[]')) AS empty_ok;

-- errors: each names what is missing
\set VERBOSITY terse
SELECT iceml.plot_xy('t', 'x', 'y', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.plot_learning_curve(987654321);
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.plot_study(987654321);
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.plot_pipeline(987654321);
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.plot_roc('nothing_deployed', 'pg_class');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE plot_not_a_dataset (id int);
SELECT iceml.plot_roc('nothing_deployed', 'plot_not_a_dataset');
\echo :LAST_ERROR_SQLSTATE
DROP TABLE plot_not_a_dataset;
