--
-- iceml expectations: every rule, level and validation mode, enforced by C
-- triggers for INSERT, UPDATE and COPY alike
--
\set SHOW_CONTEXT never

-- One expectation per rule, all at level ERROR, on a small chip layout (the
-- bands have 4 values here instead of 5625).
\set rules '[{"name":"code_complete","features":["code"],"rules":[{"name":"HAS_COMPLETENESS","level":"ERROR"}]},{"name":"label_min","features":["label"],"rules":[{"name":"HAS_MIN","level":"ERROR","min":0}]},{"name":"label_max","features":["label"],"rules":[{"name":"HAS_MAX","level":"ERROR","max":1}]},{"name":"ratio_integral","features":["ratio"],"rules":[{"name":"HAS_DATATYPE","level":"ERROR","accepted_type":"Integral"}]},{"name":"code_legal","features":["code"],"rules":[{"name":"IS_CONTAINED_IN","level":"ERROR","legal_values":["ab","cd","xyz"]}]},{"name":"code_pattern","features":["code"],"rules":[{"name":"HAS_PATTERN","level":"ERROR","pattern":"^[a-z]+$"}]},{"name":"code_length","features":["code"],"rules":[{"name":"HAS_LENGTH","level":"ERROR","min":2,"max":3}]},{"name":"band_shape","features":["band"],"rules":[{"name":"HAS_LENGTH","level":"ERROR","value":4},{"name":"IS_FINITE","level":"ERROR"}]},{"name":"band_range","features":["band"],"rules":[{"name":"HAS_MIN","level":"ERROR","min":-45},{"name":"HAS_MAX","level":"ERROR","max":0}]},{"name":"angle_finite","features":["angle"],"rules":[{"name":"IS_FINITE","level":"ERROR"}]}]'
\set features '[{"name":"id","type":"text"},{"name":"label","type":"smallint"},{"name":"angle","type":"real"},{"name":"band","type":"real[]"},{"name":"code","type":"text"},{"name":"ratio","type":"numeric"}]'

SELECT iceml.create_feature_group('checks', :'features', ARRAY['id'], expectations => :'rules');

-- a good row passes every rule
INSERT INTO iceml_fs.checks_1 VALUES ('good', 1, 35.5, '{-20,-21,-22,-23}', 'ab', 3);

-- STRICT: each rule failing once; the error names the feature group, the
-- expectation, the rule, the feature, the row's key and the value
INSERT INTO iceml_fs.checks_1 VALUES ('r1', 1, 35, '{-20,-21,-22,-23}', NULL, 3);
INSERT INTO iceml_fs.checks_1 VALUES ('r2', -1, 35, '{-20,-21,-22,-23}', 'ab', 3);
INSERT INTO iceml_fs.checks_1 VALUES ('r3', 2, 35, '{-20,-21,-22,-23}', 'ab', 3);
INSERT INTO iceml_fs.checks_1 VALUES ('r4', 1, 35, '{-20,-21,-22,-23}', 'ab', 3.5);
INSERT INTO iceml_fs.checks_1 VALUES ('r5', 1, 35, '{-20,-21,-22,-23}', 'zz', 3);
INSERT INTO iceml_fs.checks_1 VALUES ('r6', 1, 35, '{-20,-21,-22,-23}', 'AB', 3);
INSERT INTO iceml_fs.checks_1 VALUES ('r7', 1, 35, '{-20,-21,-22,-23}', 'a', 3);
INSERT INTO iceml_fs.checks_1 VALUES ('r8', 1, 35, '{-20,-21,-22}', 'ab', 3);
INSERT INTO iceml_fs.checks_1 VALUES ('r9', 1, 35, '{-20,-21,NaN,-23}', 'ab', 3);
INSERT INTO iceml_fs.checks_1 VALUES ('r10', 1, 35, '{-20,-21,-22,-50}', 'ab', 3);
INSERT INTO iceml_fs.checks_1 VALUES ('r11', 1, 35, '{-20,0.5,-22,-23}', 'ab', 3);
INSERT INTO iceml_fs.checks_1 VALUES ('r12', 1, 'Infinity', '{-20,-21,-22,-23}', 'ab', 3);
-- nothing of a blocked statement is written, not even its good rows
INSERT INTO iceml_fs.checks_1 VALUES ('ok1', 0, 35, '{-1,-2,-3,-4}', 'cd', 1), ('bad', 0, 35, '{-1,-2,-3,-4}', 'cd', 1.5);
SELECT id FROM iceml_fs.checks_1 ORDER BY id;
-- UPDATE goes through the same checks
UPDATE iceml_fs.checks_1 SET band[2] = 'Infinity' WHERE id = 'good';
-- and so does COPY
COPY iceml_fs.checks_1 FROM stdin;
c1	0	36	{-30,-31,-32,-33}	xyz	2
c2	1	37	{-30,-31,-32,-33,-34}	xyz	2
\.
COPY iceml_fs.checks_1 FROM stdin;
c1	0	36	{-30,-31,-32,-33}	xyz	2
c2	1	37	{-30,-31,-32,-33}	cd	2
\.
SELECT id FROM iceml_fs.checks_1 ORDER BY id;

-- WARNING-level rules: the same rules at level WARNING, validation mode
-- WARNING.  The rows are written; one validations row per failed rule, with
-- the rows failing, the first keys and the first value; one summary WARNING.
SELECT iceml.create_feature_group('checks', :'features', ARRAY['id'],
    expectations => replace(:'rules', '"ERROR"', '"WARNING"')::jsonb, validation => 'WARNING');
INSERT INTO iceml_fs.checks_2 VALUES
    ('good', 1, 35.5, '{-20,-21,-22,-23}', 'ab', 3),
    ('r1', 1, 35, '{-20,-21,-22,-23}', NULL, 3),
    ('r2', -1, 35, '{-20,-21,-22,-23}', 'ab', 3),
    ('r3', 2, 35, '{-20,-21,-22,-23}', 'ab', 3),
    ('r4', 1, 35, '{-20,-21,-22,-23}', 'ab', 3.5),
    ('r5', 1, 35, '{-20,-21,-22,-23}', 'zz', 3),
    ('r6', 1, 35, '{-20,-21,-22,-23}', 'AB', 3),
    ('r7', 1, 35, '{-20,-21,-22,-23}', 'a', 3),
    ('r8', 1, 35, '{-20,-21,-22}', 'ab', 3),
    ('r9', 1, 35, '{-20,-21,NaN,-23}', 'ab', 3),
    ('r10', 1, 35, '{-20,-21,-22,-50}', 'ab', 3),
    ('r11', 1, 35, '{-20,0.5,-22,-23}', 'ab', 3),
    ('r12', 1, 'Infinity', '{-20,-21,-22,-23}', 'ab', 3),
    ('r13', 1, 35, '{-20,-21,-22,-60}', 'ab', 3);
SELECT count(*) AS written FROM iceml_fs.checks_2;
SELECT v.expectation, v.rule, v.feature, v.level, v.validation, v.status, v.failing_rows,
       v.failing_keys, v.observed, v.commit_id = c.commit_id AS with_its_commit
  FROM iceml.validations v
  JOIN iceml.feature_group_commits c ON c.feature_group_id = v.feature_group_id
 WHERE v.feature_group = 'iceml_fs.checks_2'::regclass
 ORDER BY v.expectation, v.rule;

-- In mode WARNING an ERROR-level rule still blocks
SELECT jsonb_array_length(iceml.add_expectation('iceml_fs.checks_2',
    '{"name":"angle_max","features":["angle"],"rules":[{"name":"HAS_MAX","level":"ERROR","max":60}]}')) AS expectations;
INSERT INTO iceml_fs.checks_2 VALUES ('steep', 1, 70, '{-20,-21,-22,-23}', 'ab', 3);
-- In mode STRICT a WARNING-level rule blocks too
SELECT iceml.set_validation('iceml_fs.checks_2', 'STRICT');
INSERT INTO iceml_fs.checks_2 VALUES ('short', 1, 30, '{-20,-21,-22}', 'ab', 3);
-- Mode ALL always writes and records every finding (ERROR level as FAILURE)
SELECT iceml.set_validation('iceml_fs.checks_2', 'ALL');
INSERT INTO iceml_fs.checks_2 VALUES ('steep', 1, 70, '{-20,-21,-22}', 'ab', 3);
SELECT v.expectation, v.rule, v.level, v.validation, v.status, v.failing_rows, v.failing_keys, v.observed
  FROM iceml.validations v
 WHERE v.feature_group = 'iceml_fs.checks_2'::regclass AND v.validation = 'ALL'
 ORDER BY v.expectation, v.rule;
-- Mode NONE checks nothing and records nothing
SELECT iceml.set_validation('iceml_fs.checks_2', 'none');
INSERT INTO iceml_fs.checks_2 VALUES ('wild', 9, 'NaN', '{1,2}', NULL, 0.5);
SELECT count(*) AS none_findings FROM iceml.validations v
 WHERE v.feature_group = 'iceml_fs.checks_2'::regclass AND v.validation = 'NONE';

-- Expectations changed in the middle of a session apply to the next
-- statement, in the same transaction too (the cached parse follows the
-- catalog row)
BEGIN;
SELECT jsonb_array_length(iceml.drop_expectation('iceml_fs.checks_1', 'code_legal')) AS expectations;
INSERT INTO iceml_fs.checks_1 VALUES ('new_code', 0, 35, '{-1,-2,-3,-4}', 'qq', 1);
SELECT jsonb_array_length(iceml.add_expectation('iceml_fs.checks_1',
    '{"name":"code_legal_again","features":["code"],"rules":[{"name":"IS_CONTAINED_IN","legal_values":["ab"]}]}')) AS expectations;
INSERT INTO iceml_fs.checks_1 VALUES ('newer_code', 0, 35, '{-1,-2,-3,-4}', 'qq', 1);
ROLLBACK;
SELECT jsonb_array_length(expectations) AS expectations_after_rollback
  FROM iceml.feature_groups WHERE "table" = 'iceml_fs.checks_1'::regclass;

-- Batch rules, once per statement over the rows it wrote: HAS_MEAN,
-- HAS_STDDEV (on arrays: over all elements), HAS_UNIQUENESS, and
-- HAS_COMPLETENESS with "min" below 1
SELECT iceml.create_feature_group('batch', :'features', ARRAY['id'],
    expectations => '[{"name":"angle_mean","features":["angle"],"rules":[{"name":"HAS_MEAN","level":"ERROR","min":30,"max":46}]},
                      {"name":"band_spread","features":["band"],"rules":[{"name":"HAS_STDDEV","level":"ERROR","max":10}]},
                      {"name":"code_unique","features":["code"],"rules":[{"name":"HAS_UNIQUENESS","level":"WARNING"}]},
                      {"name":"code_mostly_there","features":["code"],"rules":[{"name":"HAS_COMPLETENESS","level":"ERROR","min":0.5}]}]');
INSERT INTO iceml_fs.batch_1 VALUES ('a', 0, 35, '{-20,-21,-22,-23}', 'x', 1), ('b', 0, 40, '{-20,-25,-22,-23}', 'y', 1);
INSERT INTO iceml_fs.batch_1 VALUES ('c', 0, 20, '{-20,-21,-22,-23}', 'x', 1), ('d', 0, 25, '{-20,-21,-22,-23}', 'y', 1);
INSERT INTO iceml_fs.batch_1 VALUES ('c', 0, 35, '{0,-40,0,-40}', 'x', 1);
INSERT INTO iceml_fs.batch_1 VALUES ('c', 0, 35, '{-1,-2,-3,-4}', NULL, 1), ('d', 0, 35, '{-1,-2,-3,-4}', NULL, 1),
                                    ('e', 0, 35, '{-1,-2,-3,-4}', 'z', 1);
SELECT iceml.set_validation('iceml_fs.batch_1', 'WARNING');
INSERT INTO iceml_fs.batch_1 VALUES ('c', 0, 35, '{-1,-2,-3,-4}', 'x', 1), ('d', 0, 35, '{-1,-2,-3,-4}', 'x', 1),
                                    ('e', 0, 35, '{-1,-2,-3,-4}', 'w', 1);
SELECT v.expectation, v.rule, v.level, v.status, v.failing_rows, v.observed
  FROM iceml.validations v WHERE v.feature_group = 'iceml_fs.batch_1'::regclass ORDER BY v.id;
SELECT id FROM iceml_fs.batch_1 ORDER BY id;

--
-- Malformed expectation documents, refused with the JSON path of the fault
-- (SQLSTATE 22023), at creation and by add_expectation
--
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '{"name":"x"}');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '["x"]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"features":["label"],"rules":[{"name":"IS_FINITE"}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","rules":[{"name":"IS_FINITE"}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":[],"rules":[{"name":"IS_FINITE"}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["label"]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["label"],"rules":[{"name":"IS_FINITE"}],"owner":"me"}]');
-- unknown rule
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["label"],"rules":[{"name":"IS_FINITE"},{"name":"HAS_MINIMUM","min":0}]}]');
-- missing bound
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["label"],"rules":[{"name":"HAS_MIN"}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["angle"],"rules":[{"name":"HAS_MEAN","level":"WARNING"}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["code"],"rules":[{"name":"HAS_LENGTH"}]}]');
-- min > max
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["code"],"rules":[{"name":"HAS_LENGTH","min":5,"max":2}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["angle"],"rules":[{"name":"IS_FINITE"},{"name":"HAS_COMPLETENESS"},{"name":"HAS_STDDEV","min":3,"max":1}]}]');
-- bounds of the wrong kind
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["label"],"rules":[{"name":"HAS_MIN","min":"zero"}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["code"],"rules":[{"name":"HAS_COMPLETENESS","min":1.5}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["code"],"rules":[{"name":"HAS_LENGTH","value":-1}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["code"],"rules":[{"name":"HAS_LENGTH","value":2,"max":3}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["label"],"rules":[{"name":"HAS_MIN","min":0,"max":1}]}]');
-- a feature that does not exist
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["label","band_3"],"rules":[{"name":"IS_FINITE"}]}]');
-- a rule that does not fit the feature's type
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["band"],"rules":[{"name":"HAS_PATTERN","pattern":"^x"}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["code"],"rules":[{"name":"HAS_MIN","min":0}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["label"],"rules":[{"name":"HAS_LENGTH","value":1}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["band"],"rules":[{"name":"IS_CONTAINED_IN","legal_values":[1]}]}]');
-- duplicate expectation name
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["label"],"rules":[{"name":"IS_FINITE"}]},{"name":"e","features":["angle"],"rules":[{"name":"IS_FINITE"}]}]');
-- bad level
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["label"],"rules":[{"name":"IS_FINITE","level":"FATAL"}]}]');
-- bad rule parameters
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["label"],"rules":[{"name":"HAS_DATATYPE","accepted_type":"Complex"}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["code"],"rules":[{"name":"IS_CONTAINED_IN","legal_values":[]}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["code"],"rules":[{"name":"IS_CONTAINED_IN","legal_values":["a",{"b":1}]}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["label"],"rules":[{"name":"IS_CONTAINED_IN","legal_values":[0,"one"]}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["code"],"rules":[{"name":"HAS_PATTERN","pattern":"(unclosed"}]}]');
SELECT iceml.create_feature_group('bad', :'features', ARRAY['id'], expectations => '[{"name":"e","features":["code"],"rules":[{"name":"HAS_PATTERN","pattern":"x","min":1}]}]');
SELECT count(*) AS nothing_created FROM iceml.feature_groups WHERE name = 'bad';
-- add_expectation: paths relative to the one expectation
SELECT iceml.add_expectation('iceml_fs.checks_1', '[]');
SELECT iceml.add_expectation('iceml_fs.checks_1', '{"name":"label_min","features":["label"],"rules":[{"name":"HAS_MIN","min":0}]}');
SELECT iceml.add_expectation('iceml_fs.checks_1', '{"name":"e2","features":["label"],"rules":[{"name":"HAS_MIN","min":0},{"name":"HAS_MAX","max":"1"}]}');
SELECT iceml.add_expectation('iceml_fs.checks_1', '{"name":"e2","features":["no_such"],"rules":[{"name":"HAS_MIN","min":0}]}');

-- Findings of a statement that fails later (here on the primary key) are
-- dropped with it, also when only rolled back to a savepoint: the next
-- statement starts clean
SELECT iceml.set_validation('iceml_fs.checks_2', 'WARNING');
BEGIN;
SAVEPOINT before_insert;
INSERT INTO iceml_fs.checks_2 VALUES ('sp1', 5, 35, '{-20,-21,-22,-23}', 'ab', 3), ('good', 1, 35, '{-20,-21,-22,-23}', 'ab', 3);
ROLLBACK TO SAVEPOINT before_insert;
INSERT INTO iceml_fs.checks_2 VALUES ('sp2', 1, 35, '{-20,-21,-22,-23}', 'ab', 3);
COMMIT;
SELECT c.rows_inserted, count(v.id) AS findings
  FROM iceml.feature_group_commits c LEFT JOIN iceml.validations v USING (commit_id)
 WHERE c.commit_id = (SELECT max(commit_id) FROM iceml.feature_group_commits)
 GROUP BY c.rows_inserted;

-- Expectations outlive a change of the table only if they still fit it
ALTER TABLE iceml_fs.checks_2 DROP COLUMN ratio;
INSERT INTO iceml_fs.checks_2 VALUES ('altered', 1, 35, '{-20,-21,-22,-23}', 'ab');
SELECT jsonb_array_length(iceml.drop_expectation('iceml_fs.checks_2', 'ratio_integral')) AS expectations;
INSERT INTO iceml_fs.checks_2 VALUES ('altered', 1, 35, '{-20,-21,-22,-23}', 'ab');
