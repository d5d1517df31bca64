#!/usr/bin/env python3
"""db_backup_list through the ConfD dialect, on archive volumes that hold
real backup trees, after one sync cycle of the direct connection: the seed's
shape (Example 6.3) plus 'synced'.

usage: confd_backups.py URL

The Go test wrote, on every node's volume v0003:
  DB1/id_1/level_0/node_<i>/backup_202401020304/data and .../metadata,
  DB1/id_2/level_1/node_<i>/data                      (both synced to Connection2's volume),
  DB1/id_3/level_0/node_<i>/data on nodes 0 and 1 only (after the sync: not usable, not synced),
  DB2/id_5/level_0/node_<i>/data                      (Connection1's database, never synced).
"""
import ssl
import sys
import xmlrpc.client
from pprint import pprint as pp

url = sys.argv[1]
conn = xmlrpc.client.ServerProxy(url, context=ssl._create_unverified_context(), allow_none=True)

SEED_KEYS = {'bid', 'comment', 'dependencies', 'expire', 'expire_alterable', 'expired', 'id', 'last_item',
             'level', 'path', 'system', 'timestamp', 'ts', 'usable', 'usage', 'volume'}

r = conn.job_exec('db_backup_list', {'params': {'db_name': 'DB1'}})
pp(r)
assert r['result_code'] == 0 and r['result_name'] == 'OK' and r['result_desc'] == 'Success', r
rows = r['result_output']
assert [b['bid'] for b in rows] == [1, 2, 3], rows
for b in rows:
    assert set(b) == SEED_KEYS | {'synced'}, set(b) ^ (SEED_KEYS | {'synced'})
    assert isinstance(b['bid'], int) and isinstance(b['level'], int), b
    assert b['system'] == 'DB1' and b['volume'] == 'v0003' and b['expire'] == '' and b['expired'] is False, b
    assert b['usage'].endswith(' GiB') and float(b['usage'].split()[0]) >= 0, b
    assert b['id'] == '%s %s %s' % (b['volume'], b['path'], b['system']), b
    assert len(b['ts']) == 12 and b['timestamp'] == '%s-%s-%s %s:%s' % (
        b['ts'][:4], b['ts'][4:6], b['ts'][6:8], b['ts'][8:10], b['ts'][10:]), b

b1, b2, b3 = rows
assert b1['path'] == 'DB1/id_1/level_0/node_0/backup_202401020304', b1
assert b1['ts'] == '202401020304' and b1['timestamp'] == '2024-01-02 03:04', b1
assert b1['level'] == 0 and b1['dependencies'] == '-' and b1['usable'] is True and b1['synced'] is True, b1
assert b1['last_item'] is False and b1['usage'] == '0.001 GiB', b1  # 3 x (384 KiB + 10 B); id_2 builds on it
assert b1['expire_alterable'] == 'v0003 DB1/id_1/level_0', b1
assert b2['path'] == 'DB1/id_2/level_1/node_0' and b2['level'] == 1, b2
assert b2['dependencies'] == 'DB1/id_1/level_0' and b2['usable'] is True and b2['synced'] is True and b2['last_item'] is True, b2
assert b3['usable'] is False and b3['synced'] is False and b3['last_item'] is True, b3

# Connection1's database: its destination is listed through the SSH tunnel,
# and holds nothing yet.
r = conn.job_exec('db_backup_list', {'params': {'db_name': 'DB2'}})
pp(r)
assert r['result_code'] == 0, r
(b5,) = r['result_output']
assert b5['bid'] == 5 and b5['usable'] is True and b5['synced'] is False, b5

# A database no connection copies.
r = conn.job_exec('db_backup_list', {'params': {'db_name': 'DB7'}})
pp(r)
assert r['result_code'] == 1 and 'no connection copies database DB7' in r['result_desc'] and 'result_output' not in r, r
print('confd backups: OK')
