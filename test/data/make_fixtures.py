#!/usr/bin/python3
"""Writes iceml's own small Statoil-layout fixtures (deterministic).

    /usr/bin/python3 test/data/make_fixtures.py      # from the checkout

Every record has the real format's 75x75 = 5625 values per band.  The good
fixtures print values with 4 to 6 significant digits (plus one integer and
one exponent per band, which JSON allows); the bad one prints small integers
to stay small.  None of this is real data.
"""
import json
import os
import random

N = 5625
HERE = os.path.dirname(os.path.abspath(__file__))


def band(rng, mean, sd):
    vals = ['%.4g' % rng.gauss(mean, sd) if i % 3 else '%.6g' % rng.gauss(mean, sd)
            for i in range(N)]
    vals[11] = '-27'            # an integer: json-c parses it as int
    vals[12] = '-2.5e1'         # an exponent
    return vals


def record(rng, rid, angle, label, extra=''):
    b1 = ','.join(band(rng, -22.0, 3.0))
    b2 = ','.join(band(rng, -27.0, 2.5))
    s = '{"id":"%s","band_1":[%s],"band_2":[%s],"inc_angle":%s' % (
        rid, b1, b2, json.dumps(angle))
    if label is not None:
        s += ',"is_iceberg":%d' % label
    return s + extra + '}'


def intband(rng, n=N):
    return ','.join(str(rng.randint(-30, -15)) for _ in range(n))


def full(rng, rid, angle=40.5, label=0, b1=None, b2=None):
    return '{"id":"%s","band_1":[%s],"band_2":[%s],"inc_angle":%s,"is_iceberg":%d}' % (
        rid, b1 or intband(rng), b2 or intband(rng), json.dumps(angle), label)


def write(name, text):
    with open(os.path.join(HERE, name), 'w', newline='') as f:
        f.write(text)


def main():
    rng = random.Random(20171023)
    # a JSON array, compact as Kaggle's train.json
    write('statoil_small.json', '[' + ','.join([
        record(rng, 's0000', 39.2345, 0),
        record(rng, 's0001', 'na', 1),
        record(rng, 's0002', 43.9239, 0, ',"note":"unknown keys are ignored"'),
        record(rng, 's0003', 36.1, 1),
    ]) + ']')
    # JSON lines as test.json would be (no is_iceberg), blank and CRLF lines
    write('statoil_small.jsonl',
          record(rng, 'l0000', 41.0, None) + '\n\n' +
          record(rng, 'l0001', 'na', None) + '\r\n' +
          '  ' + record(rng, 'l0002', 38.75, 1) + '\n')
    # bad records that need whole bands to be bad in the way they are
    bad = [
        full(rng, 'b000'),                                       # 0 good
        '{"id":"b001","band_1":[%s,"-20.5"]}' % intband(rng, N - 1),  # 1 a string
        '{"id":"b002","band_1":[%s],"band_2":"none"}' % intband(rng),   # 2 not an array
        '{"id":"b003","band_1":[%s]}' % intband(rng, N - 1),      # 3 5624 values
        '{"id":"b004","band_1":[%s],"band_2":[NaN,%s]}' % (intband(rng), intband(rng, N - 1)),
        '{"id":"b005","band_1":[%s,-Infinity]}' % intband(rng, N - 1),
        full(rng, 'b000', label=1),                              # 6 duplicate in the file
        full(rng, 'b007', angle='abc'),                          # 7 bad inc_angle
        full(rng, 's0001'),                                      # 8 duplicate of a loaded row
        full(rng, 'b009', label=1),                              # 9 good
        full(rng, 'b010', angle=75.0),                           # 10 fails inc_angle <= 50
        '{"id":"b011","band_1":[-20,-21,,-22],"band_2":[]}',    # 11 invalid JSON
        full(rng, 'b012', label=2),                              # 12 label not 0/1
        full(rng, 'b013'),                                       # 13 good
    ]
    write('statoil_bad.json', '[' + ',\n'.join(bad) + ',\n{"id":"b014","band_1":[-20,-21')
    # JSON lines: a line that ends inside its record, a scalar, a good one
    write('statoil_bad.jsonl', '\n'.join([
        full(rng, 'j000'),
        '{"id":"j001","band_1":[-20,-21',
        '42',
        full(rng, 'j003', angle='na', label=1),
    ]) + '\n')


if __name__ == '__main__':
    main()
