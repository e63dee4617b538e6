#!/usr/bin/python3
"""The Python baseline of the ingest benchmark (test/bench/ingest.sh).

    ingest_python.py generate PATH N [lines]   write N synthetic records
    ingest_python.py load PATH TABLE           json.load + psycopg2 COPY

`generate` writes the Kaggle Statoil layout (a JSON array, or JSON lines with
"lines"), streaming, with bands printed as the real data prints them
(-27.878361, and some as -27.878360999999998); the bands come from a small
pool of synthetic chips so that even a 2 GB file is written in seconds.

`load` is what a Python user would do: parse the file with the json module,
build the COPY text of the rows and send it with psycopg2's copy_expert,
then commit; it prints BENCH ingest_python_mb_per_s.  Connection settings
come from PGHOST/PGPORT/PGUSER/PGDATABASE.
"""
import io
import json
import os
import random
import sys
import time

N = 5625


def band_text(rng, mean, sd):
    out = []
    for i in range(N):
        v = round(rng.gauss(mean, sd), 6)
        out.append('%.17g' % v if i % 7 == 0 else repr(v))
    return ','.join(out)


def generate(path, n, lines):
    rng = random.Random(1604)
    pool1 = [band_text(rng, -22.0, 3.5) for _ in range(24)]
    pool2 = [band_text(rng, -27.0, 2.5) for _ in range(24)]
    with open(path, 'w') as f:
        if not lines:
            f.write('[')
        for i in range(n):
            rid = '%08x' % ((i * 2654435761 + 12345) % 2 ** 32)
            angle = '"na"' if i % 12 == 5 else repr(round(rng.uniform(30, 46), 4))
            rec = '{"id":"%s","band_1":[%s],"band_2":[%s],"inc_angle":%s,"is_iceberg":%d}' % (
                rid, pool1[i % 24], pool2[(i * 7) % 24], angle, i % 2)
            if lines:
                f.write(rec + '\n')
            else:
                f.write(rec if i == 0 else ',' + rec)
        if not lines:
            f.write(']')


def load(path, table):
    import psycopg2
    size = os.path.getsize(path)
    t0 = time.time()
    conn = psycopg2.connect('')
    with open(path) as f:
        records = json.load(f)
    buf = io.StringIO()
    for r in records:
        angle = r.get('inc_angle')
        angle = '\\N' if angle == 'na' or angle is None else repr(float(angle))
        label = r.get('is_iceberg')
        label = '\\N' if label is None else str(int(label))
        buf.write('%s\t{%s}\t{%s}\t%s\t%s\n' % (
            r['id'], ','.join(map(repr, r['band_1'])), ','.join(map(repr, r['band_2'])),
            angle, label))
    buf.seek(0)
    with conn.cursor() as cur:
        cur.copy_expert('COPY %s (id, band_1, band_2, inc_angle, is_iceberg) FROM STDIN' % table, buf)
        n = cur.rowcount
    conn.commit()
    secs = time.time() - t0
    conn.close()
    print('BENCH ingest_python_mb_per_s %.1f MB/s' % (size / 1e6 / secs))
    print('python: %d rows in %.2f s' % (n, secs), file=sys.stderr)


if __name__ == '__main__':
    if sys.argv[1] == 'generate':
        generate(sys.argv[2], int(sys.argv[3]), len(sys.argv) > 4 and sys.argv[4] == 'lines')
    elif sys.argv[1] == 'load':
        load(sys.argv[2], sys.argv[3])
    else:
        sys.exit('usage: ingest_python.py generate PATH N [lines] | load PATH TABLE')
